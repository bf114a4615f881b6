// UI messages (useChat's) as the relay's messages: text, images, steps with tool calls and their results; the same
// conversion as POST /api/chat makes on the server (tests/unit/test_ai_sdk_fast.py).
import { describe, expect, it } from "vitest";
import { InvalidMessages, toRelayMessages } from "../src/uiMessagesToRelay.js";

const PNG = "data:image/png;base64,iVBORw0KGgo=";

describe("toRelayMessages", () => {
  it("keeps system and user text, one text part as a string, and sends image files as image parts", () => {
    expect(toRelayMessages([
      { id: "s", role: "system", parts: [{ type: "text", text: "Be " }, { type: "text", text: "brief." }] },
      { id: "u1", role: "user", parts: [{ type: "text", text: "Hi" }] },
      { id: "u2", role: "user", parts: [
        { type: "text", text: "What is this?" },
        { type: "file", mediaType: "image/png", url: PNG },
        { type: "reasoning", text: "left out" },
      ] },
    ])).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "user", content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: PNG } }] },
    ]);
  });

  it("refuses a file that is not an image, naming where it is, with the code the server would answer", () => {
    const pdf = { id: "u", role: "user", parts: [{ type: "file", mediaType: "application/pdf", url: "data:," }] };
    expect(() => toRelayMessages([pdf])).toThrow(InvalidMessages);
    expect(() => toRelayMessages([pdf])).toThrow(/^invalid_request: 'messages\[0\]\.parts\[0\]\.mediaType' must be an image type/);
  });

  it("leaves reasoning out, and turns each step's answered tool calls into calls and tool messages", () => {
    const assistant = { id: "a", role: "assistant", parts: [
      { type: "step-start" },
      { type: "reasoning", text: "Need the weather.", state: "done" },
      { type: "text", text: "Looking.", state: "done" },
      { type: "tool-get_weather", toolCallId: "call_1", state: "output-available", input: { city: "Oslo" }, output: { c: 3 } },
      { type: "dynamic-tool", toolName: "clock", toolCallId: "call_2", state: "output-error", input: {}, errorText: "No clock." },
      { type: "tool-pay", toolCallId: "call_4", state: "output-denied", input: {}, approval: { id: "x", approved: false } },
      { type: "step-start" },
      { type: "text", text: "3 °C.", state: "done" },
      { type: "tool-get_weather", toolCallId: "call_3", state: "input-available", input: { city: "Rome" } },
    ] };
    expect(toRelayMessages([assistant])).toEqual([
      { role: "assistant", content: "Looking.", tool_calls: [
        { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } },
        { id: "call_2", type: "function", function: { name: "clock", arguments: "{}" } },
        { id: "call_4", type: "function", function: { name: "pay", arguments: "{}" } },
      ] },
      { role: "tool", tool_call_id: "call_1", content: '{"c":3}' },
      { role: "tool", tool_call_id: "call_2", content: "No clock." },
      { role: "tool", tool_call_id: "call_4", content: "Tool call execution denied." },
      { role: "assistant", content: "3 °C." }, // the call without a result is left out: the model has no answer to it
    ]);
  });

  it("sends a step of tool calls alone with null content, and an assistant message with nothing to send not at all", () => {
    expect(toRelayMessages([
      { id: "a1", role: "assistant", parts: [{ type: "reasoning", text: "only thoughts" }] },
      { id: "a2", role: "assistant", parts: [
        { type: "tool-t", toolCallId: "c", state: "output-available", input: { a: 1 }, output: "done" },
      ] },
    ])).toEqual([
      { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "t", arguments: '{"a":1}' } }] },
      { role: "tool", tool_call_id: "c", content: "done" },
    ]);
  });
});
