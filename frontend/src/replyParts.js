// A reply's typed parts (docs/protocol.md, "Parts"): text, reasoning, tool-call fragments, refusal, and a server-side
// tool's result or error (docs/protocol.md, "Server-side tools"). A chunk without `parts` holds text only. Kept pure, as chatState.js is: the buffer joins parts, the reducer applies them.

/** A chunk's parts: its `parts`, or, when it has none (text only), its text as the one part. */
export function partsOf(text, parts) {
  if (Array.isArray(parts)) return parts;
  return text ? [{ type: "text", text }] : [];
}

const WHOLE = new Set(["tool_result", "tool_error"]); // one piece each: never joined with the next

function sameRun(last, part) {
  return last?.type === part.type && !WHOLE.has(part.type) && (part.type !== "tool_call" || last.index === part.index);
}

/**
 * `before` followed by `after`, adjacent parts of one kind (a tool call: of one index) joined into one, as the
 * server joins the pieces of one chunk: the id and name from the part that had them, the strings concatenated.
 */
export function joinParts(before, after) {
  const out = [...before];
  for (const part of after) {
    const last = out.at(-1);
    if (!sameRun(last, part)) {
      out.push(part);
    } else if (part.type === "tool_call") {
      out[out.length - 1] = {
        ...last,
        id: last.id ?? part.id,
        name: last.name ?? part.name,
        arguments: (last.arguments ?? "") + (part.arguments ?? ""),
      };
    } else {
      out[out.length - 1] = { ...last, text: (last.text ?? "") + (part.text ?? "") };
    }
  }
  return out;
}

/**
 * A reply with `parts` added: text to `content`, reasoning to `reasoning`, refusal to `refusal`, each tool-call
 * fragment to its call in `toolCalls` ({index, id, name, arguments}, in index order). Fields a reply never got
 * stay absent, so a text-only reply is exactly what it was before parts.
 */
export function applyParts(reply, parts) {
  const next = { ...reply };
  for (const part of parts) {
    if (part.type === "text") next.content += part.text ?? "";
    else if (part.type === "reasoning") next.reasoning = (next.reasoning ?? "") + (part.text ?? "");
    else if (part.type === "refusal") next.refusal = (next.refusal ?? "") + (part.text ?? "");
    else if (part.type === "tool_call") next.toolCalls = addToolCall(next.toolCalls ?? [], part);
    else if (WHOLE.has(part.type)) next.toolCalls = addToolOutcome(next.toolCalls ?? [], part);
    // A kind this page does not know (a newer server's) is left out; its text, if any, came as `text`.
  }
  return next;
}

function addToolCall(calls, part) {
  const at = calls.findIndex((call) => call.index === part.index);
  const before = at === -1 ? { index: part.index, id: null, name: "", arguments: "" } : calls[at];
  const call = {
    ...before,
    id: before.id ?? part.id ?? null,
    name: before.name || part.name || "",
    arguments: before.arguments + (part.arguments ?? ""),
  };
  const next = at === -1 ? [...calls, call] : calls.with(at, call);
  return at === -1 ? next.sort((a, b) => a.index - b.index) : next;
}

/**
 * A server-side tool's result or error, kept on the call of the same id (shown under it): `result` (a JSON value)
 * or `error` (a message for the user).
 */
function addToolOutcome(calls, part) {
  const at = calls.findIndex((call) => call.id === part.id);
  if (at === -1) return calls; // no such call streamed: nothing to show it under
  const outcome = part.type === "tool_result" ? { result: part.result } : { error: part.message ?? "" };
  return calls.with(at, { ...calls[at], ...outcome });
}

/**
 * done.tool_calls (each call whole) in the page's shape, which replaces what the fragments built; null (keep those)
 * when the server ran tools in the stream (`streamed` has results): done then lists only the last reply's calls.
 */
export function toolCallsFromDone(toolCalls, streamed = []) {
  if (!Array.isArray(toolCalls) || toolCalls.length === 0) return null;
  if (streamed?.some((call) => "result" in call || "error" in call)) return null;
  return toolCalls.map((call, index) => ({
    index,
    id: call.id ?? null,
    name: call.function?.name ?? "",
    arguments: call.function?.arguments ?? "",
  }));
}
