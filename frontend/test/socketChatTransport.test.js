// The Socket.IO chat transport against a fake socket playing the relay: what it emits, and what useChat would make
// of what it returns, read with the real `ai` package's readUIMessageStream (the reader useChat uses).
import { readUIMessageStream } from "ai";
import { describe, expect, it } from "vitest";
import { relayErrorCode } from "../src/relayToUIChunks.js";
import { SocketChatTransport } from "../src/socketChatTransport.js";
import { fakeSocket } from "./fakeSocket.js";
import { memoryStorage } from "./memoryStorage.js";

const USER = { id: "u1", role: "user", parts: [{ type: "text", text: "Weather in Oslo?" }] };

async function readAll(stream) {
  const chunks = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

/** The assistant message useChat would show for these chunks, and the error it would report. */
async function uiMessage(chunks) {
  let message;
  let error = null;
  const stream = new ReadableStream({ start(c) { chunks.forEach((x) => c.enqueue(x)); c.close(); } });
  for await (const m of readUIMessageStream({ stream, onError: (e) => { error = e; } })) message = m;
  return { message, error };
}

function setup(options = {}) {
  const relay = fakeSocket();
  const storage = memoryStorage();
  const transport = new SocketChatTransport({ socket: relay.socket, storage, ...options });
  return { relay, storage, transport };
}

async function send(transport, relay, { abortSignal, body, event = "chatgpt_description" } = {}) {
  const streaming = transport.sendMessages({
    chatId: "chat-1", messages: [USER], abortSignal, body, trigger: "submit-message", messageId: undefined,
  });
  const call = await relay.emitted(event);
  call.ack({ stream_id: call.payload.stream_id, resume_token: "token-1" });
  return { stream: await streaming, id: call.payload.stream_id, call };
}

const chunk = (relay, id, seq, text, parts, stem = "chatgpt_description") =>
  relay.fire(`${stem}_chunk`, text, { stream_id: id, seq, ...(parts ? { parts } : {}) });
const done = (relay, id, extra = {}, stem = "chatgpt_description") =>
  relay.fire(`${stem}_done`, { stream_id: id, finish_reason: "stop", chunks: 0, usage: null, ...extra });

describe("SocketChatTransport", () => {
  it("sends the UI messages as the relay's request, with the body's fields and a stream id of its own", async () => {
    const { relay, transport } = setup({ body: { model: "m1", temperature: 0.2 } });
    const { call } = await send(transport, relay, { body: { temperature: 0.5 } });
    expect(call.payload).toEqual({
      model: "m1", temperature: 0.5, messages: [{ role: "user", content: "Weather in Oslo?" }],
      stream_id: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
  });

  it("turns a text reply into one text part, and the finish reason into the AI SDK's", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    chunk(relay, id, 0, "Hello");
    chunk(relay, id, 2, " there.");
    done(relay, id, { finish_reason: "length" });
    const chunks = await readAll(stream);
    expect(chunks.map((c) => c.type)).toEqual(
      ["start", "start-step", "text-start", "text-delta", "text-delta", "text-end", "finish-step", "finish"]);
    expect(chunks.at(-1)).toEqual({ type: "finish", finishReason: "length" });
    const { message } = await uiMessage(chunks);
    expect(message.parts).toEqual([{ type: "step-start" }, { type: "text", text: "Hello there.", state: "done" }]);
  });

  it("turns reasoning, text and a streamed tool call into the parts useChat shows", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    chunk(relay, id, 0, "", [{ type: "reasoning", text: "The user wants" }]);
    chunk(relay, id, 2, "Let me look.", [{ type: "reasoning", text: " weather." }, { type: "text", text: "Let me look." }]);
    chunk(relay, id, 3, "", [{ type: "tool_call", index: 0, id: "call_1", name: "get_weather", arguments: "" }]);
    chunk(relay, id, 5, "", [{ type: "tool_call", index: 0, arguments: '{"city": "Oslo"}' }]);
    const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Oslo"}' } };
    done(relay, id, { finish_reason: "tool_calls", tool_calls: [call] });
    const chunks = await readAll(stream);
    expect(chunks.filter((c) => c.type.startsWith("tool-"))).toEqual([
      { type: "tool-input-start", toolCallId: "call_1", toolName: "get_weather" },
      { type: "tool-input-delta", toolCallId: "call_1", inputTextDelta: '{"city": "Oslo"}' },
      { type: "tool-input-available", toolCallId: "call_1", toolName: "get_weather", input: { city: "Oslo" } },
    ]);
    expect(chunks.at(-1)).toEqual({ type: "finish", finishReason: "tool-calls" });
    const { message } = await uiMessage(chunks);
    expect(message.parts).toMatchObject([
      { type: "step-start" },
      { type: "reasoning", text: "The user wants weather.", state: "done" },
      { type: "text", text: "Let me look.", state: "done" },
      { type: "tool-get_weather", toolCallId: "call_1", state: "input-available", input: { city: "Oslo" } },
    ]);
  });

  it("ends with an error chunk that keeps the relay's code, on the error event and on a refused request", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    chunk(relay, id, 0, "Hel");
    relay.fire("chatgpt_description_error", { stream_id: id, code: "upstream_timeout", message: "The model went quiet." });
    const { message, error } = await uiMessage(await readAll(stream));
    expect(message.parts.at(-1)).toMatchObject({ type: "text", text: "Hel" });
    expect(error.message).toBe("upstream_timeout: The model went quiet.");
    expect(relayErrorCode(error)).toBe("upstream_timeout");

    const refused = transport.sendMessages({ chatId: "c2", messages: [USER], trigger: "submit-message" });
    const call = await relay.emitted("chatgpt_description", 2);
    call.ack({ error: { code: "too_many_streams", message: "You have 4 streams running." } });
    // The relay also emits the error event: the one error chunk comes of whichever arrives first.
    relay.fire("chatgpt_description_error", { stream_id: call.payload.stream_id, ...call.payload.error,
      code: "too_many_streams", message: "You have 4 streams running." });
    expect(await readAll(await refused)).toEqual([{ type: "error", errorText: "too_many_streams: You have 4 streams running." }]);
  });

  it("names the reply's message after its stream, or continues the assistant's message after a tool's output", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    done(relay, id);
    expect((await readAll(stream))[0]).toEqual({ type: "start", messageId: `msg-${id}` });

    const assistant = { id: "a1", role: "assistant", parts: [
      { type: "tool-clock", toolCallId: "c1", state: "output-available", input: {}, output: "noon" }] };
    const continuing = transport.sendMessages({ chatId: "chat-1", messages: [USER, assistant], trigger: "submit-message" });
    const call = await relay.emitted("chatgpt_description", 2);
    call.ack({ stream_id: call.payload.stream_id, resume_token: "t2" });
    done(relay, call.payload.stream_id);
    expect((await readAll(await continuing))[0]).toEqual({ type: "start", messageId: "a1" });
  });

  it("closes the open text before an error, as the relay's POST /api/chat does", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    chunk(relay, id, 0, "Hel");
    relay.fire("chatgpt_description_error", { stream_id: id, code: "interrupted", message: "Cut." });
    expect((await readAll(stream)).slice(-2)).toEqual([
      { type: "text-end", id: "text-0" }, { type: "error", errorText: "interrupted: Cut." }]);
  });

  it("stops the reply at the relay, with its resume token, when useChat aborts", async () => {
    const { relay, transport, storage } = setup();
    const abort = new AbortController();
    const { stream, id } = await send(transport, relay, { abortSignal: abort.signal });
    chunk(relay, id, 0, "Hel");
    abort.abort();
    const stop = await relay.emitted("chatgpt_description_stop");
    expect(stop.payload).toEqual({ stream_id: id, resume_token: "token-1" });
    done(relay, id, { finish_reason: "cancelled" }); // the relay's terminal event: nobody reads it now
    expect((await readAll(stream)).map((c) => c.type)).toEqual(["start", "start-step", "text-start", "text-delta"]);
    expect(storage.getItem("chat-relay.ai-sdk:chat-1")).toBeNull(); // nothing left to resume after a reload
  });

  it("stops a reply aborted before the relay's ack as soon as the ack brings its token", async () => {
    const { relay, transport } = setup();
    const abort = new AbortController();
    const streaming = transport.sendMessages({ chatId: "c", messages: [USER], abortSignal: abort.signal });
    const call = await relay.emitted("chatgpt_description");
    abort.abort();
    call.ack({ stream_id: call.payload.stream_id, resume_token: "token-9" });
    await readAll(await streaming);
    const stop = await relay.emitted("chatgpt_description_stop");
    expect(stop.payload).toEqual({ stream_id: call.payload.stream_id, resume_token: "token-9" });
  });

  it("resumes from the exact cursor when Socket.IO reconnects: nothing lost, nothing doubled", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    chunk(relay, id, 0, "", [{ type: "reasoning", text: "Thinking" }]);
    chunk(relay, id, 2, "One ");
    relay.dropConnection();
    relay.reconnect();
    const resume = await relay.emitted("chatgpt_description_resume");
    expect(resume.payload).toEqual({ stream_id: id, after_seq: 2, resume_token: "token-1" });
    resume.ack({ stream_id: id });
    chunk(relay, id, 2, "One "); // a piece it already has is not taken twice
    chunk(relay, id, 3, "two.");
    done(relay, id, { chunks: 4 });
    const chunks = await readAll(stream);
    expect(chunks.filter((c) => c.type === "start")).toHaveLength(1); // one message, continued
    const { message } = await uiMessage(chunks);
    expect(message.parts.slice(1).map((p) => [p.type, p.text])).toEqual([["reasoning", "Thinking"], ["text", "One two."]]);
  });

  it("ends the reply with an error when the socket closes for good", async () => {
    const { relay, transport } = setup();
    const { stream, id } = await send(transport, relay);
    chunk(relay, id, 0, "Hi");
    relay.dropConnection({ forGood: true });
    const chunks = await readAll(stream);
    expect(chunks.at(-1)).toEqual({ type: "error", errorText: "disconnected: The connection to the relay closed." });
  });

  it("keeps the chat's running stream, so another page's transport replays it from its start", async () => {
    const { relay, transport, storage } = setup();
    const { id } = await send(transport, relay);
    expect(JSON.parse(storage.getItem("chat-relay.ai-sdk:chat-1")))
      .toEqual({ streamId: id, resumeToken: "token-1", messageId: `msg-${id}` });

    const reloaded = new SocketChatTransport({ socket: relay.socket, storage }); // the page after a reload
    const resuming = reloaded.reconnectToStream({ chatId: "chat-1" });
    const resume = await relay.emitted("chatgpt_description_resume");
    expect(resume.payload).toEqual({ stream_id: id, after_seq: -1, resume_token: "token-1" });
    resume.ack({ stream_id: id });
    const stream = await resuming;
    chunk(relay, id, 0, "Hello");
    done(relay, id);
    const { message } = await uiMessage(await readAll(stream));
    expect(message.id).toBe(`msg-${id}`); // the message the first page was writing: useChat replaces it, not adds one
    expect(message.parts.at(-1)).toMatchObject({ type: "text", text: "Hello" });
    expect(storage.getItem("chat-relay.ai-sdk:chat-1")).toBeNull(); // ended: a later reload finds nothing to resume
    expect(await reloaded.reconnectToStream({ chatId: "chat-1" })).toBeNull();
    expect(reloaded.resumeStreamIsReplay).toBe(true);
  });

  it("answers null for a kept stream the relay no longer has, and forgets it", async () => {
    const { relay, transport, storage } = setup();
    storage.setItem("chat-relay.ai-sdk:old", JSON.stringify({ streamId: "s1", resumeToken: "t" }));
    const resuming = transport.reconnectToStream({ chatId: "old" });
    (await relay.emitted("chatgpt_description_resume")).ack({ error: { code: "stream_expired", message: "Gone." } });
    expect(await resuming).toBeNull();
    expect(storage.getItem("chat-relay.ai-sdk:old")).toBeNull();
  });

  it("speaks a relay mounted under other event names", async () => {
    const { relay, transport } = setup({ event: "assistant" });
    const { stream, id } = await send(transport, relay, { event: "assistant" });
    chunk(relay, id, 0, "Hi", undefined, "assistant");
    chunk(relay, id, 1, "ignored", undefined, "chatgpt_description"); // the default names are not the relay's here
    done(relay, id, {}, "assistant");
    const { message } = await uiMessage(await readAll(stream));
    expect(message.parts.at(-1)).toMatchObject({ type: "text", text: "Hi" });
  });

  it("connects a socket that is not connected yet", async () => {
    const { relay, transport } = setup();
    relay.socket.connected = false;
    relay.socket.active = false;
    transport.sendMessages({ chatId: "c", messages: [USER] });
    await relay.emitted("chatgpt_description");
    expect(relay.socket.connects).toBe(1);
  });
});

