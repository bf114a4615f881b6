// The page's state machine, kept pure so it can be tested without a browser or a server.
// The hook feeds it the transports' events; components only read the state it returns.
import { applyParts, partsOf, toolCallsFromDone } from "./replyParts.js";

export const initialState = {
  connection: "connecting", // connecting | connected | reconnecting | offline | token_needed
  // {id, role, content, status, streamId, for prompts: images? (data: URLs), and for replies: transport, seq?,
  // resumeToken?, reconnecting?, finishReason?, error?, reasoning?, toolCalls? ([{index, id, name, arguments}]),
  // refusal?}. `seq` is the cursor of the text in `content` (docs/protocol.md, "The cursor"), and
  // `resumeToken` the token to read the rest with, kept while the reply runs.
  messages: [],
  active: null, // the reply being streamed: {streamId, transport, stopping}
  access: null, // while the server wants a token: {error: string | null, checking: boolean}
  refusal: null, // the server refused the connection for good, for a reason other than the token: {code, message}
};

export const TOKEN_NOT_VALID = "The token is not valid.";

/**
 * The history budget: what the page sends as `messages` is at most this many characters (all contents together,
 * the new prompt included) and this many messages; older turns are left out first. The server refuses more than
 * MAX_PROMPT_CHARS (default 32,000) characters and MAX_MESSAGES (default 100) messages, counted in code points,
 * which a JavaScript length never undercounts. 12,000 characters (about 3,000 tokens) also leaves the local
 * model, whose context is 4,096 tokens, room for its few-shot frame and its reply.
 */
export const HISTORY_BUDGET = { chars: 12_000, messages: 40 };

/**
 * The images sent with one request, newest first: the server's MAX_IMAGES (default 8), and characters of data: URL
 * that leave room for the text within its MAX_REQUEST_BYTES (default 8 MiB). One image is at most MAX_IMAGE_BYTES
 * (default 5 MB), about 6.7 MB as a data: URL: an older turn's images are left out first.
 */
export const IMAGE_BUDGET = { count: 8, chars: 7_500_000 };

const NOT_CONFIRMED = {
  disconnect: "The connection dropped before the server confirmed the request; send it again.",
  reload: "The page was reloaded before the server confirmed the request; send it again.",
};

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

/** Apply `update` to the reply of `streamId`; the same array when there is none, so nothing re-renders. */
function updateReply(state, streamId, update) {
  let changed = false;
  const messages = state.messages.map((m) => {
    if (m.role !== "assistant" || m.streamId !== streamId) return m;
    const next = update(m);
    changed ||= next !== m;
    return next;
  });
  return changed ? messages : state.messages;
}

/** A reply that has ended: its outcome, without what only a running reply needs (its token, its note). */
function ended(reply, outcome) {
  const { resumeToken: _token, reconnecting: _note, ...rest } = reply;
  return { ...rest, ...outcome };
}

function endActive(state, streamId) {
  return state.active?.streamId === streamId ? null : state.active;
}

/** While a reply runs: `update` applies; after its end, nothing changes it (a terminal event is final). */
function whileStreaming(update) {
  return (m) => (m.status === "streaming" ? update(m) : m);
}

/**
 * A Socket.IO disconnect: the server keeps the stream for RESUME_GRACE seconds, so a reply with its token waits,
 * "Reconnecting…", for the hook's resume; one whose start was never acknowledged cannot be resumed, and ends.
 */
function socketRepliesLost(state) {
  let active = state.active;
  const messages = state.messages.map((m) => {
    if (m.role !== "assistant" || m.status !== "streaming" || m.transport !== "socket") return m;
    if (m.resumeToken) return m.reconnecting ? m : { ...m, reconnecting: true };
    if (active?.streamId === m.streamId) active = null;
    return ended(m, { status: "error", error: { code: "disconnected", message: NOT_CONFIRMED.disconnect } });
  });
  return { ...state, messages, active };
}

export function chatReducer(state, action) {
  switch (action.type) {
    case "connection": {
      const next = {
        ...state,
        connection: nextConnection(state, action),
        access: nextAccess(state, action),
        refusal: nextRefusal(state, action),
      };
      return action.event === "disconnect" ? socketRepliesLost(next) : next;
    }
    case "send": {
      if (state.active) return state; // one reply at a time on this page
      const { streamId, prompt, transport, images } = action;
      const asked = { id: `u-${streamId}`, role: "user", content: prompt, status: "done", streamId };
      if (images?.length) asked.images = images;
      return {
        ...state,
        messages: [
          ...state.messages,
          asked,
          { id: `a-${streamId}`, role: "assistant", content: "", status: "streaming", streamId, transport },
        ],
        active: { streamId, transport, stopping: false },
      };
    }
    case "opened": {
      // The server took the request: the ack's (or X-Resume-Token's) token lets the page read the rest later.
      const messages = updateReply(state, action.streamId, whileStreaming((m) => ({ ...m, resumeToken: action.resumeToken })));
      return messages === state.messages ? state : { ...state, messages };
    }
    case "chunk": {
      // Its typed parts (text, reasoning, tool-call fragments, refusal); a chunk without `parts` is text only.
      const parts = partsOf(action.text, action.parts);
      if (parts.length === 0) return state;
      const messages = updateReply(state, action.streamId, whileStreaming((m) => {
        // A chunk at or before the cursor is what the reply already has: a resume never repeats it.
        if (action.seq != null && m.seq != null && action.seq <= m.seq) return m;
        const next = { ...applyParts(m, parts), reconnecting: false };
        if (action.seq != null) next.seq = action.seq;
        return next;
      }));
      return messages === state.messages ? state : { ...state, messages };
    }
    case "resuming":
    case "resumed": {
      const reconnecting = action.type === "resuming";
      const messages = updateReply(state, action.streamId, whileStreaming((m) =>
        Boolean(m.reconnecting) === reconnecting ? m : { ...m, reconnecting }));
      return messages === state.messages ? state : { ...state, messages };
    }
    case "stop":
      if (state.active?.streamId !== action.streamId) return state;
      return { ...state, active: { ...state.active, stopping: true } };
    case "done": {
      const status = action.finishReason === "cancelled" ? "stopped" : "done";
      const outcome = { status, finishReason: action.finishReason };
      const messages = updateReply(state, action.streamId, whileStreaming((m) => {
        const toolCalls = toolCallsFromDone(action.toolCalls, m.toolCalls); // each call whole: what the fragments built
        return ended(m, toolCalls ? { ...outcome, toolCalls } : outcome);
      }));
      return { ...state, messages, active: endActive(state, action.streamId) };
    }
    case "error": {
      const error = { code: action.code, message: action.message };
      if (action.retryAfter != null) error.retryAfter = action.retryAfter;
      const messages = updateReply(state, action.streamId, whileStreaming((m) => ended(m, { status: "error", error })));
      return { ...state, messages, active: endActive(state, action.streamId) };
    }
    case "new_chat":
      // The hook has stopped a running reply first; its terminal event, if it comes, finds no reply to end.
      return { ...state, messages: [], active: null };
    default:
      return state;
  }
}

