// The state of a reply with more than text (reasoning, tool calls, refusal) and of a prompt with images.
import { describe, expect, it } from "vitest";
import { chatReducer, conversationFor, IMAGE_BUDGET, initialState } from "../src/chatState.js";

const run = (actions, state = initialState) => actions.reduce(chatReducer, state);
const send = (streamId, prompt = "hi", images) => ({ type: "send", streamId, prompt, transport: "socket", images });
const chunk = (text, seq, parts) => ({ type: "chunk", streamId: "s1", text, seq, parts });
const reply = (state) => state.messages.at(-1);
const PNG = "data:image/png;base64,iVBORw0KGgo=";

describe("a reply with parts", () => {
  it("shows the reasoning as it streams, then the tool calls and the text, each in its place", () => {
    let state = run([send("s1"), chunk("", 0, [{ type: "reasoning", text: "Hm, " }])]);
    expect(reply(state)).toMatchObject({ status: "streaming", content: "", reasoning: "Hm, " });
    state = run([
      chunk("", 1, [{ type: "reasoning", text: "weather." }, { type: "tool_call", index: 0, id: "c", name: "weather", arguments: "" }]),
      chunk("", 2, [{ type: "tool_call", index: 0, arguments: '{"city":"Oslo"}' }]),
      chunk("Let me check.", 3),
    ], state);
    expect(reply(state)).toMatchObject({
      content: "Let me check.",
      reasoning: "Hm, weather.",
      toolCalls: [{ index: 0, id: "c", name: "weather", arguments: '{"city":"Oslo"}' }],
      seq: 3,
    });
  });

  it("never repeats a part at or before the cursor (a resume inside the reasoning)", () => {
    const state = run([
      send("s1"),
      chunk("", 1, [{ type: "reasoning", text: "ab" }]),
      chunk("", 1, [{ type: "reasoning", text: "b" }]), // read again after a resume from seq 0
      chunk("", 2, [{ type: "reasoning", text: "c" }]),
    ]);
    expect(reply(state).reasoning).toBe("abc");
  });

  it("ends with done's tool calls, each whole", () => {
    const toolCalls = [{ id: "c", type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } }];
    const state = run([
      send("s1"),
      chunk("", 0, [{ type: "tool_call", index: 0, id: "c", name: "weather", arguments: '{"ci' }]),
      { type: "done", streamId: "s1", finishReason: "tool_calls", toolCalls },
    ]);
    expect(reply(state)).toMatchObject({ status: "done", finishReason: "tool_calls" });
    expect(reply(state).toolCalls).toEqual([{ index: 0, id: "c", name: "weather", arguments: '{"city":"Oslo"}' }]);
  });

  it("keeps a refusal apart from the text", () => {
    const state = run([send("s1"), chunk("", 0, [{ type: "refusal", text: "I can't." }])]);
    expect(reply(state)).toMatchObject({ content: "", refusal: "I can't." });
  });

  it("leaves a text-only reply as it was: no reasoning, tool calls or refusal fields", () => {
    const state = run([send("s1"), chunk("w0 ", 0), chunk("w1 ", 1), { type: "done", streamId: "s1", finishReason: "stop" }]);
    expect(reply(state)).toEqual({
      id: "a-s1", role: "assistant", content: "w0 w1 ", status: "done", streamId: "s1", transport: "socket", seq: 1,
      finishReason: "stop",
    });
  });
});

describe("a prompt with images", () => {
  it("keeps the images with the prompt shown", () => {
    const state = run([send("s1", "What is this?", [PNG])]);
    expect(state.messages[0]).toMatchObject({ role: "user", content: "What is this?", images: [PNG] });
    expect(run([send("s1", "no image", [])]).messages[0]).not.toHaveProperty("images");
  });

  it("is sent as a list of parts: its text, then each image as a data: URL", () => {
    expect(conversationFor([], "What is this?", { images: [PNG] })).toEqual([{
      role: "user",
      content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: PNG } }],
    }]);
    expect(conversationFor([], "", { images: [PNG] })[0].content).toEqual([{ type: "image_url", image_url: { url: PNG } }]);
    expect(conversationFor([], "plain")).toEqual([{ role: "user", content: "plain" }]); // as before images
  });

  it("sends earlier turns' images within the budget, newest first; an older prompt over it goes as text", () => {
    const done = (id, prompt, images) => [
      { id: `u-${id}`, role: "user", content: prompt, status: "done", streamId: id, images },
      { id: `a-${id}`, role: "assistant", content: "ok", status: "done", streamId: id },
    ];
    const history = [...done("s1", "first", [PNG, PNG]), ...done("s2", "second", [PNG])];
    const sent = conversationFor(history, "third", { images: [PNG], imageBudget: { count: 2, chars: IMAGE_BUDGET.chars } });
    expect(sent.map((m) => (typeof m.content === "string" ? m.content : m.content.length))).toEqual(
      ["first", "ok", 2, "ok", 2]);
  });

  it("does not send a reply's reasoning or tool calls back", () => {
    const history = [
      { id: "u-s1", role: "user", content: "hi", status: "done", streamId: "s1" },
      { id: "a-s1", role: "assistant", content: "yes", status: "done", streamId: "s1", reasoning: "hm",
        toolCalls: [{ index: 0, id: "c", name: "f", arguments: "{}" }] },
    ];
    expect(conversationFor(history, "next")).toEqual([
      { role: "user", content: "hi" }, { role: "assistant", content: "yes" }, { role: "user", content: "next" }]);
  });
});
