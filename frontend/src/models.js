// The models a user may pick, from the server's GET /models (docs/protocol.md).

/** {models: string[], default: string}; on failure, an empty list so the server's default applies. */
export async function fetchModels() {
  try {
    const response = await fetch("/models", { headers: { Accept: "application/json" } });
    if (!response.ok) return { models: [], default: null };
    return await response.json();
  } catch {
    return { models: [], default: null };
  }
}
