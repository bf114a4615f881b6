// @vitest-environment happy-dom
// Server-side tools on the page (docs/protocol.md, "Server-side tools"): a tool's result or error is kept on the
// call of its id, never joined with the next part, survives the end of the reply, and is shown under its call.
import { act, createElement } from "react";
import { createRoot } from "react-dom/client";
import { describe, expect, it } from "vitest";
import { chatReducer, initialState } from "../src/chatState.js";
import { ToolCalls } from "../src/components/ReplyParts.jsx";
import { applyParts, joinParts, toolCallsFromDone } from "../src/replyParts.js";

const call = (index, id, name, args) => ({ type: "tool_call", index, id, name, arguments: args });
const result = (id, value) => ({ type: "tool_result", id, name: "f", result: value });
const failure = (id, message) => ({ type: "tool_error", id, name: "f", message });
const run = (actions) => actions.reduce(chatReducer, initialState);
const chunk = (text, seq, parts) => ({ type: "chunk", streamId: "s1", text, seq, parts });

describe("tool results in a reply", () => {
  it("keeps each result or error on the call of its id", () => {
    const reply = applyParts({ content: "" }, [
      call(0, "a", "population", '{"city":"Oslo"}'), call(1, "b", "population", '{"city":"X"}'),
      result("a", { people: 709000 }), failure("b", "No city named 'X'."),
    ]);
    expect(reply.toolCalls).toEqual([
      { index: 0, id: "a", name: "population", arguments: '{"city":"Oslo"}', result: { people: 709000 } },
      { index: 1, id: "b", name: "population", arguments: '{"city":"X"}', error: "No city named 'X'." },
    ]);
  });

  it("never joins two results, as the server never merges them", () => {
    expect(joinParts([result("a", 1)], [result("b", 2), failure("c", "no"), failure("d", "no")]))
      .toEqual([result("a", 1), result("b", 2), failure("c", "no"), failure("d", "no")]);
  });

  it("keeps the streamed calls at the end when the server ran tools (done lists only the last reply's calls)", () => {
    const streamed = [{ index: 0, id: "a", name: "f", arguments: "{}", result: 1 }];
    const last = [{ id: "b", type: "function", function: { name: "g", arguments: "{}" } }];
    expect(toolCallsFromDone(last, streamed)).toBeNull();
    expect(toolCallsFromDone(last, [])).toEqual([{ index: 0, id: "b", name: "g", arguments: "{}" }]);
    const state = run([
      { type: "send", streamId: "s1", prompt: "hi", transport: "socket" },
      chunk("", 0, [call(0, "a", "add", '{"a":2,"b":3}')]),
      chunk("", 1, [result("a", 5)]),
      chunk("It is 5.", 2),
      { type: "done", streamId: "s1", finishReason: "stop" },
    ]);
    expect(state.messages.at(-1)).toMatchObject({
      status: "done", content: "It is 5.", toolCalls: [{ index: 0, id: "a", name: "add", result: 5 }],
    });
  });

  it("shows a result under its call, and an error in words, as text", () => {
    const root = document.createElement("div");
    act(() => createRoot(root).render(createElement(ToolCalls, {
      calls: [
        { index: 0, id: "a", name: "population", arguments: "{}", result: { people: 709000 } },
        { index: 1, id: "b", name: "lookup", arguments: "{}", result: "<b>plain</b>" },
        { index: 2, id: "c", name: "population", arguments: "{}", error: "No city named 'X'." },
      ],
    })));
    const [first, second, third] = root.querySelectorAll('[data-testid="tool-call"]');
    expect(JSON.parse(first.querySelector('[data-testid="tool-result"]').textContent)).toEqual({ people: 709000 });
    expect(second.querySelector('[data-testid="tool-result"]').textContent).toBe("<b>plain</b>");
    expect(second.querySelector("b")).toBeNull();
    expect(third.querySelector('[data-testid="tool-error"]').textContent).toBe("No city named 'X'.");
    expect(third.querySelector('[data-testid="tool-result"]')).toBeNull();
  });
});
