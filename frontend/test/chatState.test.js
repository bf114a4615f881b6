import { describe, expect, it } from "vitest";
import { chatReducer, conversationFor, initialState, TOKEN_NOT_VALID } from "../src/chatState.js";

function run(actions, state = initialState) {
  return actions.reduce(chatReducer, state);
}

const send = (streamId, prompt = "hi", transport = "socket") => ({ type: "send", streamId, prompt, transport });
const reply = (state) => state.messages.at(-1);

describe("a reply's life", () => {
  it("adds the prompt and an empty streaming reply, and marks it active", () => {
    const state = run([send("s1", "What does 42 signify?")]);
    expect(state.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "What does 42 signify?", "done"],
      ["assistant", "", "streaming"],
    ]);
    expect(state.active).toEqual({ streamId: "s1", transport: "socket", stopping: false });
  });

  it("appends chunks in order and ends done with its finish reason", () => {
    const state = run([
      send("s1"),
      { type: "chunk", streamId: "s1", text: "Hello" },
      { type: "chunk", streamId: "s1", text: ", world\n" },
      { type: "done", streamId: "s1", finishReason: "length" },
    ]);
    expect(reply(state)).toMatchObject({ content: "Hello, world\n", status: "done", finishReason: "length" });
    expect(state.active).toBeNull();
  });

  it("ignores chunks of other streams and chunks after the end", () => {
    const state = run([
      send("s1"),
      { type: "chunk", streamId: "other", text: "x" },
      { type: "chunk", streamId: "s1", text: "a" },
      { type: "done", streamId: "s1", finishReason: "stop" },
      { type: "chunk", streamId: "s1", text: "late" },
    ]);
    expect(reply(state).content).toBe("a");
  });

  it("takes only the first terminal event", () => {
    const state = run([
      send("s1"),
      { type: "done", streamId: "s1", finishReason: "stop" },
      { type: "error", streamId: "s1", code: "internal", message: "late" },
    ]);
    expect(reply(state)).toMatchObject({ status: "done", finishReason: "stop" });
    expect(reply(state).error).toBeUndefined();
  });

  it("marks a stop as stopping, then stopped when the cancelled done arrives, keeping the text", () => {
    let state = run([send("s1"), { type: "chunk", streamId: "s1", text: "partial" }, { type: "stop", streamId: "s1" }]);
    expect(state.active.stopping).toBe(true);
    state = chatReducer(state, { type: "done", streamId: "s1", finishReason: "cancelled" });
    expect(reply(state)).toMatchObject({ status: "stopped", content: "partial" });
    expect(state.active).toBeNull();
  });

  it("records an error with its code and message", () => {
    const state = run([send("s1"), { type: "error", streamId: "s1", code: "rate_limited", message: "Slow down." }]);
    expect(reply(state)).toMatchObject({ status: "error", error: { code: "rate_limited", message: "Slow down." } });
    expect(state.active).toBeNull();
  });

  it("refuses a second send while a reply is running", () => {
    const state = run([send("s1"), send("s2")]);
    expect(state.messages).toHaveLength(2);
    expect(state.active.streamId).toBe("s1");
  });

  it("ignores a stop for a stream that is not running", () => {
    const state = run([send("s1"), { type: "stop", streamId: "nope" }]);
    expect(state.active.stopping).toBe(false);
  });
});

describe("connection state", () => {
  const conn = (event, extra = {}) => ({ type: "connection", event, ...extra });

  it("goes connecting -> connected -> reconnecting -> connected", () => {
    const states = [];
    let state = initialState;
    for (const action of [conn("connect"), conn("disconnect", { willRetry: true, everConnected: true }), conn("reconnect_attempt"), conn("connect")]) {
      state = chatReducer(state, action);
      states.push(state.connection);
    }
    expect(initialState.connection).toBe("connecting");
    expect(states).toEqual(["connected", "reconnecting", "reconnecting", "connected"]);
  });

  it("stays connecting while a first connection keeps failing", () => {
    expect(run([conn("connect_error", { willRetry: true, everConnected: false })]).connection).toBe("connecting");
  });

  it("is offline when no retry will come", () => {
    expect(run([conn("connect"), conn("disconnect", { willRetry: false })]).connection).toBe("offline");
    expect(run([conn("reconnect_failed")]).connection).toBe("offline");
    expect(run([conn("connect"), conn("browser_offline")]).connection).toBe("offline");
  });

  it("ends a running Socket.IO reply when the connection drops", () => {
    const state = run([conn("connect"), send("s1"), conn("disconnect", { willRetry: true, everConnected: true })]);
    expect(reply(state)).toMatchObject({ status: "error", error: { code: "disconnected" } });
    expect(state.active).toBeNull();
  });

  it("leaves a running HTTP reply alone when the socket drops", () => {
    const state = run([conn("connect"), send("s1", "hi", "http"), conn("disconnect", { willRetry: true, everConnected: true })]);
    expect(reply(state).status).toBe("streaming");
  });
});