describe("SocketChatTransport.reconnectToStream", () => {
  it("leaves the reply running when useChat drops a resume for a newer one before it was handed out", async () => {
    const relay = fakeSocket();
    const storage = memoryStorage();
    storage.setItem("chat-relay.ai-sdk:c", JSON.stringify({ streamId: "s1", resumeToken: "t1" }));
    const transport = new SocketChatTransport({ socket: relay.socket, storage });
    const first = new AbortController();
    const dropped = transport.reconnectToStream({ chatId: "c", abortSignal: first.signal });
    const newer = transport.reconnectToStream({ chatId: "c" });
    first.abort(); // what useChat does to the older resume when it starts another (React's StrictMode remount)
    (await relay.emitted("chatgpt_description_resume", 1)).ack({ stream_id: "s1" });
    (await relay.emitted("chatgpt_description_resume", 2)).ack({ stream_id: "s1" });
    await expect(dropped).rejects.toMatchObject({ name: "AbortError" });
    const stream = await newer;
    chunk(relay, "s1", 0, "Still ");
    chunk(relay, "s1", 0, "Still "); // the relay follows the stream once per resume: the second copy is dropped
    chunk(relay, "s1", 1, "here.");
    done(relay, "s1");
    const { message } = await uiMessage(await readAll(stream));
    expect(message.parts.at(-1)).toMatchObject({ type: "text", text: "Still here." });
    expect(relay.calls.filter((c) => c.event === "chatgpt_description_stop")).toEqual([]);
  });
});

