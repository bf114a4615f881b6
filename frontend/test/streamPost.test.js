import { afterEach, describe, expect, it, vi } from "vitest";
import { stopStream, streamPost, streamResume } from "../src/streamPost.js";

afterEach(() => vi.unstubAllGlobals());

function ndjsonResponse(lines, headers = {}) {
  return new Response(lines.map((l) => JSON.stringify(l) + "\n").join(""), {
    status: 200,
    headers: { "Content-Type": "application/x-ndjson; charset=utf-8", ...headers },
  });
}

async function eventsFor(response, request = { prompt: "hi", stream_id: "s1" }, options = {}) {
  const fetch = vi.fn(async () => response);
  vi.stubGlobal("fetch", fetch);
  const events = [];
  await streamPost(request, { signal: new AbortController().signal, onEvent: (e) => events.push(e), ...options });
  return { events, fetch };
}

describe("streamPost", () => {
  it("posts JSON asking for NDJSON and passes the events on", async () => {
    const done = { type: "done", stream_id: "s1", finish_reason: "stop", chunks: 1, usage: null };
    const { events, fetch } = await eventsFor(ndjsonResponse([{ type: "chunk", text: "Hi", seq: 0 }, done]));
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("/message/stream");
    expect(init.method).toBe("POST");
    expect(init.headers).toEqual({ "Content-Type": "application/json", Accept: "application/x-ndjson" });
    expect(JSON.parse(init.body)).toEqual({ prompt: "hi", stream_id: "s1" });
    expect(events).toEqual([{ type: "chunk", text: "Hi", seq: 0 }, done]);
  });

  it("turns an error status with a JSON body into one error event", async () => {
    const body = { error: { code: "rate_limited", message: "Slow down." } };
    const { events } = await eventsFor(new Response(JSON.stringify(body), { status: 429 }));
    expect(events).toEqual([{ type: "error", stream_id: "s1", code: "rate_limited", message: "Slow down." }]);
  });

  it("sends the token as a Bearer Authorization header", async () => {
    const done = { type: "done", stream_id: "s1", finish_reason: "stop", chunks: 0, usage: null };
    const { fetch } = await eventsFor(ndjsonResponse([done]), undefined, { token: "tok-secret 1" });
    expect(fetch.mock.calls[0][1].headers).toEqual({
      "Content-Type": "application/json",
      Accept: "application/x-ndjson",
      Authorization: "Bearer tok-secret 1",
    });
  });

  it("sends no Authorization header without a token", async () => {
    const { fetch } = await eventsFor(ndjsonResponse([{ type: "done" }]), undefined, { token: null });
    expect(fetch.mock.calls[0][1].headers).not.toHaveProperty("Authorization");
  });

  it("passes a 401's unauthorized code on, also when the body is not the relay's", async () => {
    const body = { error: { code: "unauthorized", message: "The token is not valid." } };
    const relay = await eventsFor(new Response(JSON.stringify(body), { status: 401 }));
    expect(relay.events).toEqual([{ type: "error", stream_id: "s1", code: "unauthorized", message: "The token is not valid." }]);
    const proxy = await eventsFor(new Response("<html>401</html>", { status: 401 }));
    expect(proxy.events).toMatchObject([{ type: "error", code: "unauthorized" }]);
  });

  it("keeps retry_after on a rate_limited refusal", async () => {
    const body = { error: { code: "rate_limited", message: "Too many requests.", retry_after: 17 } };
    const { events } = await eventsFor(new Response(JSON.stringify(body), { status: 429, headers: { "Retry-After": "17" } }));
    expect(events).toEqual([{ type: "error", stream_id: "s1", code: "rate_limited", message: "Too many requests.", retry_after: 17 }]);
  });

  it("ends a body that stops without a terminal line with an error", async () => {
    const { events } = await eventsFor(ndjsonResponse([{ type: "chunk", text: "Hi", seq: 0 }]));
    expect(events.map((e) => e.type)).toEqual(["chunk", "error"]);
    expect(events[1].code).toBe("network");
  });

  it("ends with one internal error, not a network one, when the server sends a line that is not JSON", async () => {
    const body = JSON.stringify({ type: "chunk", text: "Hi", seq: 0 }) + "\nnot json\n";
    const { events } = await eventsFor(new Response(body, { status: 200 }));
    expect(events.map((e) => [e.type, e.code])).toEqual([["chunk", undefined], ["error", "internal"]]);
    expect(events[1].message).toBe("The server sent a line that is not JSON.");
  });

  it("rejects with AbortError when stopped, delivering no terminal event", async () => {
    const controller = new AbortController();
    vi.stubGlobal("fetch", vi.fn(async (_url, { signal }) => {
      if (signal.aborted) throw new DOMException("aborted", "AbortError");
      return ndjsonResponse([]);
    }));
    controller.abort();
    const events = [];
    await expect(streamPost({ prompt: "hi" }, { signal: controller.signal, onEvent: (e) => events.push(e) }))
      .rejects.toMatchObject({ name: "AbortError" });
    expect(events).toEqual([]);
  });
});

