import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { clearToken, getToken, setToken, socketAuth } from "../src/accessToken.js";
import { memoryStorage } from "./memoryStorage.js";

let session;
let local;
beforeEach(() => {
  session = memoryStorage();
  local = memoryStorage();
  vi.stubGlobal("sessionStorage", session);
  vi.stubGlobal("localStorage", local);
  clearToken();
});
afterEach(() => vi.unstubAllGlobals());

describe("the access token", () => {
  it("is kept in sessionStorage, never localStorage", () => {
    expect(getToken()).toBeNull();
    setToken("tok-1");
    expect(getToken()).toBe("tok-1");
    expect([...session.items.values()]).toEqual(["tok-1"]);
    expect(local.items.size).toBe(0);
  });

  it("is read back from sessionStorage, as after a reload of the tab", () => {
    setToken("tok-1");
    const [key] = session.items.keys();
    session.items.set(key, "tok-from-before-the-reload");
    expect(getToken()).toBe("tok-from-before-the-reload");
  });

  it("is forgotten when cleared", () => {
    setToken("tok-1");
    clearToken();
    expect(getToken()).toBeNull();
    expect(session.items.size).toBe(0);
  });

  it("goes in the Socket.IO auth data only when there is one", () => {
    expect(socketAuth()).toEqual({});
    setToken("tok-1");
    expect(socketAuth()).toEqual({ token: "tok-1" });
  });

  it("still works in memory when storage throws", () => {
    vi.stubGlobal("sessionStorage", {
      getItem() { throw new Error("denied"); },
      setItem() { throw new Error("denied"); },
      removeItem() { throw new Error("denied"); },
    });
    setToken("tok-1");
    expect(getToken()).toBe("tok-1");
    clearToken();
    expect(getToken()).toBeNull();
  });
});
