// The one hook that owns the connection: every Socket.IO listener, the HTTP stream, stop, resume, throttling,
// the kept conversation, and the access token (asked for when the server refuses the page without one).
import { useCallback, useEffect, useReducer, useRef } from "react";
import { clearToken, getToken, setToken } from "./accessToken.js";
import { resumeDelay } from "./backoff.js";
import { clearChat, loadChat, saveChat } from "./chatStorage.js";
import { chatReducer, conversationFor, restoreState } from "./chatState.js";
import { createChunkBuffer } from "./chunkBuffer.js";
import { socket } from "./socket.js";
import { stopStream, streamPost, streamResume } from "./streamPost.js";

export const RENDER_INTERVAL_MS = 50; // chunks are gathered and rendered at most this often
const ACK_TIMEOUT_MS = 10_000;
const SAVE_INTERVAL_MS = 250;
// An HTTP Stop needs the stream's resume token, which comes with the response's headers: a Stop pressed before
// they arrive waits this long for them, then closes the response anyway (the server then cancels the stream
// when its RESUME_GRACE has passed).
const STOP_WAIT_MS = 3_000;
const RESUMABLE = new Set(["network", "resume_unavailable"]); // an HTTP read that ended so is read again
const GAVE_UP = "The connection dropped, and the rest of the reply could not be fetched.";

const EVENTS = {
  request: "chatgpt_description",
  resume: "chatgpt_description_resume",
  stop: "chatgpt_description_stop",
  chunk: "chatgpt_description_chunk",
  done: "chatgpt_description_done",
  error: "chatgpt_description_error",
};

