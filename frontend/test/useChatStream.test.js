// @vitest-environment happy-dom
// The hook's I/O side, with a fake Socket.IO client and a stubbed fetch: what it sends to resume and to stop,
// and what the page then shows. The browser tests (tests/e2e/test_page_resume_e2e.py) run the same against the server.
import { act, createElement } from "react";
import { createRoot } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const fake = vi.hoisted(() => {
  const listeners = new Map();
  const managerListeners = new Map();
  const add = (map, event, fn) => map.set(event, [...(map.get(event) ?? []), fn]);
  const remove = (map, event, fn) => map.set(event, (map.get(event) ?? []).filter((f) => f !== fn));
  const sent = []; // what the page emitted: {event, payload, ack}
  const socket = {
    connected: false,
    active: true,
    on: (event, fn) => add(listeners, event, fn),
    off: (event, fn) => remove(listeners, event, fn),
    io: { on: (event, fn) => add(managerListeners, event, fn), off: (event, fn) => remove(managerListeners, event, fn) },
    connect() {},
    disconnect() {
      socket.connected = false;
    },
    emit(event, payload, ack) {
      sent.push({ event, payload, ack });
    },
    timeout() {
      return {
        emitWithAck: (event, payload) => new Promise((resolve, reject) => sent.push({ event, payload, ack: resolve, reject })),
      };
    },
  };
  const fire = (event, ...args) => {
    for (const fn of listeners.get(event) ?? []) fn(...args);
  };
  return {
    socket,
    sent,
    fire,
    listenerCount: () => [...listeners.values(), ...managerListeners.values()].reduce((n, fns) => n + fns.length, 0),
    reset() {
      listeners.clear();
      managerListeners.clear();
      sent.length = 0;
      socket.connected = false;
    },
  };
});

vi.mock("../src/socket.js", () => ({ socket: fake.socket }));

const { useChatStream, RENDER_INTERVAL_MS } = await import("../src/useChatStream.js");
const { KEY } = await import("../src/chatStorage.js");

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

let hook;
let root;
function Probe() {
  hook = useChatStream();
  return null;
}

async function mount() {
  root = createRoot(document.createElement("div"));
  await act(async () => root.render(createElement(Probe)));
}

async function step(fn = () => {}) {
  await act(async () => {
    await fn();
  });
}

const connect = () => step(() => {
  fake.socket.connected = true;
  fake.fire("connect");
});
const drop = () => step(() => {
  fake.socket.connected = false;
  fake.fire("disconnect", "transport close");
});
const chunk = (text, seq, streamId) => step(() => fake.fire("chatgpt_description_chunk", text, { stream_id: streamId, seq }));
const render = () => step(() => vi.advanceTimersByTime(RENDER_INTERVAL_MS));
const reply = () => hook.messages.at(-1);
const emitted = (event) => fake.sent.filter((s) => s.event === event);

beforeEach(() => {
  vi.useFakeTimers();
  fake.reset();
  sessionStorage.clear();
});

