// The AI SDK's UI messages (`useChat`'s `messages`, ai 7) as the relay's `messages` (docs/protocol.md, "Messages"):
// what the Socket.IO chat transport sends, so a `useChat` app keeps its messages as they are. Kept pure.
//
// What maps to what, as the AI SDK's own convertToModelMessages does for the Chat Completions API:
// - text parts are text; a file part whose media type is an image is an image part (its URL, a data: URL as
//   useChat makes from a picked file, or https: where the relay allows image URLs); reasoning is left out;
// - an assistant message is one relay message per step (`step-start` separates them): its text, and the tool
//   calls that have an output, followed by one `tool` message per output (an error's text for a failed call);
// - anything the relay has no field for (other files, sources, data parts, calls still without output) is left out.

/** @typedef {import("ai").UIMessage} UIMessage */

const isToolPart = (part) => part.type === "dynamic-tool" || part.type.startsWith("tool-");
const toolName = (part) => (part.type === "dynamic-tool" ? part.toolName : part.type.slice("tool-".length));
const isImage = (part) => part.type === "file" && typeof part.mediaType === "string" && part.mediaType.startsWith("image/");

function textOf(parts) {
  return parts.filter((p) => p.type === "text").map((p) => p.text).join("");
}

function userContent(parts) {
  const content = [];
  for (const part of parts) {
    if (part.type === "text" && part.text) content.push({ type: "text", text: part.text });
    else if (isImage(part)) content.push({ type: "image_url", image_url: { url: part.url } });
  }
  if (content.length === 1 && content[0].type === "text") return content[0].text;
  return content.length ? content : null;
}

function toolResult(part) {
  if (part.state === "output-error") return part.errorText ?? "The tool failed.";
  if (part.state === "output-denied") return "The user denied this tool call.";
  return typeof part.output === "string" ? part.output : JSON.stringify(part.output ?? null);
}

const ANSWERED = new Set(["output-available", "output-error", "output-denied"]);

/** One step of an assistant message (its parts up to a `step-start`) as relay messages: the assistant's, then tools'. */
function assistantStep(parts) {
  const calls = parts.filter((p) => isToolPart(p) && ANSWERED.has(p.state));
  const text = textOf(parts);
  if (!text && !calls.length) return [];
  const message = { role: "assistant", content: text || null };
  if (calls.length) {
    message.tool_calls = calls.map((p) => ({
      id: p.toolCallId,
      type: "function",
      function: { name: toolName(p), arguments: JSON.stringify(p.input ?? {}) },
    }));
  }
  return [message, ...calls.map((p) => ({ role: "tool", tool_call_id: p.toolCallId, content: toolResult(p) }))];
}

function splitSteps(parts) {
  const steps = [[]];
  for (const part of parts) {
    if (part.type === "step-start") {
      if (steps.at(-1).length) steps.push([]);
    } else {
      steps.at(-1).push(part);
    }
  }
  return steps;
}

/**
 * The relay's `messages` for a conversation of UI messages.
 * @param {UIMessage[]} uiMessages
 * @returns {object[]}
 */
export function toRelayMessages(uiMessages) {
  const out = [];
  for (const message of uiMessages) {
    const parts = message.parts ?? [];
    if (message.role === "system") {
      const text = textOf(parts);
      if (text) out.push({ role: "system", content: text });
    } else if (message.role === "user") {
      const content = userContent(parts);
      if (content !== null) out.push({ role: "user", content });
    } else if (message.role === "assistant") {
      for (const step of splitSteps(parts)) out.push(...assistantStep(step));
    }
  }
  return out;
}