// getRandomValues, unlike randomUUID, also works on plain http pages that are not localhost.
function newStreamId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What the hook tracks of a running reply, apart from what it shows: the I/O side of resuming.
 * `seq` is the cursor of the last chunk received (-1: none); `waiting` means the reply needs a resume as soon as
 * its transport can send one (after a socket reconnect, a page load, or an HTTP drop's backoff).
 */
function tracked(streamId, transport, { token = null, seq = -1, waiting = false } = {}) {
  return { streamId, transport, token, seq, waiting, stopping: false, controller: null, timer: null, stopTimer: null,
    attempts: 0, resumes: 0 };
}

/** The running replies a reload brought back (restoreState), each waiting for its resume. */
function trackRestored(state) {
  const live = new Map();
  for (const m of state.messages) {
    if (m.role === "assistant" && m.status === "streaming" && m.resumeToken) {
      live.set(m.streamId, tracked(m.streamId, m.transport, { token: m.resumeToken, seq: m.seq ?? -1, waiting: true }));
    }
  }
  return live;
}

function initState() {
  return restoreState(loadChat());
}

export function useChatStream() {
  const [state, dispatch] = useReducer(chatReducer, undefined, initState);
  const live = useRef(null); // streamId -> tracked(...), for every reply still running
  live.current ??= trackRestored(state);
  const everConnected = useRef(false);
  const stateRef = useRef(state);
  stateRef.current = state;
  // Chunks are gathered and rendered together: re-rendering Markdown per token would freeze long replies.
  // Each flush carries the cursor of its last chunk, so the text shown and the cursor kept move together.
  const buffer = useRef(null);
  buffer.current ??= createChunkBuffer(
    (streamId, text, seq, parts) => dispatch({ type: "chunk", streamId, text, seq, parts }),
    RENDER_INTERVAL_MS,
  );

  // The conversation survives a reload of the tab; a running reply's id, token, transport and cursor with it.
  // Saved at most every SAVE_INTERVAL_MS while text streams (a long conversation is a large string), and at once
  // when the tab is hidden or unloaded. Each save is one state's messages, so its text and cursor always agree:
  // a save that lags only means that a reload's resume reads a little more again.
  const unsaved = useRef(null);
  useEffect(() => {
    unsaved.current ??= setTimeout(() => {
      unsaved.current = null;
      saveChat(stateRef.current.messages);
    }, SAVE_INTERVAL_MS);
  }, [state.messages]);
  useEffect(() => {
    function saveNow() {
      clearTimeout(unsaved.current);
      unsaved.current = null;
      saveChat(stateRef.current.messages);
    }
    window.addEventListener("pagehide", saveNow);
    return () => {
      window.removeEventListener("pagehide", saveNow);
      saveNow();
    };
  }, []);

  const flush = useCallback(() => buffer.current.flush(), []);
  const current = useCallback((entry) => live.current.get(entry.streamId) === entry, []);
  const retry = useRef(null); // retryOverHttp, below

  /**
   * A chunk arrived, with its typed parts (absent: text only). One at or before the cursor is already shown (a
   * resume never repeats it).
   */
  const received = useCallback((streamId, text, seq, parts) => {
    const entry = live.current.get(streamId);
    if (!entry) return; // a reply the page no longer shows (New chat), or never started
    if (seq != null) {
      if (seq <= entry.seq) return;
      entry.seq = seq;
    }
    entry.attempts = 0; // progress: a later drop gets the whole backoff again
    buffer.current.add(streamId, text, seq ?? null, parts ?? null);
  }, []);

  // A terminal event renders what is buffered first, so the final text is always complete.
  const end = useCallback((action) => {
    const entry = live.current.get(action.streamId);
    if (entry) {
      clearTimeout(entry.timer);
      clearTimeout(entry.stopTimer);
      live.current.delete(action.streamId);
    }
    flush();
    dispatch(action);
  }, [flush]);

  const endWithError = useCallback((streamId, { code, message, retry_after: retryAfter }) => {
    end({ type: "error", streamId, code, message, retryAfter });
  }, [end]);

  // A refusal with a code ends the connection for good (socket.io-client does not retry it): say why, and for
  // `unauthorized` forget the refused token and ask for one.
  const refused = useCallback((code, message, hadToken) => {
    if (code === "unauthorized") clearToken();
    dispatch({ type: "connection", event: "refused", code, message, hadToken });
  }, []);

  /** Over Socket.IO: ask for the rest of a reply, from its cursor, on this (new) connection. */
  const resumeOverSocket = useCallback((entry) => {
    entry.waiting = false;
    const attempt = (entry.resumes += 1);
    flush(); // the cursor sent is that of the text shown
    const request = { stream_id: entry.streamId, after_seq: entry.seq, resume_token: entry.token };
    // No timeout: a connection that dies takes the ack with it, and its reconnect sends the resume again.
    socket.emit(EVENTS.resume, request, (ack) => {
      if (!current(entry) || entry.resumes !== attempt) return; // a reply ended, or an older attempt's ack
      if (!ack?.error) {
        dispatch({ type: "resumed", streamId: entry.streamId });
        return;
      }
      const delay = ack.error.code === "resume_unavailable" ? resumeDelay(entry.attempts, ack.error.retry_after) : null;
      if (delay === null) {
        endWithError(entry.streamId, ack.error); // stream_expired, invalid_request, ...: in plain words, text kept
        return;
      }
      entry.attempts += 1;
      entry.timer = setTimeout(() => {
        entry.timer = null;
        if (!current(entry)) return;
        if (socket.connected) resumeOverSocket(entry);
        else entry.waiting = true; // the next connect sends it
      }, delay);
    });
  }, [current, endWithError, flush]);

  /** Read one HTTP response of a reply (the POST, or a resume), through to its end, its drop or its abort. */
  const readOverHttp = useCallback(async (entry, open, onOpened) => {
    const controller = new AbortController();
    entry.controller = controller;
    const { streamId } = entry;
    const token = getToken();
    try {
      await open({
        signal: controller.signal,
        token,
        onOpen(opened) {
          onOpened(opened);
          if (entry.stopping && entry.token) {
            clearTimeout(entry.stopTimer); // a Stop pressed before the token came: send it now
            stopStream(streamId, entry.token, { token });
            controller.abort();
          }
        },
        onEvent(event) {
          if (!current(entry) || controller.signal.aborted) return;
          if (event.type === "chunk") received(streamId, event.text, event.seq, event.parts);
          else if (event.type === "done") {
            end({ type: "done", streamId, finishReason: event.finish_reason, usage: event.usage,
              toolCalls: event.tool_calls });
          }
          else if (event.type === "error") {
            if (RESUMABLE.has(event.code) && entry.token && !entry.stopping) retry.current(entry, event);
            else {
              endWithError(streamId, event);
              if (event.code === "unauthorized") refused(event.code, event.message, token !== null);
            }
          }
        },
      });
    } catch (err) {
      if (err.name !== "AbortError") throw err;
      // A Stop closes the response (after sending the stop itself); an unmount closes it and resumes on remount.
      if (entry.stopping && current(entry)) end({ type: "done", streamId, finishReason: "cancelled", usage: null });
    } finally {
      if (entry.controller === controller) entry.controller = null;
    }
  }, [current, end, endWithError, received, refused]);

  /** Over HTTP: GET the rest of a reply from its cursor (docs/protocol.md, "Resuming a stream"). */
  const resumeOverHttp = useCallback((entry) => {
    entry.waiting = false;
    flush(); // the cursor sent is that of the text shown
    readOverHttp(entry, (options) => streamResume(entry.streamId, entry.seq, entry.token, options), () => {
      if (current(entry)) dispatch({ type: "resumed", streamId: entry.streamId });
    });
  }, [current, flush, readOverHttp]);

  /** An HTTP read that dropped mid-reply (or was refused for now): "Reconnecting…", then again after a backoff. */
  const retryOverHttp = useCallback((entry, error) => {
    const delay = resumeDelay(entry.attempts, error.retry_after);
    if (delay === null) {
      endWithError(entry.streamId, error.code === "network" ? { ...error, message: GAVE_UP } : error);
      return;
    }
    entry.attempts += 1;
    flush();
    dispatch({ type: "resuming", streamId: entry.streamId });
    entry.timer = setTimeout(() => {
      entry.timer = null;
      if (current(entry)) resumeOverHttp(entry);
    }, delay);
  }, [current, endWithError, flush, resumeOverHttp]);
  retry.current = retryOverHttp; // readOverHttp calls it through this ref: each needs the other

  useEffect(() => {
    const connection = (event, extra = {}) => dispatch({ type: "connection", event, ...extra });
    function onConnect() {
      everConnected.current = true;
      connection("connect");
      for (const entry of live.current.values()) {
        if (entry.transport === "socket" && entry.waiting) resumeOverSocket(entry);
      }
    }
    function onDisconnect() {
      flush();
      // The server keeps each stream RESUME_GRACE seconds: a reply with its token waits for the reconnect's resume.
      for (const entry of [...live.current.values()]) {
        if (entry.transport !== "socket") continue;
        clearTimeout(entry.timer);
        entry.timer = null;
        if (entry.token) entry.waiting = true;
        else live.current.delete(entry.streamId); // never acknowledged: the reducer ends it
      }
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
      for (const entry of live.current.values()) {
        if (entry.transport === "http" && entry.timer !== null) {
          clearTimeout(entry.timer); // back online: no need to sit out the rest of the backoff
          entry.timer = null;
          resumeOverHttp(entry);
        }
      }
    }
    function onChunk(text, meta) {
      received(meta.stream_id, text, meta.seq, meta.parts);
    }
    function onDone(done) {
      end({ type: "done", streamId: done.stream_id, finishReason: done.finish_reason, usage: done.usage,
        toolCalls: done.tool_calls });
    }
    function onError(error) {
      if (error.stream_id == null) return; // a refusal, which the ack reports; it ends no running reply
      endWithError(error.stream_id, error);
    }

    // Every listener this hook owns, each removed with off(event, handler) on cleanup.
    const listeners = [
      [socket, "connect", onConnect],
      [socket, "disconnect", onDisconnect],
      [socket, "connect_error", onConnectError],
      [socket.io, "reconnect_attempt", onReconnectAttempt],
      [socket.io, "reconnect_failed", onReconnectFailed],
      [socket, EVENTS.chunk, onChunk],
      [socket, EVENTS.done, onDone],
      [socket, EVENTS.error, onError],
    ];
    for (const [emitter, event, handler] of listeners) emitter.on(event, handler);
    window.addEventListener("offline", onBrowserOffline);
    window.addEventListener("online", onBrowserOnline);
    // HTTP replies brought back by a reload (or a remount) are read again at once; socket ones on connect.
    for (const entry of live.current.values()) {
      if (entry.transport === "http" && entry.waiting) resumeOverHttp(entry);
    }
    socket.connect(); // a no-op when already connected
    if (socket.connected) onConnect();

    return () => {
      for (const [emitter, event, handler] of listeners) emitter.off(event, handler);
      window.removeEventListener("offline", onBrowserOffline);
      window.removeEventListener("online", onBrowserOnline);
      socket.disconnect();
      flush(); // keep the text received: the cursor already counts it
      for (const entry of [...live.current.values()]) {
        clearTimeout(entry.timer);
        entry.timer = null;
        entry.controller?.abort(); // not a stop: the stream waits for the resume a remount sends
        if (entry.token) entry.waiting = true;
        else {
          const message = "The page closed the connection before the server confirmed the request; send it again.";
          endWithError(entry.streamId, { code: "disconnected", message });
        }
      }
    };
  }, [end, endWithError, flush, received, refused, resumeOverHttp, resumeOverSocket]);

  const sendOverSocket = useCallback(async (entry, request) => {
    if (!socket.connected) {
      // socket.io would buffer the emit and start the stream on reconnection, long after this reply gave up.
      const message = "The page is not connected to the server; try again once it is.";
      endWithError(request.stream_id, { code: "network", message });
      return;
    }
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(EVENTS.request, request).catch(() => {
      // The stream may still start late: stop it, so it neither runs unseen nor holds one of our slots.
      if (socket.connected) socket.emit(EVENTS.stop, { stream_id: request.stream_id });
      return { error: { code: "network", message: "The server did not acknowledge the request." } };
    });
    if (!current(entry)) return; // ended already: its short reply came before the ack, or New chat
    // The server also emits chatgpt_description_error, but with stream_id null when the id is taken,
    // so the ack is what ends this reply on a refusal.
    if (ack.error) {
      endWithError(request.stream_id, ack.error);
      return;
    }
    entry.token = ack.resume_token;
    dispatch({ type: "opened", streamId: entry.streamId, resumeToken: entry.token });
  }, [current, endWithError]);

  const sendOverHttp = useCallback((entry, request) => {
    readOverHttp(entry, (options) => streamPost(request, options), (opened) => {
      entry.token = opened.resumeToken;
      if (current(entry) && entry.token) dispatch({ type: "opened", streamId: entry.streamId, resumeToken: entry.token });
    });
  }, [current, readOverHttp]);

  /** Send a prompt (and images, as data: URLs) as the next turn of the conversation, over "socket" or "http". */
  const send = useCallback((prompt, { transport, model, images = [] }) => {
    const now = stateRef.current;
    if (now.active || (!prompt.trim() && images.length === 0)) return;
    const streamId = newStreamId();
    const request = { messages: conversationFor(now.messages, prompt, { images }), stream_id: streamId };
    if (model) request.model = model;
    const entry = tracked(streamId, transport);
    live.current.set(streamId, entry);
    dispatch({ type: "send", streamId, prompt, transport, images });
    if (transport === "http") sendOverHttp(entry, request);
    else sendOverSocket(entry, request);
  }, [sendOverHttp, sendOverSocket]);

  /**
   * Stop a running reply, wherever it is: on its live connection (Socket.IO's stop; over HTTP the stop request
   * with its token, then the response closed), or, while it waits to be resumed, by the stop request alone, and
   * the reply ends here. Closing a response alone would leave the stream running for RESUME_GRACE seconds.
   */
  const stopReply = useCallback((streamId) => {
    const entry = live.current.get(streamId);
    if (!entry || entry.stopping) return;
    entry.stopping = true;
    const token = getToken();
    // Whether the reply has a connection now, one that will bring its terminal event after the stop.
    const connected = entry.transport === "socket"
      ? socket.connected && !entry.waiting && entry.timer === null
      : entry.controller !== null;
    if (!connected) {
      if (entry.token) stopStream(streamId, entry.token, { token });
      end({ type: "done", streamId, finishReason: "cancelled", usage: null });
      return;
    }
    if (entry.transport === "socket") {
      // Its terminal event (finish_reason "cancelled") comes as usual and marks it stopped.
      socket.emit(EVENTS.stop, entry.token ? { stream_id: streamId, resume_token: entry.token } : { stream_id: streamId });
    } else if (entry.token) {
      stopStream(streamId, entry.token, { token });
      entry.controller.abort();
    } else {
      const { controller } = entry; // the token comes with the headers: onOpen stops it then
      entry.stopTimer = setTimeout(() => controller.abort(), STOP_WAIT_MS);
    }
  }, [end]);

  /** Stop the running reply; its terminal event (finish_reason "cancelled") marks it stopped. */
  const stop = useCallback(() => {
    const active = stateRef.current.active;
    if (!active || active.stopping) return;
    dispatch({ type: "stop", streamId: active.streamId });
    stopReply(active.streamId);
  }, [stopReply]);

  /** Start over: stop a running reply, then forget the conversation, here and in the tab's storage. */
  const newChat = useCallback(() => {
    const active = stateRef.current.active;
    if (active) stopReply(active.streamId);
    for (const entry of live.current.values()) clearTimeout(entry.timer);
    live.current.clear(); // whatever still arrives for those replies finds nothing to add to
    buffer.current.cancel();
    clearChat();
    dispatch({ type: "new_chat" });
  }, [stopReply]);

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

  return { ...state, send, stop, newChat, submitToken };
}
