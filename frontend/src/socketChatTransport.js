// A `ChatTransport` for the AI SDK's `useChat` (ai 7, @ai-sdk/react 4) over socket.io-client and the relay's
// Socket.IO events (docs/protocol.md, "Socket.IO"; docs/ai-sdk.md, "Over Socket.IO"). A `useChat` app gets Socket.IO's
// reconnects and the relay's exact resume without changing its components:
//
//   const socket = io("https://relay.example", { auth: { token } });
//   const transport = new SocketChatTransport({ socket });
//   const { messages, sendMessage, stop } = useChat({ id, transport, resume: true });
//
// - sendMessages emits the request event with the UI messages as the relay's messages (uiMessagesToRelay.js) and
//   returns the reply as UI message chunks (relayToUIChunks.js);
// - its abortSignal (useChat's `stop()`) sends the relay's stop, with the resume token, so it stops the reply even
//   on a connection that resumed it;
// - when Socket.IO reconnects mid-reply, the stream is resumed from its cursor (the `seq` of the last chunk
//   received), so no piece is lost or doubled, and the same UI message stream goes on;
// - the chat's running stream (its id and resume token) is kept in storage (localStorage by default) until its end,
//   so reconnectToStream (useChat's `resume: true`) replays it after a reload, from its start.
//
// It imports nothing: the app brings its socket.io-client socket, connected to the relay's namespace.

import { RelayToUIChunks } from "./relayToUIChunks.js";
import { toRelayMessages } from "./uiMessagesToRelay.js";

/** @typedef {import("ai").UIMessage} UIMessage */
/** @typedef {import("ai").UIMessageChunk} UIMessageChunk */
/** @typedef {Pick<Storage, "getItem" | "setItem" | "removeItem">} KeyValueStorage */
/**
 * @typedef {object} SocketChatTransportOptions
 * @property {import("socket.io-client").Socket} socket  a socket.io-client socket on the relay's namespace
 *   (`io(url)`, or `io(url + "/ai")` for a relay mounted with `namespace="/ai"`); connected on first use if it is not.
 * @property {string} [event]  the relay's request event, the stem of the others (ChatRelay's `event`);
 *   default "chatgpt_description".
 * @property {object | (() => object | Promise<object>)} [body]  relay request fields sent with every request
 *   (`model`, `temperature`, `tools`...); a request's own `body` (sendMessage's options) wins over them.
 * @property {KeyValueStorage | null} [storage]  where a chat's running stream is kept for reconnectToStream;
 *   default localStorage where there is one; null keeps it in memory only (no resume after a reload).
 * @property {string} [storageKey]  the prefix of the storage keys; default "chat-relay.ai-sdk".
 * @property {number} [ackTimeoutMs]  how long to wait for the relay's ack of a request, resume or stop; default 20000.
 */

const DEFAULT_EVENT = "chatgpt_description";
const STREAM_ID_BYTES = 16; // 32 hex characters, as the relay's own ids

/** A stream id chosen here, so the stream's events can be told apart before its ack arrives. */
function newStreamId() {
  const bytes = crypto.getRandomValues(new Uint8Array(STREAM_ID_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function browserStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // some private modes throw on the very access
  }
}

function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
  };
}

/** An ack that never came (the connection dropped first, or the relay took longer than ackTimeoutMs), as an error. */
function lostAck(err) {
  return { error: { code: "disconnected", message: `No answer from the relay: ${err.message}.` } };
}

function abortError() {
  return new DOMException("The request was aborted.", "AbortError");
}

/**
 * The AI SDK's `ChatTransport` over the relay's Socket.IO events.
 * @implements {import("ai").ChatTransport<UIMessage>}
 */
export class SocketChatTransport {
  /** reconnectToStream replays the reply from its start: useChat then rebuilds the message from nothing. */
  resumeStreamIsReplay = true;

  /** @param {SocketChatTransportOptions} options */
  constructor({ socket, event = DEFAULT_EVENT, body, storage, storageKey = "chat-relay.ai-sdk",
    ackTimeoutMs = 20_000 }) {
    this.socket = socket;
    this.event = event;
    this.body = body;
    this.storage = storage === undefined ? (browserStorage() ?? memoryStorage()) : (storage ?? memoryStorage());
    this.storageKey = storageKey;
    this.ackTimeoutMs = ackTimeoutMs;
    /** @type {Map<string, Delivery>} */
    this.deliveries = new Map(); // stream id -> the stream being read
    this.listeners = null; // on the socket while it is in use: event name -> listener
    this.closing = false;
  }

