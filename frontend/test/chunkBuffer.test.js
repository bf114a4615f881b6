import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createChunkBuffer } from "../src/chunkBuffer.js";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("createChunkBuffer", () => {
  it("hands on the chunks of one interval together, once", () => {
    const flushed = [];
    const buffer = createChunkBuffer((id, text) => flushed.push([id, text]), 50);
    buffer.add("s1", "Hel");
    buffer.add("s1", "lo");
    vi.advanceTimersByTime(49);
    expect(flushed).toEqual([]);
    buffer.add("s1", ", world");
    vi.advanceTimersByTime(1);
    expect(flushed).toEqual([["s1", "Hello, world"]]);
    buffer.add("s1", "!");
    vi.advanceTimersByTime(50);
    expect(flushed).toEqual([["s1", "Hello, world"], ["s1", "!"]]);
  });

  it("flushes at once on demand, so a terminal event follows the last text", () => {
    const flushed = [];
    const buffer = createChunkBuffer((id, text) => flushed.push([id, text]), 50);
    buffer.add("s1", "a");
    buffer.add("s2", "b");
    buffer.flush();
    expect(flushed).toEqual([["s1", "a"], ["s2", "b"]]);
    vi.advanceTimersByTime(100);
    expect(flushed).toHaveLength(2); // the timer went with the flush
  });

  it("drops pending text when cancelled", () => {
    const onFlush = vi.fn();
    const buffer = createChunkBuffer(onFlush, 50);
    buffer.add("s1", "a");
    buffer.cancel();
    vi.advanceTimersByTime(100);
    expect(onFlush).not.toHaveBeenCalled();
  });
});
