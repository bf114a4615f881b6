import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createChunkBuffer } from "../src/chunkBuffer.js";
import { applyParts, joinParts, partsOf, toolCallsFromDone } from "../src/replyParts.js";

const reasoning = (text) => ({ type: "reasoning", text });
const text = (t) => ({ type: "text", text: t });
const call = (index, args, extra = {}) => ({ type: "tool_call", index, arguments: args, ...extra });

describe("partsOf", () => {
  it("reads a chunk without parts as its text alone, as every chunk was before parts", () => {
    expect(partsOf("Hi", undefined)).toEqual([text("Hi")]);
    expect(partsOf("", undefined)).toEqual([]);
    expect(partsOf("", [reasoning("hm")])).toEqual([reasoning("hm")]);
  });
});

describe("joinParts", () => {
  it("joins adjacent parts of one kind, and tool-call fragments of one index, as the server does", () => {
    expect(joinParts([reasoning("a")], [reasoning("b"), text("c"), text("d")])).toEqual([reasoning("ab"), text("cd")]);
    expect(joinParts([call(0, '{"a', { id: "c1", name: "f" })], [call(0, '":1}'), call(1, "{}", { id: "c2", name: "g" })]))
      .toEqual([call(0, '{"a":1}', { id: "c1", name: "f" }), call(1, "{}", { id: "c2", name: "g" })]);
    expect(joinParts([text("a")], [reasoning("b"), text("c")])).toEqual([text("a"), reasoning("b"), text("c")]);
  });
});

describe("applyParts", () => {
  const empty = { content: "" };

  it("adds text to content, reasoning and refusal to their own fields, tool calls by index", () => {
    let reply = applyParts(empty, [reasoning("Let me "), reasoning("see."), call(1, "", { id: "b", name: "clock" })]);
    reply = applyParts(reply, [call(0, '{"city":', { id: "a", name: "weather" }), call(1, "{}"), call(0, '"Oslo"}')]);
    reply = applyParts(reply, [text("It is "), text("cold."), { type: "refusal", text: "No." }, { type: "new_kind" }]);
    expect(reply).toEqual({
      content: "It is cold.",
      reasoning: "Let me see.",
      refusal: "No.",
      toolCalls: [
        { index: 0, id: "a", name: "weather", arguments: '{"city":"Oslo"}' },
        { index: 1, id: "b", name: "clock", arguments: "{}" },
      ],
    });
  });

  it("leaves a text-only reply exactly as it was before parts: no new fields", () => {
    expect(applyParts({ content: "a" }, partsOf("b"))).toEqual({ content: "ab" });
  });
});

describe("toolCallsFromDone", () => {
  it("takes done.tool_calls, each whole, in the page's shape; none when the model called no tool", () => {
    const done = [{ id: "a", type: "function", function: { name: "weather", arguments: "{}" } }];
    expect(toolCallsFromDone(done)).toEqual([{ index: 0, id: "a", name: "weather", arguments: "{}" }]);
    expect(toolCallsFromDone(undefined)).toBeNull();
    expect(toolCallsFromDone([])).toBeNull();
  });
});

describe("the chunk buffer with parts", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("hands on the parts of one interval joined, with the text and the cursor", () => {
    const flushed = [];
    const buffer = createChunkBuffer((...args) => flushed.push(args), 50);
    buffer.add("s1", "", 0, [reasoning("a")]);
    buffer.add("s1", "", 1, [reasoning("b")]);
    buffer.add("s1", "w0 ", 2); // text only: no parts on the wire
    buffer.add("s1", "w1 ", 3);
    vi.advanceTimersByTime(50);
    expect(flushed).toEqual([["s1", "w0 w1 ", 3, [reasoning("ab"), text("w0 w1 ")]]]);
  });
});
