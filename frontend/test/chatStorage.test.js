import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clearChat, KEY, loadChat, saveChat } from "../src/chatStorage.js";
import { chatReducer, initialState, restoreState } from "../src/chatState.js";
import { memoryStorage } from "./memoryStorage.js";

const throwing = {
  getItem() { throw new Error("denied"); },
  setItem() { throw new Error("denied"); },
  removeItem() { throw new Error("denied"); },
};

let session;
let local;
beforeEach(() => {
  session = memoryStorage();
  local = memoryStorage();
  vi.stubGlobal("sessionStorage", session);
  vi.stubGlobal("localStorage", local);
});
afterEach(() => vi.unstubAllGlobals());

function run(actions, state = initialState) {
  return actions.reduce(chatReducer, state);
}

const midReply = () => run([
  { type: "send", streamId: "s1", prompt: "first", transport: "socket" },
  { type: "chunk", streamId: "s1", text: "one", seq: 0 },
  { type: "done", streamId: "s1", finishReason: "stop" },
  { type: "send", streamId: "s2", prompt: "second", transport: "http" },
  { type: "opened", streamId: "s2", resumeToken: "tok-2" },
  { type: "chunk", streamId: "s2", text: "w0 w1 w2 ", seq: 2 },
  { type: "resuming", streamId: "s2" },
]);

describe("the kept conversation", () => {
  it("survives a reload in sessionStorage, never localStorage, with the running reply's id, token, transport and cursor", () => {
    const before = midReply();
    saveChat(before.messages);
    expect([...session.items.keys()]).toEqual([KEY]);
    expect(local.items.size).toBe(0);

    const after = restoreState(loadChat()); // as the next load of the tab starts
    expect(after.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "first", "done"],
      ["assistant", "one", "done"],
      ["user", "second", "done"],
      ["assistant", "w0 w1 w2 ", "streaming"],
    ]);
    expect(after.messages.at(-1)).toMatchObject({ streamId: "s2", transport: "http", resumeToken: "tok-2", seq: 2, reconnecting: true });
    expect(after.active).toEqual({ streamId: "s2", transport: "http", stopping: false });
  });

  it("keeps no token for a reply that has ended", () => {
    const state = run([
      { type: "send", streamId: "s1", prompt: "q", transport: "socket" },
      { type: "opened", streamId: "s1", resumeToken: "tok-1" },
      { type: "done", streamId: "s1", finishReason: "stop" },
    ]);
    saveChat(state.messages);
    expect(session.items.get(KEY)).not.toContain("tok-1");
  });

  it("is removed by clearChat and by saving an empty conversation (New chat)", () => {
    saveChat(midReply().messages);
    clearChat();
    expect(loadChat()).toBeNull();
    saveChat(midReply().messages);
    saveChat([]);
    expect(session.items.size).toBe(0);
  });

  it("is ignored when unreadable or of another shape, so a page always starts", () => {
    for (const raw of ["not json", "null", "[]", '{"version":1}', '{"version":2,"messages":[]}',
      '{"version":1,"messages":[{"role":"hacker"}]}',
      '{"version":1,"messages":[{"id":"a","role":"assistant","content":"x","status":"streaming"}]}']) {
      session.items.set(KEY, raw);
      expect(loadChat(), raw).toBeNull();
      expect(restoreState(loadChat())).toBe(initialState);
    }
  });

  it("works without storage: nothing is kept, nothing throws", () => {
    vi.stubGlobal("sessionStorage", throwing);
    expect(() => saveChat(midReply().messages)).not.toThrow();
    expect(loadChat()).toBeNull();
    expect(() => clearChat()).not.toThrow();
    vi.stubGlobal("sessionStorage", undefined);
    expect(() => saveChat(midReply().messages)).not.toThrow();
    expect(loadChat()).toBeNull();
  });

  it("drops a stale copy when a new one cannot be written (over quota), rather than bring it back", () => {
    saveChat(midReply().messages);
    session.setItem = () => { throw new DOMException("full", "QuotaExceededError"); };
    saveChat([...midReply().messages, { id: "u-x", role: "user", content: "more", status: "done", streamId: "x" }]);
    expect(loadChat()).toBeNull();
  });
});
