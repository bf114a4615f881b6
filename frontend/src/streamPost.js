// The HTTP transport: POST /message/stream read as NDJSON while it arrives (docs/protocol.md).
import { ProtocolError, readNdjson } from "./ndjson.js";

const NDJSON = "application/x-ndjson";

/**
 * Stream one reply over HTTP. onEvent gets the protocol's events ({type: "chunk" | "done" | "error"});
 * exactly one terminal event is delivered unless the signal aborts, which rejects with an AbortError.
 * A token, when given, goes as `Authorization: Bearer <token>` (servers with AUTH_TOKENS need one).
 */
export async function streamPost(request, { signal, onEvent, token = null }) {
  const fail = (code, message, extra = {}) => onEvent({ type: "error", stream_id: request.stream_id, code, message, ...extra });
  const headers = { "Content-Type": "application/json", Accept: NDJSON };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch("/message/stream", {
      method: "POST",
      headers,
      body: JSON.stringify(request),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    fail("network", "Could not reach the server.");
    return;
  }
  if (!response.ok) {
    // Before anything streams, errors come as a status and a JSON body {"error": {code, message}}.
    const body = await response.json().catch(() => null);
    // A 401 without the relay's body (a proxy's, say) still means a token is needed.
    const fallbackCode = response.status === 401 ? "unauthorized" : "internal";
    const error = body?.error ?? { code: fallbackCode, message: `The server answered ${response.status}.` };
    // rate_limited: retry_after is the seconds to wait.
    fail(error.code, error.message, error.retry_after != null ? { retry_after: error.retry_after } : {});
    return;
  }
  let ended = false;
  try {
    await readNdjson(response.body, (event) => {
      if (event.type === "done" || event.type === "error") ended = true;
      onEvent(event);
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    ended = true;
    if (err instanceof ProtocolError) fail("internal", err.message);
    else fail("network", "The connection dropped before the reply ended.");
  }
  if (!ended) fail("network", "The reply ended without its last line.");
}
