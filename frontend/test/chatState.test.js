import { describe, expect, it } from "vitest";
import {
  chatReducer,
  conversationFor,
  HISTORY_BUDGET,
  initialState,
  restoreState,
  TOKEN_NOT_VALID,
  trimHistory,
} from "../src/chatState.js";

function run(actions, state = initialState) {
  return actions.reduce(chatReducer, state);
}

const send = (streamId, prompt = "hi", transport = "socket") => ({ type: "send", streamId, prompt, transport });
const reply = (state) => state.messages.at(-1);
const conn = (event, extra = {}) => ({ type: "connection", event, ...extra });

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

  it("ends a running Socket.IO reply the server never acknowledged when the connection drops: it has no token", () => {
    const state = run([conn("connect"), send("s1"), conn("disconnect", { willRetry: true, everConnected: true })]);
    expect(reply(state)).toMatchObject({ status: "error", error: { code: "disconnected" } });
    expect(state.active).toBeNull();
  });

  it("keeps an acknowledged Socket.IO reply running, reconnecting, when the connection drops", () => {
    const state = run([
      conn("connect"),
      send("s1"),
      { type: "opened", streamId: "s1", resumeToken: "tok" },
      { type: "chunk", streamId: "s1", text: "Hel", seq: 2 },
      conn("disconnect", { willRetry: true, everConnected: true }),
    ]);
    expect(reply(state)).toMatchObject({ status: "streaming", reconnecting: true, content: "Hel", seq: 2, resumeToken: "tok" });
    expect(state.active).toEqual({ streamId: "s1", transport: "socket", stopping: false });
  });

  it("leaves a running HTTP reply alone when the socket drops", () => {
    const state = run([conn("connect"), send("s1", "hi", "http"), conn("disconnect", { willRetry: true, everConnected: true })]);
    expect(reply(state).status).toBe("streaming");
  });
});

describe("conversationFor", () => {
  const turn = (streamId, prompt, text, end = { type: "done", streamId, finishReason: "stop" }) => [
    send(streamId, prompt),
    ...(text ? [{ type: "chunk", streamId, text, seq: 0 }] : []),
    end,
  ];

  it("sends earlier turns and the new prompt, leaving out replies with no text", () => {
    const state = run([
      ...turn("s1", "first", "answer one"),
      ...turn("s2", "second", "", { type: "done", streamId: "s2", finishReason: "cancelled" }),
    ]);
    expect(conversationFor(state.messages, "third")).toEqual([
      { role: "user", content: "first" },
      { role: "assistant", content: "answer one" },
      { role: "user", content: "second" },
      { role: "user", content: "third" },
    ]);
  });

  it("leaves out a failed turn, its prompt with it, also when the reply had some text", () => {
    const state = run([
      ...turn("s1", "first", "answer one"),
      ...turn("s2", "too long", "", { type: "error", streamId: "s2", code: "invalid_request", message: "Too long." }),
      ...turn("s3", "garbled", "half a", { type: "error", streamId: "s3", code: "upstream_timeout", message: "x" }),
      ...turn("s4", "fourth", "answer four"),
    ]);
    expect(conversationFor(state.messages, "hi")).toEqual([
      { role: "user", content: "first" },
      { role: "assistant", content: "answer one" },
      { role: "user", content: "fourth" },
      { role: "assistant", content: "answer four" },
      { role: "user", content: "hi" },
    ]);
  });

  it("keeps a stopped reply's partial text, as the user saw it", () => {
    const state = run([...turn("s1", "first", "partial", { type: "done", streamId: "s1", finishReason: "cancelled" })]);
    expect(conversationFor(state.messages, "next").map((m) => m.content)).toEqual(["first", "partial", "next"]);
  });

  it("trims the oldest turns to the budget, keeping the system prompt and the new prompt", () => {
    const long = (c) => c.repeat(4000);
    const state = run([
      ...turn("s1", long("a"), long("b")),
      ...turn("s2", long("c"), "short"),
      ...turn("s3", "q3", long("d")),
    ]);
    expect(HISTORY_BUDGET.chars).toBeLessThan(32_000); // the server's default MAX_PROMPT_CHARS
    const sent = conversationFor(state.messages, "now", { system: "Be brief." });
    expect(sent.map((m) => m.content)).toEqual(["Be brief.", long("c"), "short", "q3", long("d"), "now"]);
    expect(sent.reduce((n, m) => n + m.content.length, 0)).toBeLessThanOrEqual(HISTORY_BUDGET.chars);
  });

  it("never exceeds the budget however long the conversation, in characters and in messages", () => {
    const actions = [];
    for (let i = 0; i < 200; i += 1) actions.push(...turn(`s${i}`, `question ${i} ${"x".repeat(i * 7)}`, `answer ${i}`));
    const sent = conversationFor(run(actions).messages, "last");
    expect(sent.reduce((n, m) => n + m.content.length, 0)).toBeLessThanOrEqual(HISTORY_BUDGET.chars);
    expect(sent.length).toBeLessThanOrEqual(HISTORY_BUDGET.messages);
    expect(sent.at(-1)).toEqual({ role: "user", content: "last" });
    expect(sent.at(-2)).toEqual({ role: "assistant", content: "answer 199" }); // the newest turns stay
    expect(sent[0].role).toBe("user"); // whole turns: never a reply without its prompt
  });
});

