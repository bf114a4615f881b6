import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KEY, loadTransport, saveTransport } from "../src/transportChoice.js";

/** A Storage stand-in; node has no localStorage. */
function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
    items,
  };
}

let local;
beforeEach(() => {
  local = memoryStorage();
  vi.stubGlobal("localStorage", local);
});
afterEach(() => vi.unstubAllGlobals());

describe("the transport choice", () => {
  it("starts with Socket.IO", () => {
    expect(loadTransport()).toBe("socket");
  });

  it("is kept across a reload, in localStorage", () => {
    saveTransport("http");
    expect(local.items.get(KEY)).toBe("http");
    expect(loadTransport()).toBe("http"); // what the next load reads
    saveTransport("socket");
    expect(loadTransport()).toBe("socket");
  });

  it("ignores an unknown stored value or choice", () => {
    local.items.set(KEY, "carrier-pigeon");
    expect(loadTransport()).toBe("socket");
    saveTransport("carrier-pigeon");
    expect(local.items.get(KEY)).toBe("carrier-pigeon"); // untouched, and still read as the default
  });

  it("works without storage, as in private modes that throw", () => {
    vi.stubGlobal("localStorage", {
      getItem: () => {
        throw new Error("denied");
      },
      setItem: () => {
        throw new Error("denied");
      },
    });
    expect(() => saveTransport("http")).not.toThrow();
    expect(loadTransport()).toBe("socket");
  });
});