  /**
   * @param {Parameters<import("ai").ChatTransport<UIMessage>["sendMessages"]>[0]} options
   * @returns {Promise<ReadableStream<UIMessageChunk>>}
   */
  async sendMessages({ chatId, messages, abortSignal, body }) {
    if (abortSignal?.aborted) throw abortError();
    const fields = typeof this.body === "function" ? await this.body() : this.body;
    const streamId = newStreamId();
    const request = { ...fields, ...body, messages: toRelayMessages(messages), stream_id: streamId };
    // The reply continues the last message when that is the assistant's (after a tool's output), as the AI SDK's
    // own backends do; otherwise it is a new message, named after its stream as POST /api/chat names it.
    const last = messages.at(-1);
    // (an id POST /api/chat would echo: 1 to 200 characters, none of them a control character)
    const continued = last?.role === "assistant" && /^[^\x00-\x1f]{1,200}$/.test(last.id ?? "");
    const messageId = continued ? last.id : `msg-${streamId}`;
    const delivery = this.#follow(streamId, chatId, abortSignal, undefined, messageId);
    const ack = await this.#call(this.event, request).catch(lostAck);
    if (ack?.error) delivery.fail(ack.error);
    else delivery.accepted(ack.resume_token);
    return delivery.stream;
  }

  /**
   * The chat's running stream from its start, or null when this chat has none (or its reply is no longer kept).
   * @param {Parameters<import("ai").ChatTransport<UIMessage>["reconnectToStream"]>[0]} options
   * @returns {Promise<ReadableStream<UIMessageChunk> | null>}
   */
  async reconnectToStream({ chatId, abortSignal }) {
    if (abortSignal?.aborted) throw abortError();
    const kept = this.#kept(chatId);
    if (!kept) return null;
    // The signal is followed only once the stream is handed out: an abort before then is useChat dropping this
    // resume for a newer one (a remount), not a stop, and must leave the reply running.
    const delivery = this.#follow(kept.streamId, chatId, undefined, kept.resumeToken, kept.messageId);
    const ack = await this.#resume(delivery).catch(lostAck);
    if (abortSignal?.aborted) {
      delivery.forget();
      throw abortError();
    }
    if (!ack?.error) {
      abortSignal?.addEventListener("abort", () => delivery.stop(), { once: true });
      return delivery.stream;
    }
    delivery.forget();
    if (ack.error.code === "invalid_request" || ack.error.code === "stream_expired") {
      this.#drop(chatId); // gone for good: nothing to resume
      return null;
    }
    throw new Error(`${ack.error.code}: ${ack.error.message}`);
  }

  // ---- the socket's side

