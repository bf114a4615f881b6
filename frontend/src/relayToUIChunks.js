// The relay's events as the AI SDK's UI message chunks (ai 7's UI message stream protocol): one translator per
// stream, fed the chunk and terminal events in order, returning the UI message chunks each one makes. Kept pure.
//
// A reply is one step: `start` (with the reply's message id), `start-step`, then its parts as they stream
// (reasoning-*, text-*, and for each tool call tool-input-start and tool-input-delta), and at the end each call's
// `tool-input-available` (its input parsed from the whole arguments), `finish-step` and `finish` with the finish
// reason. A tool the relay ran itself (`tool_result`, `tool_error`) gives `tool-output-available` or
// `tool-output-error` after the calls' whole inputs, and the model's next reply a step of its own. A failure is an `error` chunk whose text starts with the relay's code ("upstream_timeout: ..."); a stop is
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
    this.run = null; // the open text or reasoning run: {kind, id}
    this.runs = { text: 0, reasoning: 0 }; // each kind's runs so far: ids text-0, reasoning-0, ...
    this.calls = new Map(); // tool call index -> {id, name, args, started, available}
    this.afterTools = false; // the relay's own tools have run: the next part begins the next step
  }

  /** @returns {UIMessageChunk[]} */
  #start() {
    if (this.started) return [];
    this.started = true;
    return [{ type: "start", messageId: this.messageId }, { type: "start-step" }];
  }

  #closeRun() {
    if (!this.run) return [];
    const { kind, id } = this.run;
    this.run = null;
    return [{ type: `${kind}-end`, id }];
  }

  /** After the relay's tools ran, the model's next reply is the AI SDK's next step. */
  #nextStep() {
    if (!this.afterTools) return [];
    this.afterTools = false;
    return [{ type: "finish-step" }, { type: "start-step" }];
  }

  #delta(kind, delta) {
    const out = this.#nextStep();
    if (this.run?.kind !== kind) {
      out.push(...this.#closeRun());
      this.run = { kind, id: `${kind}-${this.runs[kind]++}` };
      out.push({ type: `${kind}-start`, id: this.run.id });
    }
    out.push({ type: `${kind}-delta`, id: this.run.id, delta });
    return out;
  }

  #toolCall(part) {
    let call = this.calls.get(part.index);
    if (!call) {
      call = { args: "", started: false, available: false };
      this.calls.set(part.index, call);
    }
    if (part.id !== undefined) call.id = part.id;
    if (part.name !== undefined) call.name = part.name;
    call.args += part.arguments ?? "";
    if (!call.started) {
      if (call.id === undefined || call.name === undefined) return []; // its start waits for both
      call.started = true;
      const out = [...this.#nextStep(), ...this.#closeRun(),
        { type: "tool-input-start", toolCallId: call.id, toolName: call.name }];
      if (call.args) out.push({ type: "tool-input-delta", toolCallId: call.id, inputTextDelta: call.args });
      return out;
    }
    if (!part.arguments) return [];
    return [{ type: "tool-input-delta", toolCallId: call.id, inputTextDelta: part.arguments }];
  }

  /** A tool the relay ran: the model's reply has ended, so its calls' inputs are whole first. */
  #toolOutput(part) {
    const out = [...this.#closeRun(), ...this.#inputsAvailable()];
    this.afterTools = true;
    if (part.type === "tool_error") {
      return [...out, { type: "tool-output-error", toolCallId: part.id, errorText: part.message }];
    }
    return [...out, { type: "tool-output-available", toolCallId: part.id, output: part.result }];
  }

  /** Each started call's whole input, once: the model has finished its reply. */
  #inputsAvailable() {
    const out = [];
    for (const [, call] of [...this.calls.entries()].sort(([a], [b]) => a - b)) {
      if (call.started && !call.available) {
        call.available = true;
        out.push(toolInput(call.id, call.name, call.args));
      }
    }
    return out;
  }

  /**
   * A `<event>_chunk`: its text and its parts.
   * @returns {UIMessageChunk[]}
   */
  chunk(text, parts) {
    const out = this.#start();
    for (const part of partsOf(text, parts)) {
      if (part.type === "reasoning") out.push(...this.#delta("reasoning", part.text));
      // A refusal is the model's answer in words: the AI SDK has no part of its own for it, so it reads as text.
      else if (part.type === "text" || part.type === "refusal") out.push(...this.#delta("text", part.text));
      else if (part.type === "tool_call") out.push(...this.#toolCall(part));
      else if (part.type === "tool_result" || part.type === "tool_error") out.push(...this.#toolOutput(part));
    }
    return out;
  }

  /**
   * A `<event>_done`: the end of the step and of the message, or an `abort` for a stopped stream.
   * @returns {UIMessageChunk[]}
   */
  done({ finish_reason: reason, tool_calls: toolCalls }) {
    // Stopped: as the AI SDK's streamText ends on an abort, the open run left as it is.
    if (reason === "cancelled") return [...this.#start(), { type: "abort", reason: "stopped" }];
    const out = [...this.#start(), ...this.#closeRun(), ...this.#inputsAvailable()];
    const known = new Set([...this.calls.values()].map((c) => c.id));
    for (const whole of toolCalls ?? []) { // a call not streamed in fragments: whole here
      if (known.has(whole.id)) continue;
      const { name, arguments: args } = whole.function;
      out.push({ type: "tool-input-start", toolCallId: whole.id, toolName: name }, toolInput(whole.id, name, args));
    }
    return [...out, { type: "finish-step" }, { type: "finish", finishReason: FINISH_REASONS[reason] ?? "other" }];
  }

  /**
   * A `<event>_error`, or a refusal in an ack: one error chunk. Before any chunk it starts no message, as a refusal
   * of POST /api/chat (a status) starts none.
   * @returns {UIMessageChunk[]}
   */
  error(error) {
    return [...this.#closeRun(), { type: "error", errorText: errorText(error) }];
  }
}

function toolInput(id, name, args) {
  try {
    return { type: "tool-input-available", toolCallId: id, toolName: name, input: JSON.parse(args || "{}") };
  } catch {
    return { type: "tool-input-error", toolCallId: id, toolName: name, input: args,
      errorText: "The model's arguments for this call are not valid JSON." };
  }
}