describe("SocketChatTransport.sendMessages, refused on this side", () => {
  it("rejects messages the relay cannot take before emitting anything, so useChat shows the error", async () => {
    const { relay, transport } = setup();
    const pdf = { id: "u", role: "user", parts: [{ type: "file", mediaType: "application/pdf", url: "data:," }] };
    await expect(transport.sendMessages({ chatId: "c", messages: [pdf] })).rejects.toThrow(/^invalid_request: /);
    expect(relay.calls).toEqual([]);
  });
});

describe("SocketChatTransport.close", () => {
  it("takes its listeners off the socket once its replies have ended, and puts them back for the next", async () => {
    const { relay, transport } = setup();
    const listening = () => ["chatgpt_description_chunk", "connect", "disconnect"]
      .map((event) => relay.socket.listeners(event).length);
    const { stream, id } = await send(transport, relay);
    transport.close(); // a reply is running: it keeps them until its end
    expect(listening()).toEqual([1, 1, 1]);
    chunk(relay, id, 0, "Hi");
    done(relay, id);
    await readAll(stream);
    expect(listening()).toEqual([0, 0, 0]);
    const sending = transport.sendMessages({ chatId: "c", messages: [USER] });
    const call = await relay.emitted("chatgpt_description", 2);
    call.ack({ stream_id: call.payload.stream_id, resume_token: "t2" });
    const next = await sending;
    expect(listening()).toEqual([1, 1, 1]);
    done(relay, call.payload.stream_id);
    expect((await readAll(next)).at(-1)).toEqual({ type: "finish", finishReason: "stop" });
  });
});
