// This tab's chat: its id and its messages, in sessionStorage, so that a reload shows the conversation and
// useChat's `resume: true` picks up a reply that was still running (the relay replays it from its start).
const ID_KEY = "ai-sdk-example.chat-id";
const MESSAGES_KEY = "ai-sdk-example.messages:";
const TRANSPORT_KEY = "ai-sdk-example.transport";

export function chatId() {
  let id = sessionStorage.getItem(ID_KEY);
  if (!id) {
    id = crypto.randomUUID();
    sessionStorage.setItem(ID_KEY, id);
  }
  return id;
}

export function newChatId() {
  sessionStorage.removeItem(ID_KEY);
  return chatId();
}

export function loadMessages(id) {
  try {
    return JSON.parse(sessionStorage.getItem(MESSAGES_KEY + id) ?? "[]");
  } catch {
    return [];
  }
}

/** Kept whenever no reply is streaming: a reply in progress is the relay's to replay, not ours to keep half of. */
export function saveMessages(id, messages) {
  sessionStorage.setItem(MESSAGES_KEY + id, JSON.stringify(messages));
}

export function savedTransport() {
  return sessionStorage.getItem(TRANSPORT_KEY) === "http" ? "http" : "socket";
}

export function saveTransport(kind) {
  sessionStorage.setItem(TRANSPORT_KEY, kind);
}
