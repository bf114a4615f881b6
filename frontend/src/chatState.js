// The page's state machine, kept pure so it can be tested without a browser or a server.
// The hook feeds it the transports' events; components only read the state it returns.

export const initialState = {
  connection: "connecting", // connecting | connected | reconnecting | offline | token_needed
  messages: [], // {id, role, content, status, streamId?, transport?, finishReason?, error?}
  active: null, // the reply being streamed: {streamId, transport, stopping}
  access: null, // while the server wants a token: {error: string | null, checking: boolean}
  refusal: null, // the server refused the connection for good, for a reason other than the token: {code, message}
};

export const TOKEN_NOT_VALID = "The token is not valid.";

/**
 * Connection transitions. `everConnected` tells a first connection attempt from a reconnection,
 * so a failing first attempt reads "connecting" and a lost connection reads "reconnecting".
 */
function nextConnection(state, action) {
  switch (action.event) {
    case "connect":
      return "connected";
    case "refused":
      // socket.io-client does not retry a connection the server refused, so nothing will happen until the user acts.
      return action.code === "unauthorized" ? "token_needed" : "offline";
    case "token_submitted":
      return "connecting";
    case "disconnect":
    case "connect_error":
      if (!action.willRetry) return "offline";
      return action.everConnected ? "reconnecting" : "connecting";
    case "reconnect_attempt":
      return "reconnecting";
    case "reconnect_failed":
    case "browser_offline":
      return "offline";
    default:
      return state.connection;
  }
}

/** The token prompt: shown on an `unauthorized` refusal, checking after a submit, gone once connected. */
function nextAccess(state, action) {
  switch (action.event) {
    case "connect":
      return null;
    case "refused":
      if (action.code !== "unauthorized") return state.access;
      // Without a token the page just asks for one; a token that was sent and refused was wrong (or revoked).
      return { error: action.hadToken ? TOKEN_NOT_VALID : null, checking: false };
    case "token_submitted":
      return { error: null, checking: true };
    default:
      return state.access;
  }
}

function nextRefusal(state, action) {
  switch (action.event) {
    case "refused":
      return action.code === "unauthorized" ? null : { code: action.code, message: action.message };
    case "connect":
    case "token_submitted":
      return null;
    default:
      return state.refusal;
  }
}

function updateReply(state, streamId, update) {
  let found = false;
  const messages = state.messages.map((m) => {
    if (m.role !== "assistant" || m.streamId !== streamId) return m;
    found = true;
    return { ...m, ...update(m) };
  });
  return found ? messages : state.messages;
}

function endActive(state, streamId) {
  return state.active?.streamId === streamId ? null : state.active;
}

export function chatReducer(state, action) {
  switch (action.type) {
    case "connection": {
      let next = {
        ...state,
        connection: nextConnection(state, action),
        access: nextAccess(state, action),
        refusal: nextRefusal(state, action),
      };
      // The server cancels a client's streams when it disconnects, and sends nothing more for them.
      if (action.event === "disconnect" && state.active?.transport === "socket") {
        const { streamId } = state.active;
        const message = "The reply was cut off; send it again once reconnected.";
        next = chatReducer(next, { type: "error", streamId, code: "disconnected", message });
      }
      return next;
    }
    case "send": {
      if (state.active) return state; // one reply at a time on this page
      const { streamId, prompt, transport } = action;
      return {
        ...state,
        messages: [
          ...state.messages,
          { id: `u-${streamId}`, role: "user", content: prompt, status: "done" },
          { id: `a-${streamId}`, role: "assistant", content: "", status: "streaming", streamId, transport },
        ],
        active: { streamId, transport, stopping: false },
      };
    }
    case "chunk": {
      if (!action.text) return state;
      const messages = updateReply(state, action.streamId, (m) =>
        m.status === "streaming" ? { content: m.content + action.text } : {},
      );
      return messages === state.messages ? state : { ...state, messages };
    }
    case "stop":
      if (state.active?.streamId !== action.streamId) return state;
      return { ...state, active: { ...state.active, stopping: true } };
    case "done": {
      const status = action.finishReason === "cancelled" ? "stopped" : "done";
      const messages = updateReply(state, action.streamId, (m) =>
        m.status === "streaming" ? { status, finishReason: action.finishReason } : {},
      );
      return { ...state, messages, active: endActive(state, action.streamId) };
    }
    case "error": {
      const error = { code: action.code, message: action.message };
      if (action.retryAfter != null) error.retryAfter = action.retryAfter;
      const messages = updateReply(state, action.streamId, (m) =>
        m.status === "streaming" ? { status: "error", error } : {},
      );
      return { ...state, messages, active: endActive(state, action.streamId) };
    }
    default:
      return state;
  }
}

/**
 * The conversation to send: earlier turns plus the new prompt, as the protocol's `messages`.
 * Replies that produced no text are left out; a stopped reply's partial text is kept, as the user saw it.
 */
export function conversationFor(messages, prompt) {
  const turns = messages
    .filter((m) => m.role === "user" || m.content !== "")
    .map((m) => ({ role: m.role, content: m.content }));
  return [...turns, { role: "user", content: prompt }];
}
