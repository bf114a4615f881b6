// The conversation, kept in sessionStorage so that a reload of the tab shows it again and picks up a reply that
// was still running: its stream id, resume token, transport and cursor travel with it (docs/protocol.md,
// "Resuming a stream"). sessionStorage, like the access token (accessToken.js): gone with the tab, never shared
// with other tabs. Without storage (some private modes throw), the page works as before and a reload starts afresh.

import { webStorage } from "./webStorage.js";

export const KEY = "chat-relay.conversation";
const VERSION = 1;

function storage() {
  return webStorage("sessionStorage");
}

const ROLES = new Set(["user", "assistant"]);
const STATUSES = new Set(["done", "streaming", "stopped", "error"]);

function isMessage(m) {
  return (
    m !== null &&
    typeof m === "object" &&
    typeof m.id === "string" &&
    ROLES.has(m.role) &&
    typeof m.content === "string" &&
    STATUSES.has(m.status) &&
    (m.role === "user" || (typeof m.streamId === "string" && (m.transport === "socket" || m.transport === "http"))) &&
    (m.seq === undefined || Number.isInteger(m.seq)) &&
    (m.resumeToken === undefined || typeof m.resumeToken === "string")
  );
}

/** What a message keeps across a reload: all but the "Reconnecting…" note, which the restore decides afresh. */
function kept(m) {
  const { reconnecting: _note, ...rest } = m;
  return rest;
}

/** The messages kept by an earlier load of this tab, as {messages}, or null (none, unreadable, or no storage). */
export function loadChat() {
  let raw;
  try {
    raw = storage()?.getItem(KEY) ?? null;
  } catch {
    return null;
  }
  if (raw === null) return null;
  try {
    const saved = JSON.parse(raw);
    if (saved?.version !== VERSION || !Array.isArray(saved.messages) || !saved.messages.every(isMessage)) return null;
    return { messages: saved.messages };
  } catch {
    return null;
  }
}

/** Keep the conversation (an empty one is removed). Never throws: a full or missing storage just keeps nothing. */
export function saveChat(messages) {
  try {
    if (messages.length === 0) storage()?.removeItem(KEY);
    else storage()?.setItem(KEY, JSON.stringify({ version: VERSION, messages: messages.map(kept) }));
  } catch {
    clearChat(); // over quota, or denied: better a reload that starts afresh than one that shows a stale state
  }
}

/** Forget the conversation, as "New chat" does. */
export function clearChat() {
  try {
    storage()?.removeItem(KEY);
  } catch {
    // Nothing stored, nothing to remove.
  }
}