/**
 * The state a page starts with, from what an earlier load of this tab kept (chatStorage.js), or the initial one.
 * A reply that was still running, with its token, is running again, "Reconnecting…", for the hook to resume from
 * its cursor; one without a token was never confirmed by the server, and ends.
 */
export function restoreState(saved) {
  if (!saved || !Array.isArray(saved.messages) || saved.messages.length === 0) return initialState;
  const running = saved.messages.filter((m) => m.role === "assistant" && m.status === "streaming" && m.resumeToken);
  const resumed = running.at(-1) ?? null;
  const messages = saved.messages.map((m) => {
    if (m.role !== "assistant" || m.status !== "streaming") return m;
    if (m === resumed) return { ...m, reconnecting: true };
    return ended(m, { status: "error", error: { code: "disconnected", message: NOT_CONFIRMED.reload } });
  });
  const active = resumed ? { streamId: resumed.streamId, transport: resumed.transport, stopping: false } : null;
  return { ...initialState, messages, active };
}

/**
 * The conversation to send: earlier turns plus the new prompt, as the protocol's `messages`, within the budget.
 * A failed turn (a reply that ended in error, and the prompt that produced it) is left out, so one bad turn does
 * not poison the ones after it; so are replies with no text. A stopped reply's partial text is kept, as the user
 * saw it. `system`, if given, goes first and is always kept. `images` (data: URLs) go with the new prompt; earlier
 * prompts keep theirs within `imageBudget` (withImages). A reply's reasoning and tool calls are not sent back.
 */
export function conversationFor(messages, prompt, {
  system = null, budget = HISTORY_BUDGET, images = null, imageBudget = IMAGE_BUDGET,
} = {}) {
  const failed = new Set(messages.filter((m) => m.role === "assistant" && m.status === "error").map((m) => m.streamId));
  const turns = messages
    .filter((m) => !(m.streamId != null && failed.has(m.streamId)))
    .filter((m) => m.role === "user" || (m.status !== "streaming" && m.content !== ""))
    .map((m) => ({ role: m.role, content: m.content, images: m.images }));
  const history = [...turns, { role: "user", content: prompt, images }];
  const trimmed = trimHistory(system ? [{ role: "system", content: system }, ...history] : history, budget);
  return withImages(trimmed, imageBudget);
}

/**
 * The messages in the protocol's shape: a prompt with images has a list of parts as its content, its text then
 * each image (a data: URL). Images count against `budget` from the newest back (the server refuses more than
 * MAX_IMAGES per request, and a request over MAX_REQUEST_BYTES); an older prompt over it is sent as its text alone.
 */
function withImages(messages, budget) {
  let count = 0;
  let chars = 0;
  const out = [];
  for (const { images, ...m } of [...messages].reverse()) {
    const size = (images ?? []).reduce((sum, url) => sum + url.length, 0);
    const fits = images?.length && count + images.length <= budget.count && chars + size <= budget.chars;
    if (!fits) {
      out.push(m);
      continue;
    }
    count += images.length;
    chars += size;
    const parts = m.content ? [{ type: "text", text: m.content }] : [];
    out.push({ ...m, content: [...parts, ...images.map((url) => ({ type: "image_url", image_url: { url } }))] });
  }
  return out.reverse();
}

/**
 * Leave out the oldest turns (a user message and the replies after it) until the messages hold at most
 * `budget.chars` characters and `budget.messages` messages. Leading system messages and the last turn (the new
 * prompt) are always kept, even when they alone are over: the server then says what is too long.
 */
export function trimHistory(messages, budget = HISTORY_BUDGET) {
  let lead = 0;
  while (lead < messages.length && messages[lead].role === "system") lead += 1;
  const turns = [];
  for (const m of messages.slice(lead)) {
    if (m.role === "user" || turns.length === 0) turns.push([m]);
    else turns.at(-1).push(m);
  }
  const size = (list) => list.reduce((sum, m) => sum + m.content.length, 0);
  let chars = size(messages);
  let count = messages.length;
  let first = 0;
  while (first < turns.length - 1 && (chars > budget.chars || count > budget.messages)) {
    chars -= size(turns[first]);
    count -= turns[first].length;
    first += 1;
  }
  return [...messages.slice(0, lead), ...turns.slice(first).flat()];
}