afterEach(async () => {
  await act(async () => root?.unmount());
  root = null;
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

/** Send a prompt over Socket.IO and acknowledge it; returns the stream id. */
async function startOverSocket(prompt = "hi") {
  await step(() => hook.send(prompt, { transport: "socket", model: null }));
  const start = emitted("chatgpt_description").at(-1);
  await step(() => start.ack({ stream_id: start.payload.stream_id, resume_token: "tok-1" }));
  return start.payload.stream_id;
}

describe("over Socket.IO", () => {
  it("resumes after a reconnect from the cursor of the text shown, with no gap and no repeat", async () => {
    await mount();
    await connect();
    const id = await startOverSocket();
    await chunk("w0 ", 0, id);
    await chunk("w1 w2 ", 2, id);
    await drop(); // the buffered text is rendered: the cursor sent next is that of the text shown
    expect(reply()).toMatchObject({ status: "streaming", reconnecting: true, content: "w0 w1 w2 ", seq: 2 });
    expect(hook.active).not.toBeNull();

    await connect();
    const [resume] = emitted("chatgpt_description_resume");
    expect(resume.payload).toEqual({ stream_id: id, after_seq: 2, resume_token: "tok-1" });
    await step(() => resume.ack({ stream_id: id }));
    expect(reply().reconnecting).toBe(false);
    await chunk("w2 ", 2, id); // at the cursor: already shown
    await chunk("w3 ", 3, id);
    await step(() => fake.fire("chatgpt_description_done", { stream_id: id, finish_reason: "stop", chunks: 4, usage: null }));
    expect(reply()).toMatchObject({ status: "done", content: "w0 w1 w2 w3 " });
    expect(hook.active).toBeNull();
  });

  it("ends the reply with a refused resume's error in plain words, keeping the text", async () => {
    await mount();
    await connect();
    const id = await startOverSocket();
    await chunk("kept", 0, id);
    await drop();
    await connect();
    const [resume] = emitted("chatgpt_description_resume");
    await step(() => resume.ack({ error: { code: "stream_expired", message: "That reply is no longer kept." } }));
    expect(reply()).toMatchObject({ status: "error", content: "kept", error: { code: "stream_expired" } });
    expect(hook.active).toBeNull();
  });

  it("tries again after retry_after when the shared store is away (resume_unavailable)", async () => {
    await mount();
    await connect();
    const id = await startOverSocket();
    await drop();
    await connect();
    const [first] = emitted("chatgpt_description_resume");
    await step(() => first.ack({ error: { code: "resume_unavailable", message: "Later.", retry_after: 2 } }));
    expect(reply()).toMatchObject({ status: "streaming", reconnecting: true });
    await step(() => vi.advanceTimersByTime(1999));
    expect(emitted("chatgpt_description_resume")).toHaveLength(1);
    await step(() => vi.advanceTimersByTime(1));
    expect(emitted("chatgpt_description_resume").at(-1).payload).toEqual({ stream_id: id, after_seq: -1, resume_token: "tok-1" });
  });

  it("ends a reply the server never acknowledged when the connection drops: there is nothing to resume", async () => {
    await mount();
    await connect();
    await step(() => hook.send("hi", { transport: "socket", model: null }));
    await drop();
    expect(reply()).toMatchObject({ status: "error", error: { code: "disconnected" } });
    await connect();
    expect(emitted("chatgpt_description_resume")).toHaveLength(0);
  });

  it("stops a reply with its token; while disconnected, by the HTTP stop, ending it at once", async () => {
    const fetch = vi.fn(async () => new Response("{}", { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    await mount();
    await connect();
    let id = await startOverSocket();
    await step(() => hook.stop());
    expect(emitted("chatgpt_description_stop").at(-1).payload).toEqual({ stream_id: id, resume_token: "tok-1" });
    expect(reply().status).toBe("streaming"); // until its terminal event comes
    await step(() => fake.fire("chatgpt_description_done", { stream_id: id, finish_reason: "cancelled", chunks: 0, usage: null }));
    expect(reply().status).toBe("stopped");

    id = await startOverSocket("again");
    await drop();
    await step(() => hook.stop());
    expect(fetch).toHaveBeenCalledWith(`/message/stream/${id}/stop`, { method: "POST", headers: { "X-Resume-Token": "tok-1" } });
    expect(reply().status).toBe("stopped");
    await connect();
    expect(emitted("chatgpt_description_resume")).toHaveLength(0); // nothing left to resume
  });
});

describe("a reload", () => {
  const running = (transport) => ({
    version: 1,
    messages: [
      { id: "u-s1", role: "user", content: "q", status: "done", streamId: "s1" },
      { id: "a-s1", role: "assistant", content: "w0 w1 ", status: "streaming", streamId: "s1", transport, seq: 1, resumeToken: "tok-9" },
    ],
  });

  it("picks a Socket.IO reply up again from the kept cursor once connected", async () => {
    sessionStorage.setItem(KEY, JSON.stringify(running("socket")));
    await mount();
    expect(reply()).toMatchObject({ content: "w0 w1 ", reconnecting: true });
    expect(hook.active).toEqual({ streamId: "s1", transport: "socket", stopping: false });
    await connect();
    expect(emitted("chatgpt_description_resume").map((s) => s.payload)).toEqual([
      { stream_id: "s1", after_seq: 1, resume_token: "tok-9" },
    ]);
  });

  it("picks an HTTP reply up again at once, with a GET from the kept cursor", async () => {
    sessionStorage.setItem(KEY, JSON.stringify(running("http")));
    const body = '{"type":"chunk","text":"w2 ","seq":2}\n{"type":"done","stream_id":"s1","finish_reason":"stop","chunks":3,"usage":null}\n';
    const fetch = vi.fn(async () => new Response(body, { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    await mount();
    await step(() => vi.runAllTimersAsync());
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("/message/stream/s1?after_seq=1");
    expect(init.headers["X-Resume-Token"]).toBe("tok-9");
    expect(reply()).toMatchObject({ status: "done", content: "w0 w1 w2 " });
    expect(JSON.parse(sessionStorage.getItem(KEY)).messages.at(-1)).not.toHaveProperty("resumeToken");
  });
});

describe("the kept conversation", () => {
  const kept = () => JSON.parse(sessionStorage.getItem(KEY))?.messages.at(-1);

  it("is saved at most every 250 ms while text streams, and at once when the tab is hidden, text and cursor together", async () => {
    await mount();
    await connect();
    const id = await startOverSocket();
    await step(() => vi.advanceTimersByTime(250));
    expect(kept()).toMatchObject({ streamId: id, transport: "socket", resumeToken: "tok-1", content: "" });
    await chunk("w0 ", 0, id);
    await render();
    await chunk("w1 ", 1, id);
    await render();
    expect(kept().content).toBe(""); // not yet: the next save is due 250 ms after the last
    await step(() => vi.advanceTimersByTime(250));
    expect(kept()).toMatchObject({ content: "w0 w1 ", seq: 1 });
    await chunk("w2 ", 2, id);
    await render();
    await step(() => window.dispatchEvent(new Event("pagehide"))); // a reload, or the tab closing
    expect(kept()).toMatchObject({ content: "w0 w1 w2 ", seq: 2 });
  });
});

describe("over HTTP", () => {
  const encoder = new TextEncoder();
  const line = (event) => encoder.encode(JSON.stringify(event) + "\n");

  /** A 200 NDJSON response with these lines, then a dropped connection (or a clean end). */
  function response(events, { drop = false, headers = {} } = {}) {
    const queue = [...events];
    const body = new ReadableStream({
      pull(controller) { // one line per read, as a network delivers them; erroring at once would discard them
        if (queue.length) controller.enqueue(line(queue.shift()));
        else if (drop) controller.error(new TypeError("network error"));
        else controller.close();
      },
    });
    return new Response(body, { status: 200, headers: { "X-Resume-Token": "tok-h", ...headers } });
  }

  it("reads the rest with a GET after a drop, after a short backoff, showing Reconnecting… meanwhile", async () => {
    const answers = [
      () => response([{ type: "chunk", text: "w0 ", seq: 0 }, { type: "chunk", text: "w1 ", seq: 1 }], { drop: true }),
      () => Promise.reject(new TypeError("Failed to fetch")), // the server is still away
      () => response([{ type: "chunk", text: "w1 ", seq: 1 }, { type: "chunk", text: "w2 ", seq: 2 },
        { type: "done", stream_id: "x", finish_reason: "stop", chunks: 3, usage: null }]),
    ];
    const fetch = vi.fn(async () => answers.shift()());
    vi.stubGlobal("fetch", fetch);
    await mount();
    await step(() => hook.send("hi", { transport: "http", model: null }));
    await step(() => vi.advanceTimersByTimeAsync(0));
    expect(reply()).toMatchObject({ status: "streaming", reconnecting: true, content: "w0 w1 ", seq: 1 });
    expect(fetch).toHaveBeenCalledTimes(1);

    await step(() => vi.advanceTimersByTimeAsync(250)); // the first retry: refused
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(reply().reconnecting).toBe(true);
    await step(() => vi.advanceTimersByTimeAsync(500)); // the second: the rest
    const id = reply().streamId;
    expect(fetch.mock.calls.slice(1).map(([url]) => url)).toEqual([
      `/message/stream/${id}?after_seq=1`,
      `/message/stream/${id}?after_seq=1`,
    ]);
    expect(reply()).toMatchObject({ status: "done", content: "w0 w1 w2 " });
  });

  it("gives up after the backoff's tries, keeping the text", async () => {
    const fetch = vi.fn(async (url) => (url === "/message/stream"
      ? response([{ type: "chunk", text: "w0 ", seq: 0 }], { drop: true })
      : Promise.reject(new TypeError("Failed to fetch"))));
    vi.stubGlobal("fetch", fetch);
    await mount();
    await step(() => hook.send("hi", { transport: "http", model: null }));
    await step(() => vi.advanceTimersByTimeAsync(60_000));
    expect(reply()).toMatchObject({ status: "error", content: "w0 ", error: { code: "network" } });
    expect(fetch.mock.calls.length).toBe(11); // the POST, then ten tries
  });

  it("stops by the stop request with the token, and closes the response", async () => {
    let signal;
    const fetch = vi.fn(async (url, init) => {
      if (url !== "/message/stream") return new Response("{}", { status: 200 });
      signal = init.signal;
      return new Response(new ReadableStream({
        start(controller) {
          controller.enqueue(line({ type: "chunk", text: "w0 ", seq: 0 }));
          init.signal.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
        },
      }), { status: 200, headers: { "X-Resume-Token": "tok-h" } });
    });
    vi.stubGlobal("fetch", fetch);
    await mount();
    await step(() => hook.send("hi", { transport: "http", model: null }));
    await step(() => vi.advanceTimersByTimeAsync(0));
    const id = reply().streamId;
    await step(() => hook.stop());
    await step(() => vi.advanceTimersByTimeAsync(0));
    expect(fetch).toHaveBeenCalledWith(`/message/stream/${id}/stop`, { method: "POST", headers: { "X-Resume-Token": "tok-h" } });
    expect(signal.aborted).toBe(true);
    expect(reply()).toMatchObject({ status: "stopped", content: "w0 " });
  });
});

describe("a Stop before the HTTP response's headers", () => {
  it("waits for the token they bring, then sends the stop and closes the response", async () => {
    let answer;
    let signal;
    const fetch = vi.fn((url, init) => {
      if (url !== "/message/stream") return Promise.resolve(new Response("{}", { status: 200 }));
      signal = init.signal;
      return new Promise((resolve) => {
        answer = () => resolve(new Response(new ReadableStream({
          start(controller) {
            init.signal.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
          },
        }), { status: 200, headers: { "X-Resume-Token": "tok-late" } }));
      });
    });
    vi.stubGlobal("fetch", fetch);
    await mount();
    await step(() => hook.send("hi", { transport: "http", model: null }));
    await step(() => hook.stop());
    expect(fetch).toHaveBeenCalledTimes(1); // no token yet: nothing to stop with
    expect(signal.aborted).toBe(false);
    await step(async () => {
      answer();
      await vi.advanceTimersByTimeAsync(0);
    });
    const id = reply().streamId;
    expect(fetch).toHaveBeenCalledWith(`/message/stream/${id}/stop`, { method: "POST", headers: { "X-Resume-Token": "tok-late" } });
    expect(signal.aborted).toBe(true);
    expect(reply().status).toBe("stopped");
  });
});

describe("New chat", () => {
  it("stops the running reply, then forgets the conversation here and in storage", async () => {
    await mount();
    await connect();
    const id = await startOverSocket();
    await chunk("w0 ", 0, id);
    await step(() => vi.advanceTimersByTime(250));
    expect(sessionStorage.getItem(KEY)).not.toBeNull();
    await step(() => hook.newChat());
    expect(emitted("chatgpt_description_stop").at(-1).payload).toEqual({ stream_id: id, resume_token: "tok-1" });
    expect(hook.messages).toEqual([]);
    expect(hook.active).toBeNull();
    expect(sessionStorage.getItem(KEY)).toBeNull();
    await chunk("late", 1, id); // whatever still comes for it adds nothing
    await render();
    expect(hook.messages).toEqual([]);
  });

  it("sends no history afterwards, and never a failed turn before", async () => {
    await mount();
    await connect();
    let id = await startOverSocket("first");
    await chunk("answer", 0, id);
    await step(() => fake.fire("chatgpt_description_done", { stream_id: id, finish_reason: "stop", chunks: 1, usage: null }));
    id = await startOverSocket("bad");
    await step(() => fake.fire("chatgpt_description_error", { stream_id: id, code: "invalid_request", message: "Too long." }));
    await startOverSocket("third");
    expect(emitted("chatgpt_description").at(-1).payload.messages).toEqual([
      { role: "user", content: "first" },
      { role: "assistant", content: "answer" },
      { role: "user", content: "third" },
    ]);
    await step(() => hook.newChat());
    await startOverSocket("fresh");
    expect(emitted("chatgpt_description").at(-1).payload.messages).toEqual([{ role: "user", content: "fresh" }]);
  });
});

describe("listeners", () => {
  it("are all removed on unmount", async () => {
    await mount();
    expect(fake.listenerCount()).toBeGreaterThan(0);
    await act(async () => root.unmount());
    root = null;
    expect(fake.listenerCount()).toBe(0);
  });
});

describe("parts and images", () => {
  it("shows a Socket.IO reply's reasoning, tool call and text from the chunks' parts, and done's whole calls", async () => {
    await mount();
    await connect();
    const id = await startOverSocket();
    const withParts = (text, seq, parts) => step(() => fake.fire("chatgpt_description_chunk", text, { stream_id: id, seq, parts }));
    await withParts("", 0, [{ type: "reasoning", text: "Hm." }]);
    await render();
    expect(reply()).toMatchObject({ content: "", reasoning: "Hm." });
    await withParts("", 1, [{ type: "tool_call", index: 0, id: "c", name: "clock", arguments: "{" }]);
    await withParts("Now.", 3, [{ type: "tool_call", index: 0, arguments: "}" }, { type: "text", text: "Now." }]);
    const calls = [{ id: "c", type: "function", function: { name: "clock", arguments: "{}" } }];
    await step(() => fake.fire("chatgpt_description_done",
      { stream_id: id, finish_reason: "tool_calls", chunks: 4, usage: null, tool_calls: calls }));
    expect(reply()).toMatchObject({ status: "done", content: "Now.", reasoning: "Hm.", seq: 3,
      toolCalls: [{ index: 0, id: "c", name: "clock", arguments: "{}" }] });
  });

  it("sends a prompt's images as image parts, and shows them with the prompt", async () => {
    await mount();
    await connect();
    const png = "data:image/png;base64,iVBORw0KGgo=";
    await step(() => hook.send("What is this?", { transport: "socket", model: null, images: [png] }));
    const start = emitted("chatgpt_description").at(-1);
    expect(start.payload.messages).toEqual([{ role: "user", content: [
      { type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: png } }] }]);
    expect(hook.messages[0]).toMatchObject({ role: "user", content: "What is this?", images: [png] });
  });
});
