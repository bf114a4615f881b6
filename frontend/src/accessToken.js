// The access token the user typed, for servers with AUTH_TOKENS (docs/protocol.md, "Connecting").
// Kept in sessionStorage, not localStorage: it survives a reload of this tab, but not the tab itself,
// and other tabs and later visits never see it.

import { webStorage } from "./webStorage.js";

const KEY = "chat-relay.access-token";
let fallback = null; // when storage is unavailable (some private modes throw), the token lives only in memory

function storage() {
  return webStorage("sessionStorage");
}

/** The token to send, or null when the user has not given one. */
export function getToken() {
  try {
    return storage()?.getItem(KEY) ?? fallback;
  } catch {
    return fallback;
  }
}

export function setToken(token) {
  fallback = token;
  try {
    storage()?.setItem(KEY, token);
  } catch {
    // Memory only: the page still works, a reload just asks again.
  }
}

/** Forget the token, as when the server refused it, so a reload asks again instead of retrying it. */
export function clearToken() {
  fallback = null;
  try {
    storage()?.removeItem(KEY);
  } catch {
    // Nothing stored, nothing to remove.
  }
}

/** Socket.IO's connect auth data: `{token}` when there is one. */
export function socketAuth() {
  const token = getToken();
  return token ? { token } : {};
}
