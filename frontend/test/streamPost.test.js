import { afterEach, describe, expect, it, vi } from "vitest";
import { streamPost } from "../src/streamPost.js";

afterEach(() => vi.unstubAllGlobals());

function ndjsonResponse(lines) {
  return new Response(lines.map((l) => JSON.stringify(l) + "\n").join(""), {
    status: 200,
    headers: { "Content-Type": "application/x-ndjson; charset=utf-8" },
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
