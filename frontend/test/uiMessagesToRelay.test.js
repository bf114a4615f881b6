// UI messages (useChat's) as the relay's messages: text, images, steps with tool calls and their outputs.
import { describe, expect, it } from "vitest";
import { toRelayMessages } from "../src/uiMessagesToRelay.js";

const PNG = "data:image/png;base64,iVBORw0KGgo=";

describe("toRelayMessages", () => {
  it("keeps system and user text, and sends image files as image parts", () => {
    expect(toRelayMessages([
      { id: "s", role: "system", parts: [{ type: "text", text: "Be brief." }] },
      { id: "u", role: "user", parts: [
        { type: "text", text: "What is this?" },
        { type: "file", mediaType: "image/png", url: PNG },
        { type: "file", mediaType: "application/pdf", url: "data:application/pdf;base64,JVBE" },
      ] },
    ])).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: PNG } }] },
    ]);
  });

  it("leaves reasoning out, and turns each step's answered tool calls into calls and tool messages", () => {
    const assistant = { id: "a", role: "assistant", parts: [
      { type: "step-start" },
      { type: "reasoning", text: "Need the weather.", state: "done" },
      { type: "text", text: "Looking.", state: "done" },
      { type: "tool-get_weather", toolCallId: "call_1", state: "output-available", input: { city: "Oslo" }, output: { c: 3 } },
      { type: "dynamic-tool", toolName: "clock", toolCallId: "call_2", state: "output-error", input: {}, errorText: "No clock." },
      { type: "step-start" },
      { type: "text", text: "3 °C.", state: "done" },
      { type: "tool-get_weather", toolCallId: "call_3", state: "input-available", input: { city: "Rome" } },
    ] };
    expect(toRelayMessages([assistant])).toEqual([
      { role: "assistant", content: "Looking.", tool_calls: [
        { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } },
        { id: "call_2", type: "function", function: { name: "clock", arguments: "{}" } },
      ] },
      { role: "tool", tool_call_id: "call_1", content: '{"c":3}' },
      { role: "tool", tool_call_id: "call_2", content: "No clock." },
      { role: "assistant", content: "3 °C." }, // the call without an output is left out: the model has no answer to it
    ]);
  });

  it("sends an assistant step of tool calls alone with null content, and drops a message with nothing to send", () => {
    expect(toRelayMessages([
      { id: "u", role: "user", parts: [{ type: "file", mediaType: "text/plain", url: "data:text/plain,hi" }] },
      { id: "a", role: "assistant", parts: [
        { type: "tool-t", toolCallId: "c", state: "output-available", input: { a: 1 }, output: "done" },
      ] },
    ])).toEqual([
      { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "t", arguments: '{"a":1}' } }] },
      { role: "tool", tool_call_id: "c", content: "done" },
    ]);
  });
});
