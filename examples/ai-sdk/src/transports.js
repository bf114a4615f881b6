// The two ways this page reaches the relay, each a ChatTransport for useChat: the AI SDK's own DefaultChatTransport
// on the relay's POST /api/chat (docs/ai-sdk.md), or the relay's Socket.IO transport (docs/ai-sdk.md,
// "Over Socket.IO").
// And how Stop reaches the relay on each: useChat's stop() only closes the connection (the AI SDK's design), which
// the relay treats as a disconnect it keeps the reply through, for a resume; so the HTTP side also asks it to stop.
import { DefaultChatTransport } from "ai";
import { SocketChatTransport } from "chat-relay-socket-transport";
import { io } from "socket.io-client";

export const API = "/api/chat";

let socket = null;

/** The page's one Socket.IO connection to the relay, made on first use. */
export function relaySocket() {
  socket ??= io();
  return socket;
}

/** A ChatTransport for `kind` ("http" or "socket"); streams kept in this tab's sessionStorage, as the chat is. */
export function makeTransport(kind) {
  if (kind === "socket") return new SocketChatTransport({ socket: relaySocket(), storage: sessionStorage });
  return new DefaultChatTransport({ api: API });
}

/** Over HTTP, Stop asks the relay to stop the chat's running reply (its stop endpoint); Socket.IO's stop() does. */
export async function stopAtRelay(kind, chatId) {
  if (kind !== "http") return;
  await fetch(`${API}/${encodeURIComponent(chatId)}/stop`, { method: "POST" }).catch(() => {});
}
