import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createChunkBuffer } from "../src/chunkBuffer.js";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("createChunkBuffer", () => {
  it("hands on the chunks of one interval together, once", () => {
    const flushed = [];
    const buffer = createChunkBuffer((id, text, seq) => flushed.push([id, text, seq]), 50);
    buffer.add("s1", "Hel");
    buffer.add("s1", "lo");
    vi.advanceTimersByTime(49);
    expect(flushed).toEqual([]);
    buffer.add("s1", ", world");
    vi.advanceTimersByTime(1);
    expect(flushed).toEqual([["s1", "Hello, world", null]]);
    buffer.add("s1", "!");
    vi.advanceTimersByTime(50);
    expect(flushed).toEqual([["s1", "Hello, world", null], ["s1", "!", null]]);
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

  it("carries the cursor of the last chunk gathered with each flush, so text and cursor move together", () => {
    const flushed = [];
    const buffer = createChunkBuffer((id, text, seq) => flushed.push([id, text, seq]), 50);
    buffer.add("s1", "w0 ", 0);
    buffer.add("s1", "w1 w2 ", 2); // one chunk with several pieces: seq skips
    buffer.add("s2", "x", 7);
    buffer.add("s1", "w3 ", 3);
    vi.advanceTimersByTime(50);
    buffer.add("s1", "w4 ", 4);
    buffer.flush(); // as before a resume: the cursor sent is that of the text handed on
    expect(flushed).toEqual([["s1", "w0 w1 w2 w3 ", 3], ["s2", "x", 7], ["s1", "w4 ", 4]]);
  });

  it("keeps the last known cursor when a later chunk has none", () => {
    const flushed = [];
    const buffer = createChunkBuffer((id, text, seq) => flushed.push([id, text, seq]), 50);
    buffer.add("s1", "a", 5);
    buffer.add("s1", "b");
    buffer.flush();
    expect(flushed).toEqual([["s1", "ab", 5]]);
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
