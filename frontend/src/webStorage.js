// The browser's Storage objects, or null where there are none: some private modes throw on the very access,
// and node (Vitest) has neither. Each caller keeps its own key and its own fallback.

/** `globalThis.sessionStorage` or `globalThis.localStorage` (by name), or null when it cannot be had. */
export function webStorage(name) {
  try {
    return globalThis[name] ?? null;
  } catch {
    return null;
  }
}