  #call(event, payload) {
    if (!this.socket.connected && !this.socket.active) this.socket.connect();
    return this.socket.timeout(this.ackTimeoutMs).emitWithAck(event, payload);
  }

  #resume(delivery) {
    return this.#call(`${this.event}_resume`, {
      stream_id: delivery.streamId, after_seq: delivery.seq, resume_token: delivery.resumeToken,
    });
  }

  #listen() {
    if (this.listeners) return;
    const { event } = this;
    this.listeners = {
      [`${event}_chunk`]: (text, meta) => this.deliveries.get(meta?.stream_id)?.chunk(text, meta),
      [`${event}_done`]: (done) => this.deliveries.get(done?.stream_id)?.end(done),
      [`${event}_error`]: (error) => this.deliveries.get(error?.stream_id)?.fail(error),
      // Every reconnect of the same socket: resume each running reply from its cursor. A stream that was on the old
      // connection had its events cut there; the relay keeps it RESUME_GRACE seconds for this.
      connect: () => {
        for (const delivery of this.deliveries.values()) {
          if (delivery.resumeToken && delivery.lost) this.#resumeLost(delivery);
        }
      },
      disconnect: () => {
        for (const delivery of this.deliveries.values()) delivery.lost = true;
        if (!this.socket.active) { // closed for good (the app's disconnect(), or the server's): no reconnect comes
          for (const delivery of this.deliveries.values()) {
            delivery.fail({ code: "disconnected", message: "The connection to the relay closed." });
          }
        }
      },
    };
    for (const [name, listener] of Object.entries(this.listeners)) this.socket.on(name, listener);
  }

  /**
   * The transport's listeners off the socket (which stays the app's, connected): the ChatTransport's `close`, which
   * AbstractChat.dispose() calls. Replies still running keep them until they end; a later request adds them again.
   */
  close() {
    this.closing = true;
    if (this.deliveries.size) return;
    for (const [name, listener] of Object.entries(this.listeners ?? {})) this.socket.off(name, listener);
    this.listeners = null;
  }

  async #resumeLost(delivery) {
    delivery.lost = false;
    const ack = await this.#resume(delivery).catch(() => null); // null: lost again; the next connect retries
    if (ack?.error) delivery.fail(ack.error);
  }

  #follow(streamId, chatId, abortSignal, resumeToken, messageId = `msg-${streamId}`) {
    this.closing = false;
    this.#listen();
    const delivery = new Delivery(this, streamId, chatId, resumeToken, messageId);
    this.deliveries.set(streamId, delivery);
    abortSignal?.addEventListener("abort", () => delivery.stop(), { once: true });
    return delivery;
  }

  /** Stop the stream at the relay: with its token, which works on any connection, the one that resumed it too. */
  stopStream(delivery) {
    const payload = { stream_id: delivery.streamId };
    if (delivery.resumeToken) payload.resume_token = delivery.resumeToken;
    this.#call(`${this.event}_stop`, payload).catch(() => {}); // a stop that crosses the end is refused: fine
  }

  // ---- the storage of running streams, per chat

  #key(chatId) {
    return `${this.storageKey}:${chatId}`;
  }

  #kept(chatId) {
    try {
      const kept = JSON.parse(this.storage.getItem(this.#key(chatId)) ?? "null");
      return typeof kept?.streamId === "string" && typeof kept?.resumeToken === "string" ? kept : null;
    } catch {
      return null;
    }
  }

  keep(chatId, streamId, resumeToken, messageId) {
    try {
      this.storage.setItem(this.#key(chatId), JSON.stringify({ streamId, resumeToken, messageId }));
    } catch { /* full or refused: the reply still streams, only a reload cannot pick it up */ }
  }

  #drop(chatId) {
    try {
      this.storage.removeItem(this.#key(chatId));
    } catch { /* as above */ }
  }

  /** The stream of `chatId` ended: nothing to resume after a reload. */
  ended(delivery) {
    this.forget(delivery);
    if (this.#kept(delivery.chatId)?.streamId === delivery.streamId) this.#drop(delivery.chatId);
  }

  forget(delivery) {
    if (this.deliveries.get(delivery.streamId) === delivery) this.deliveries.delete(delivery.streamId);
    if (this.closing) this.close();
  }
}

/** One stream being read: its cursor, its translator, and the ReadableStream handed to useChat. */
class Delivery {
  constructor(transport, streamId, chatId, resumeToken, messageId) {
    this.transport = transport;
    this.streamId = streamId;
    this.messageId = messageId;
    this.chatId = chatId;
    this.resumeToken = resumeToken;
    this.seq = -1; // the cursor: the last piece received
    this.lost = false; // its connection dropped; resumed on the next connect
    this.closed = false;
    this.stopped = false;
    this.translator = new RelayToUIChunks(messageId);
    this.stream = new ReadableStream({
      start: (controller) => { this.controller = controller; },
      cancel: () => this.stop(),
    });
  }

  accepted(resumeToken) {
    this.resumeToken = resumeToken;
    if (this.stopped) this.transport.stopStream(this); // stopped before the ack: the stop needed its token
    if (!this.closed) this.transport.keep(this.chatId, this.streamId, resumeToken, this.messageId);
  }

  #push(chunks) {
    if (this.closed) return;
    try {
      for (const chunk of chunks) this.controller.enqueue(chunk);
    } catch { /* its reader cancelled it */ }
  }

  #close() {
    if (this.closed) return;
    this.closed = true;
    try {
      this.controller.close();
    } catch { /* its reader cancelled it */ }
    this.transport.ended(this);
  }

  chunk(text, meta) {
    if (this.closed || !(meta.seq > this.seq)) return; // already had it: a resume sends from the cursor on
    this.seq = meta.seq;
    this.#push(this.translator.chunk(text, meta.parts));
  }

  end(done) {
    this.#push(this.translator.done(done));
    this.#close();
  }

  fail(error) {
    this.#push(this.translator.error(error));
    this.#close();
  }

  /** useChat's stop(), or its reader gone: the relay stops the reply; this stream ends here. */
  stop() {
    if (this.closed) return;
    this.stopped = true;
    if (this.resumeToken) this.transport.stopStream(this);
    this.#close();
  }

  /** A resume that was refused: nothing was handed out. */
  forget() {
    this.closed = true;
    this.transport.forget(this);
  }
}
