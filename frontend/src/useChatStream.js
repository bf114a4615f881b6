// The one hook that owns the connection: every Socket.IO listener, the HTTP stream, stop, throttling,
// and the access token (asked for when the server refuses the page without one).
import { useCallback, useEffect, useReducer, useRef } from "react";
import { clearToken, getToken, setToken } from "./accessToken.js";
import { chatReducer, conversationFor, initialState } from "./chatState.js";
import { createChunkBuffer } from "./chunkBuffer.js";
import { socket } from "./socket.js";
import { streamPost } from "./streamPost.js";

export const RENDER_INTERVAL_MS = 50; // chunks are gathered and rendered at most this often

// getRandomValues, unlike randomUUID, also works on plain http pages that are not localhost.
function newStreamId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function useChatStream() {
  const [state, dispatch] = useReducer(chatReducer, initialState);
  const aborts = useRef(new Map()); // streamId -> AbortController, for HTTP streams
  const everConnected = useRef(false);
  const stateRef = useRef(state);
  stateRef.current = state;
  // Chunks are gathered and rendered together: re-rendering Markdown per token would freeze long replies.
  const buffer = useRef(null);
  buffer.current ??= createChunkBuffer((streamId, text) => dispatch({ type: "chunk", streamId, text }), RENDER_INTERVAL_MS);

  const flush = useCallback(() => buffer.current.flush(), []);
  const addChunk = useCallback((streamId, text) => buffer.current.add(streamId, text), []);

  // A terminal event renders what is buffered first, so the final text is always complete.
  const finish = useCallback(
    (action) => {
      flush();
      dispatch(action);
    },
    [flush],
  );

  // A refusal with a code ends the connection for good (socket.io-client does not retry it): say why, and for
  // `unauthorized` forget the refused token and ask for one.
  const refused = useCallback((code, message, hadToken) => {
    if (code === "unauthorized") clearToken();
    dispatch({ type: "connection", event: "refused", code, message, hadToken });
  }, []);

  useEffect(() => {
    const connection = (event, extra = {}) => dispatch({ type: "connection", event, ...extra });
    function onConnect() {
      everConnected.current = true;
      connection("connect");
    }
    function onDisconnect() {
      flush();
      connection("disconnect", { willRetry: socket.active, everConnected: true });
    }
    function onConnectError(err) {
      // The server's own refusal (ConnectionRefusedError) carries {code, message} in err.data; a network
      // failure or a refused handshake carries none, and the manager retries it.
      const code = err?.data?.code;
      if (code && !socket.active) refused(code, err.data.message, getToken() !== null);
      else connection("connect_error", { willRetry: socket.active, everConnected: everConnected.current });
    }
    function onReconnectAttempt() {
      connection("reconnect_attempt");
    }
    function onReconnectFailed() {
      connection("reconnect_failed");
    }
    function onBrowserOffline() {
      connection("browser_offline");
    }
    function onBrowserOnline() {
      if (socket.connected) connection("connect");
    }
    function onChunk(text, meta) {
      addChunk(meta.stream_id, text);
    }
    function onDone(done) {
      finish({ type: "done", streamId: done.stream_id, finishReason: done.finish_reason, usage: done.usage });
    }
    function onError(error) {
      finish({ type: "error", streamId: error.stream_id, code: error.code, message: error.message, retryAfter: error.retry_after });
    }

    // Every listener this hook owns, each removed with off(event, handler) on cleanup.
    const listeners = [
      [socket, "connect", onConnect],
      [socket, "disconnect", onDisconnect],
      [socket, "connect_error", onConnectError],
      [socket.io, "reconnect_attempt", onReconnectAttempt],
      [socket.io, "reconnect_failed", onReconnectFailed],
      [socket, "chatgpt_description_chunk", onChunk],
      [socket, "chatgpt_description_done", onDone],
      [socket, "chatgpt_description_error", onError],
    ];
    for (const [emitter, event, handler] of listeners) emitter.on(event, handler);
    window.addEventListener("offline", onBrowserOffline);
    window.addEventListener("online", onBrowserOnline);
    socket.connect(); // a no-op when already connected
    if (socket.connected) onConnect();

    return () => {
      for (const [emitter, event, handler] of listeners) emitter.off(event, handler);
      window.removeEventListener("offline", onBrowserOffline);
      window.removeEventListener("online", onBrowserOnline);
      socket.disconnect();
      for (const controller of aborts.current.values()) controller.abort();
      buffer.current.cancel();
    };
  }, [addChunk, finish, flush, refused]);

  const sendOverSocket = useCallback(
    async (request) => {
      if (!socket.connected) {
        // socket.io would buffer the emit and start the stream on reconnection, long after this reply gave up.
        const message = "The page is not connected to the server; try again once it is.";
        finish({ type: "error", streamId: request.stream_id, code: "network", message });
        return;
      }
      const ack = await socket.timeout(10_000).emitWithAck("chatgpt_description", request).catch(() => {
        // The stream may still start late: stop it, so it neither runs unseen nor holds one of our slots.
        socket.emit("chatgpt_description_stop", { stream_id: request.stream_id });
        return { error: { code: "network", message: "The server did not acknowledge the request." } };
      });
      // The server also emits chatgpt_description_error, but with stream_id null when the id is taken,
      // so the ack is what ends this reply on a refusal.
      if (ack.error) {
        const { code, message, retry_after: retryAfter } = ack.error;
        finish({ type: "error", streamId: request.stream_id, code, message, retryAfter });
      }
    },
    [finish],
  );

  const sendOverHttp = useCallback(
    async (request) => {
      const controller = new AbortController();
      aborts.current.set(request.stream_id, controller);
      const token = getToken();
      try {
        await streamPost(request, {
          signal: controller.signal,
          token,
          onEvent(event) {
            const streamId = request.stream_id;
            if (event.type === "chunk") addChunk(streamId, event.text);
            else if (event.type === "done") finish({ type: "done", streamId, finishReason: event.finish_reason, usage: event.usage });
            else if (event.type === "error") {
              finish({ type: "error", streamId, code: event.code, message: event.message, retryAfter: event.retry_after });
              if (event.code === "unauthorized") refused(event.code, event.message, token !== null);
            }
          },
        });
      } catch (err) {
        if (err.name !== "AbortError") throw err;
        // Aborting the fetch is how HTTP stops: the server closes the upstream when it next writes.
        finish({ type: "done", streamId: request.stream_id, finishReason: "cancelled", usage: null });
      } finally {
        aborts.current.delete(request.stream_id);
      }
    },
    [addChunk, finish, refused],
  );

  /** Send a prompt as the next turn of the conversation, over "socket" or "http". */
  const send = useCallback(
    (prompt, { transport, model }) => {
      const current = stateRef.current;
      if (current.active || !prompt.trim()) return;
      const streamId = newStreamId();
      const request = { messages: conversationFor(current.messages, prompt), stream_id: streamId };
      if (model) request.model = model;
      dispatch({ type: "send", streamId, prompt, transport });
      if (transport === "http") sendOverHttp(request);
      else sendOverSocket(request);
    },
    [sendOverHttp, sendOverSocket],
  );

  /** Stop the running reply; its terminal event (finish_reason "cancelled") marks it stopped. */
  const stop = useCallback(() => {
    const active = stateRef.current.active;
    if (!active || active.stopping) return;
    dispatch({ type: "stop", streamId: active.streamId });
    if (active.transport === "http") aborts.current.get(active.streamId)?.abort();
    else socket.emit("chatgpt_description_stop", { stream_id: active.streamId });
  }, []);

  /**
   * Use this access token from now on: kept for this tab (sessionStorage), sent by the Socket.IO auth callback
   * at every (re)connection and as the HTTP streams' Bearer header. The connection is restarted to check it.
   */
  const submitToken = useCallback((token) => {
    const trimmed = token.trim();
    if (!trimmed) return;
    setToken(trimmed);
    if (socket.connected) socket.disconnect(); // an HTTP 401 can come while the socket is still connected
    dispatch({ type: "connection", event: "token_submitted" });
    socket.connect();
  }, []);

  return { ...state, send, stop, submitToken };
}