describe("trimHistory", () => {
  const u = (content) => ({ role: "user", content });
  const a = (content) => ({ role: "assistant", content });
  const sys = (content) => ({ role: "system", content });

  it("leaves a conversation within the budget alone", () => {
    const messages = [sys("s"), u("a"), a("b"), u("c")];
    expect(trimHistory(messages, { chars: 4, messages: 4 })).toEqual(messages);
  });

  it("drops whole turns, oldest first, a user message with the replies after it", () => {
    const messages = [u("11"), a("22"), u("3"), a("44"), u("5"), u("66")];
    expect(trimHistory(messages, { chars: 7, messages: 10 })).toEqual([u("3"), a("44"), u("5"), u("66")]);
    expect(trimHistory(messages, { chars: 100, messages: 3 })).toEqual([u("5"), u("66")]);
  });

  it("keeps the system prompt and the new prompt even when they alone are over: the server then says so", () => {
    expect(trimHistory([sys("ssss"), u("old"), a("reply"), u("nnnn")], { chars: 5, messages: 10 }))
      .toEqual([sys("ssss"), u("nnnn")]);
  });
});

describe("resuming", () => {
  const opened = (streamId, resumeToken = "tok") => ({ type: "opened", streamId, resumeToken });
  const chunk = (text, seq, streamId = "s1") => ({ type: "chunk", streamId, text, seq });

  it("keeps the token and the cursor of the text shown", () => {
    const state = run([send("s1"), opened("s1"), chunk("a", 0), chunk("bc", 2)]);
    expect(reply(state)).toMatchObject({ content: "abc", seq: 2, resumeToken: "tok" });
  });

  it("takes no chunk at or before the cursor: a resume never repeats text", () => {
    const state = run([send("s1"), chunk("ab", 1), chunk("b", 1), chunk("a", 0), chunk("c", 2)]);
    expect(reply(state)).toMatchObject({ content: "abc", seq: 2 });
  });

  it("shows reconnecting between resuming and resumed, or the next chunk", () => {
    let state = run([send("s1", "hi", "http"), opened("s1"), chunk("a", 0), { type: "resuming", streamId: "s1" }]);
    expect(reply(state)).toMatchObject({ status: "streaming", reconnecting: true });
    expect(chatReducer(state, { type: "resumed", streamId: "s1" }).messages.at(-1).reconnecting).toBe(false);
    state = chatReducer(state, chunk("b", 1));
    expect(reply(state)).toMatchObject({ content: "ab", reconnecting: false });
  });

  it("forgets the token and the note once the reply ends", () => {
    const state = run([send("s1"), opened("s1"), { type: "resuming", streamId: "s1" }, { type: "done", streamId: "s1", finishReason: "stop" }]);
    expect(reply(state)).not.toHaveProperty("resumeToken");
    expect(reply(state)).not.toHaveProperty("reconnecting");
  });

  it("ends a refused resume with its error, keeping the text received", () => {
    const state = run([
      send("s1"),
      opened("s1"),
      chunk("kept", 3),
      conn("disconnect", { willRetry: true, everConnected: true }),
      { type: "error", streamId: "s1", code: "stream_expired", message: "Gone." },
    ]);
    expect(reply(state)).toMatchObject({ status: "error", content: "kept", error: { code: "stream_expired" } });
    expect(state.active).toBeNull();
  });

  it("ends with interrupted after the text the dying instance had sent", () => {
    const state = run([send("s1"), opened("s1"), chunk("w0 w1 ", 1), { type: "resumed", streamId: "s1" }, chunk("w2 ", 2),
      { type: "error", streamId: "s1", code: "interrupted", message: "The server stopped." }]);
    expect(reply(state)).toMatchObject({ status: "error", content: "w0 w1 w2 ", error: { code: "interrupted" } });
  });
});

describe("restoreState", () => {
  const saved = (messages) => ({ messages });
  const user = (streamId, content = "q") => ({ id: `u-${streamId}`, role: "user", content, status: "done", streamId });
  const answer = (streamId, extra) => ({ id: `a-${streamId}`, role: "assistant", content: "", streamId, transport: "socket", ...extra });

  it("starts empty without a kept conversation", () => {
    expect(restoreState(null)).toBe(initialState);
    expect(restoreState(saved([]))).toBe(initialState);
  });

  it("brings back the conversation, and a running reply with its token as active and reconnecting", () => {
    const done = answer("s1", { content: "one", status: "done", finishReason: "stop" });
    const running = answer("s2", { content: "two so", status: "streaming", transport: "http", seq: 4, resumeToken: "tok" });
    const state = restoreState(saved([user("s1"), done, user("s2"), running]));
    expect(state.messages).toEqual([user("s1"), done, user("s2"), { ...running, reconnecting: true }]);
    expect(state.active).toEqual({ streamId: "s2", transport: "http", stopping: false });
    expect(state.connection).toBe("connecting");
  });

  it("ends a running reply that had no token yet: the server never confirmed it", () => {
    const state = restoreState(saved([user("s1"), answer("s1", { status: "streaming", content: "x" })]));
    expect(state.messages.at(-1)).toMatchObject({ status: "error", content: "x", error: { code: "disconnected" } });
    expect(state.active).toBeNull();
  });
});

describe("new chat", () => {
  it("forgets the conversation and the running reply, keeping the connection", () => {
    const state = run([
      conn("connect"),
      send("s1"),
      { type: "chunk", streamId: "s1", text: "a", seq: 0 },
      { type: "new_chat" },
      { type: "done", streamId: "s1", finishReason: "cancelled" }, // the stopped reply's end, arriving late
    ]);
    expect(state.messages).toEqual([]);
    expect(state.active).toBeNull();
    expect(state.connection).toBe("connected");
    expect(conversationFor(state.messages, "fresh")).toEqual([{ role: "user", content: "fresh" }]);
  });
});

describe("access token", () => {
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
