// The transport the user picked with the toggle (Socket.IO or HTTP), kept in localStorage so a reload, a new tab
// or a later visit opens with the same one. It is a preference, not a secret (unlike the access token, which
// stays in sessionStorage). Without storage (some private modes throw), the page starts with Socket.IO.

export const KEY = "chat-relay.transport";
export const TRANSPORTS = ["socket", "http"];
export const DEFAULT_TRANSPORT = "socket";

function storage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** The transport kept by an earlier load, or the default when none was kept or the stored value is unknown. */
export function loadTransport() {
  try {
    const stored = storage()?.getItem(KEY);
    return TRANSPORTS.includes(stored) ? stored : DEFAULT_TRANSPORT;
  } catch {
    return DEFAULT_TRANSPORT;
  }
}

/** Keep the user's choice; an unknown value is ignored rather than stored. */
export function saveTransport(transport) {
  if (!TRANSPORTS.includes(transport)) return;
  try {
    storage()?.setItem(KEY, transport);
  } catch {
    // Not kept: the toggle still works for this load.
  }
}