describe("conversationFor", () => {
  it("sends earlier turns and the new prompt, leaving out replies with no text", () => {
    const state = run([
      send("s1", "first"),
      { type: "chunk", streamId: "s1", text: "answer one" },
      { type: "done", streamId: "s1", finishReason: "stop" },
      send("s2", "second"),
      { type: "error", streamId: "s2", code: "upstream_error", message: "x" },
    ]);
    expect(conversationFor(state.messages, "third")).toEqual([
      { role: "user", content: "first" },
      { role: "assistant", content: "answer one" },
      { role: "user", content: "second" },
      { role: "user", content: "third" },
    ]);
  });
});

describe("access token", () => {
  const conn = (event, extra = {}) => ({ type: "connection", event, ...extra });
  const refusedUnauthorized = (hadToken) => conn("refused", { code: "unauthorized", message: "x", hadToken });

  it("asks for a token when the connection is refused without one, then connects with it", () => {
    let state = run([refusedUnauthorized(false)]);
    expect(state.connection).toBe("token_needed");
    expect(state.access).toEqual({ error: null, checking: false });

    state = chatReducer(state, conn("token_submitted"));
    expect(state.connection).toBe("connecting");
    expect(state.access).toEqual({ error: null, checking: true });

    state = chatReducer(state, conn("connect"));
    expect(state.connection).toBe("connected");
    expect(state.access).toBeNull();
  });

  it("says a refused token is not valid and asks again; the right one then connects", () => {
    let state = run([refusedUnauthorized(false), conn("token_submitted"), refusedUnauthorized(true)]);
    expect(state.connection).toBe("token_needed");
    expect(state.access).toEqual({ error: TOKEN_NOT_VALID, checking: false });
    expect(TOKEN_NOT_VALID).toBe("The token is not valid.");

    state = chatReducer(state, conn("token_submitted"));
    expect(state.access.error).toBeNull(); // the old complaint goes while the new token is checked
    state = chatReducer(state, conn("connect"));
    expect(state).toMatchObject({ connection: "connected", access: null, refusal: null });
  });

  it("asks for a token when an HTTP stream gets 401, keeping the reply's error", () => {
    const state = run([
      conn("connect"),
      send("s1", "hi", "http"),
      { type: "error", streamId: "s1", code: "unauthorized", message: "The token is not valid." },
      refusedUnauthorized(true),
    ]);
    expect(reply(state)).toMatchObject({ status: "error", error: { code: "unauthorized" } });
    expect(state.connection).toBe("token_needed");
    expect(state.access.error).toBe(TOKEN_NOT_VALID);
  });

  it("shows another refusal's reason and stays offline, with no token prompt", () => {
    const state = run([conn("refused", { code: "server_shutdown", message: "Going down." })]);
    expect(state).toMatchObject({ connection: "offline", access: null, refusal: { code: "server_shutdown", message: "Going down." } });
    expect(chatReducer(state, conn("connect")).refusal).toBeNull();
  });

  it("leaves the token prompt alone on unrelated connection events", () => {
    const state = run([refusedUnauthorized(false), conn("browser_offline")]);
    expect(state.access).toEqual({ error: null, checking: false });
  });

  it("keeps retry_after with a rate_limited error", () => {
    const state = run([send("s1"), { type: "error", streamId: "s1", code: "rate_limited", message: "Too many.", retryAfter: 42 }]);
    expect(reply(state).error).toEqual({ code: "rate_limited", message: "Too many.", retryAfter: 42 });
  });
});