describe("streamPost's headers", () => {
  it("hands on the stream id and resume token before any chunk", async () => {
    const seen = [];
    const response = ndjsonResponse([{ type: "chunk", text: "Hi", seq: 0 }, { type: "done" }],
      { "X-Stream-Id": "s1", "X-Resume-Token": "tok-1" });
    vi.stubGlobal("fetch", vi.fn(async () => response));
    await streamPost({ prompt: "hi", stream_id: "s1" }, {
      signal: new AbortController().signal,
      onOpen: (opened) => seen.push(["open", opened]),
      onEvent: (e) => seen.push([e.type]),
    });
    expect(seen).toEqual([["open", { streamId: "s1", resumeToken: "tok-1" }], ["chunk"], ["done"]]);
  });

  it("tells a proxy's 502 (the relay behind it away) as network, which the page retries", async () => {
    const { events } = await eventsFor(new Response("<html>Bad Gateway</html>", { status: 502 }));
    expect(events).toMatchObject([{ type: "error", code: "network" }]);
  });
});

describe("streamResume", () => {
  async function resume(response, options = {}) {
    const fetch = vi.fn(async () => response);
    vi.stubGlobal("fetch", fetch);
    const events = [];
    const opened = [];
    await streamResume("s/1", 7, "tok-1", {
      signal: new AbortController().signal,
      onEvent: (e) => events.push(e),
      onOpen: (o) => opened.push(o),
      ...options,
    });
    return { events, fetch, opened };
  }

  it("GETs the rest after the cursor with the resume token, and passes the events on", async () => {
    const done = { type: "done", stream_id: "s/1", finish_reason: "stop", chunks: 10, usage: null };
    const { events, fetch, opened } = await resume(ndjsonResponse([{ type: "chunk", text: "w8 w9 ", seq: 9 }, done],
      { "X-Stream-Id": "s/1" }));
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("/message/stream/s%2F1?after_seq=7");
    expect(init.method).toBe("GET");
    expect(init.headers).toEqual({ Accept: "application/x-ndjson", "X-Resume-Token": "tok-1" });
    expect(opened).toHaveLength(1);
    expect(events).toEqual([{ type: "chunk", text: "w8 w9 ", seq: 9 }, done]);
  });

  it("sends the access token as the Bearer, beside the resume token", async () => {
    const { fetch } = await resume(ndjsonResponse([{ type: "done" }]), { token: "access-1" });
    expect(fetch.mock.calls[0][1].headers).toEqual({
      Accept: "application/x-ndjson",
      "X-Resume-Token": "tok-1",
      Authorization: "Bearer access-1",
    });
  });

  it("passes a refusal on with its code: stream_expired, or resume_unavailable with retry_after", async () => {
    const expired = await resume(new Response(JSON.stringify({ error: { code: "stream_expired", message: "Gone." } }), { status: 410 }));
    expect(expired.events).toEqual([{ type: "error", stream_id: "s/1", code: "stream_expired", message: "Gone." }]);
    expect(expired.opened).toEqual([]);
    const body = { error: { code: "resume_unavailable", message: "Later.", retry_after: 2 } };
    const later = await resume(new Response(JSON.stringify(body), { status: 503, headers: { "Retry-After": "2" } }));
    expect(later.events).toEqual([{ type: "error", stream_id: "s/1", code: "resume_unavailable", message: "Later.", retry_after: 2 }]);
  });

  it("ends with network when the server cannot be reached or the body drops", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => { throw new TypeError("Failed to fetch"); }));
    const events = [];
    await streamResume("s1", -1, "t", { signal: new AbortController().signal, onEvent: (e) => events.push(e) });
    expect(events).toMatchObject([{ type: "error", code: "network" }]);
    const dropped = await resume(ndjsonResponse([{ type: "chunk", text: "a", seq: 8 }]));
    expect(dropped.events.map((e) => e.code ?? e.type)).toEqual(["chunk", "network"]);
  });
});

describe("stopStream", () => {
  it("POSTs the stop with the resume token (and the access token)", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ stream_id: "s1" }), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    expect(await stopStream("s1", "tok-1", { token: "access-1" })).toBe(true);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe("/message/stream/s1/stop");
    expect(init).toEqual({ method: "POST", headers: { "X-Resume-Token": "tok-1", Authorization: "Bearer access-1" } });
  });

  it("never rejects: a stop that cannot be delivered is left to the server's grace period", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => { throw new TypeError("Failed to fetch"); }));
    expect(await stopStream("s1", "tok-1")).toBe(false);
    vi.stubGlobal("fetch", vi.fn(async () => new Response("{}", { status: 400 })));
    expect(await stopStream("s1", "tok-1")).toBe(false);
  });
});
