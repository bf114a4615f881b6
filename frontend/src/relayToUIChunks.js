// The relay's events as the AI SDK's UI message chunks (ai 7's UI message stream protocol): one translator per
// stream, fed the chunk and terminal events in order, returning the UI message chunks each one makes. Kept pure.
//
// A reply is one step: `start` (with the reply's message id), `start-step`, then its parts as they stream
// (reasoning-*, text-*, and for each tool call tool-input-start and tool-input-delta), and at the end each call's
// `tool-input-available` (its input parsed from the whole arguments), `finish-step` and `finish` with the finish
// reason. A failure is an `error` chunk whose text starts with the relay's code ("upstream_timeout: ..."); a stop is
// an `abort` chunk. These are the chunks the relay's POST /api/chat writes for the same events
// (chat_relay/transports/ai_sdk/ui_stream.py; tests/unit/test_ai_sdk_socket_chunks_fast.py compares them).

/** @typedef {import("ai").UIMessageChunk} UIMessageChunk */

const FINISH_REASONS = {
  stop: "stop",
  length: "length",
  content_filter: "content-filter",
  tool_calls: "tool-calls",
  function_call: "tool-calls",
};

/** The error chunk's text for a relay error: its code first, so a program can read it back (`relayErrorCode`). */
export function errorText({ code, message }) {
  return `${code}: ${message}`;
}

/** The relay's code in an error that came from a relay error chunk (useChat's `error`), or null. */
export function relayErrorCode(error) {
  const match = /^([a-z_]+): /.exec(error?.message ?? "");
  return match ? match[1] : null;
}

/** The parts of a relay chunk: its `parts`, or its text alone (docs/protocol.md, "Parts"). */
function partsOf(text, parts) {
  if (Array.isArray(parts)) return parts;
  return text ? [{ type: "text", text }] : [];
}

/** Turns one stream's relay events into UI message chunks. */
export class RelayToUIChunks {
  /** @param {string} messageId  the UI message the reply writes: the same on every read of the stream */
  constructor(messageId) {
    this.messageId = messageId;
    this.started = false;
    this.open = null; // the text or reasoning block being written: {type, id}
    this.blocks = 0;
    this.calls = new Map(); // tool call index -> {toolCallId, toolName, args, started}
  }

  /** @returns {UIMessageChunk[]} */
  #start() {
    if (this.started) return [];
    this.started = true;
    return [{ type: "start", messageId: this.messageId }, { type: "start-step" }];
  }

  #close() {
    if (!this.open) return [];
    const { type, id } = this.open;
    this.open = null;
    return [{ type: `${type}-end`, id }];
  }

  #write(type, delta) {
    const out = [];
    if (this.open?.type !== type) {
      out.push(...this.#close());
      this.open = { type, id: `${type}-${this.blocks++}` };
      out.push({ type: `${type}-start`, id: this.open.id });
    }
    out.push({ type: `${type}-delta`, id: this.open.id, delta });
    return out;
  }

  #toolCall(part) {
    let call = this.calls.get(part.index);
    if (!call) {
      call = { args: "", started: false };
      this.calls.set(part.index, call);
    }
    if (part.id !== undefined) call.toolCallId = part.id;
    if (part.name !== undefined) call.toolName = part.name;
    call.args += part.arguments ?? "";
    if (!call.started) {
      if (call.toolCallId === undefined || call.toolName === undefined) return []; // its start waits for both
      call.started = true;
      const start = { type: "tool-input-start", toolCallId: call.toolCallId, toolName: call.toolName };
      const out = [...this.#close(), start];
      if (call.args) out.push({ type: "tool-input-delta", toolCallId: call.toolCallId, inputTextDelta: call.args });
      return out;
    }
    if (!part.arguments) return [];
    return [{ type: "tool-input-delta", toolCallId: call.toolCallId, inputTextDelta: part.arguments }];
  }

  /**
   * A `<event>_chunk`: its text and its parts.
   * @returns {UIMessageChunk[]}
   */
  chunk(text, parts) {
    const out = this.#start();
    for (const part of partsOf(text, parts)) {
      if (part.type === "reasoning") out.push(...this.#write("reasoning", part.text));
      // A refusal is the model's answer in words: the AI SDK has no part of its own for it, so it reads as text.
      else if (part.type === "text" || part.type === "refusal") out.push(...this.#write("text", part.text));
      else if (part.type === "tool_call") out.push(...this.#toolCall(part));
      else if (part.type === "tool_result") { // a tool the relay ran itself: its result
        const output = part.output ?? null;
        out.push(...this.#close(), { type: "tool-output-available", toolCallId: part.tool_call_id, output });
      }
    }
    return out;
  }

  /** Each call whole, from the done event (or, without it, as streamed), with its input parsed. */
  #inputsAvailable(toolCalls) {
    const started = [...this.calls.entries()].filter(([, c]) => c.started).sort(([a], [b]) => a - b).map(([, c]) => c);
    const calls = toolCalls?.length ? toolCalls
      : started.map((c) => ({ id: c.toolCallId, function: { name: c.toolName, arguments: c.args } }));
    return calls.flatMap(({ id, function: { name, arguments: args } }) => {
      const seen = started.some((c) => c.toolCallId === id);
      const out = seen ? [] : [{ type: "tool-input-start", toolCallId: id, toolName: name }];
      try {
        const input = JSON.parse(args || "{}");
        return [...out, { type: "tool-input-available", toolCallId: id, toolName: name, input }];
      } catch {
        return [...out, { type: "tool-input-error", toolCallId: id, toolName: name, input: args,
          errorText: "The model's arguments for this call are not valid JSON." }];
      }
    });
  }

  /**
   * A `<event>_done`: the end of the step and of the message, or an `abort` for a stopped stream.
   * @returns {UIMessageChunk[]}
   */
  done({ finish_reason: reason, tool_calls: toolCalls }) {
    // Stopped: as the AI SDK's streamText ends on an abort, the open run left as it is.
    if (reason === "cancelled") return [...this.#start(), { type: "abort", reason: "stopped" }];
    const out = [...this.#start(), ...this.#close()];
    out.push(...this.#inputsAvailable(toolCalls), { type: "finish-step" });
    return [...out, { type: "finish", finishReason: FINISH_REASONS[reason] ?? "other" }];
  }

  /**
   * A `<event>_error`, or a refusal in an ack: one error chunk.
   * @returns {UIMessageChunk[]}
   */
  error(error) {
    return [...this.#close(), { type: "error", errorText: errorText(error) }];
  }
}
