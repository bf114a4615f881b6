// The AI SDK's UI messages (`useChat`'s `messages`, ai 7) as the relay's `messages` (docs/protocol.md, "Messages"):
// what the Socket.IO chat transport sends, so a `useChat` app keeps its messages as they are. Kept pure.
//
// The same conversion as the relay's POST /api/chat makes on the server (chat_relay/transports/ai_sdk/ui_request.py),
// as the AI SDK's convertToModelMessages does for the Chat Completions API:
// - text parts are text (one text part of a user: a string); a file part is an image part (its URL), and must be a
//   PNG, JPEG, WebP or GIF image; reasoning, sources and data parts are left out;
// - an assistant message is one relay message per step (`step-start` separates them): its text, and the tool
//   calls that have a result, followed by one `tool` message per result (the output, an error's text, a denial);
//   a call still without a result is left out, since the model's API refuses a call without one.

/** @typedef {import("ai").UIMessage} UIMessage */

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
const DENIED = "Tool call execution denied."; // the AI SDK's words for a call the user denied

/** A UI message the relay cannot send on: its text starts with the code the server would answer with. */
export class InvalidMessages extends Error {
  constructor(message) {
    super(`invalid_request: ${message}`);
    this.name = "InvalidMessages";
  }
}

const isToolPart = (type) => type === "dynamic-tool" || (typeof type === "string" && type.startsWith("tool-"));

function string(part, name, at) {
  if (typeof part[name] !== "string") throw new InvalidMessages(`'${at}.${name}' must be a string.`);
  return part[name];
}

function userMessage(parts, where) {
  const content = [];
  parts.forEach((part, n) => {
    const at = `${where}.parts[${n}]`;
    if (part.type === "text") content.push({ type: "text", text: string(part, "text", at) });
    else if (part.type === "file") {
      if (!IMAGE_TYPES.includes(part.mediaType)) {
        throw new InvalidMessages(`'${at}.mediaType' must be an image type (${IMAGE_TYPES.join(", ")}): the relay `
          + "sends images only.");
      }
      content.push({ type: "image_url", image_url: { url: string(part, "url", at) } });
    }
  });
  if (content.length === 1 && content[0].type === "text") return { role: "user", content: content[0].text };
  return { role: "user", content: content.length ? content : "" };
}

/** A tool part's call and its result, or null while it has no result. */
function toolCall(part, at) {
  let result;
  if (part.state === "output-available" && part.preliminary !== true) {
    result = typeof part.output === "string" ? part.output : JSON.stringify(part.output ?? null);
  } else if (part.state === "output-error") {
    result = string(part, "errorText", at);
  } else if (part.state === "output-denied") {
    result = typeof part.approval?.reason === "string" ? part.approval.reason : DENIED;
  } else {
    return null;
  }
  const id = string(part, "toolCallId", at);
  const name = part.type === "dynamic-tool" ? string(part, "toolName", at) : part.type.slice("tool-".length);
  return [
    { id, type: "function", function: { name, arguments: JSON.stringify(part.input ?? {}) } },
    { role: "tool", tool_call_id: id, content: result },
  ];
}

function assistantMessages(parts, where) {
  const out = [];
  let texts = [];
  let calls = [];
  let results = [];
  const stepDone = () => {
    if (texts.length || calls.length) {
      const message = { role: "assistant", content: texts.length ? texts.join("") : null };
      if (calls.length) message.tool_calls = calls;
      out.push(message, ...results);
    }
    texts = [];
    calls = [];
    results = [];
  };
  parts.forEach((part, n) => {
    const at = `${where}.parts[${n}]`;
    if (part.type === "step-start") stepDone();
    else if (part.type === "text") texts.push(string(part, "text", at));
    else if (isToolPart(part.type)) {
      const call = toolCall(part, at);
      if (call) {
        calls.push(call[0]);
        results.push(call[1]);
      }
    }
  });
  stepDone();
  return out;
}

/**
 * The relay's `messages` for a conversation of UI messages.
 * @param {UIMessage[]} uiMessages
 * @returns {object[]}
 * @throws {InvalidMessages} for a part the relay cannot send on (a file that is not an image)
 */
export function toRelayMessages(uiMessages) {
  const out = [];
  uiMessages.forEach((message, number) => {
    const where = `messages[${number}]`;
    const parts = message.parts ?? [];
    if (message.role === "assistant") out.push(...assistantMessages(parts, where));
    else if (message.role === "system") {
      const text = parts.map((p, n) => (p.type === "text" ? string(p, "text", `${where}.parts[${n}]`) : ""));
      out.push({ role: "system", content: text.join("") });
    } else out.push(userMessage(parts, where));
  });
  return out;
}
