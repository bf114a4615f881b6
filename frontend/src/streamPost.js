// The HTTP transport: POST /message/stream read as NDJSON while it arrives (docs/protocol.md).
import { readNdjson } from "./ndjson.js";

const NDJSON = "application/x-ndjson";

/**
 * Stream one reply over HTTP. onEvent gets the protocol's events ({type: "chunk" | "done" | "error"});
 * exactly one terminal event is delivered unless the signal aborts, which rejects with an AbortError.
 */
export async function streamPost(request, { signal, onEvent }) {
  let response;
  try {
    response = await fetch("/message/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: NDJSON },
      body: JSON.stringify(request),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    onEvent({ type: "error", stream_id: request.stream_id, code: "network", message: "Could not reach the server." });
    return;
  }
  if (!response.ok) {
    // Before anything streams, errors come as a status and a JSON body {"error": {code, message}}.
    const body = await response.json().catch(() => null);
    const error = body?.error ?? { code: "internal", message: `The server answered ${response.status}.` };
    onEvent({ type: "error", stream_id: request.stream_id, code: error.code, message: error.message });
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
    onEvent({ type: "error", stream_id: request.stream_id, code: "network", message: "The connection dropped before the reply ended." });
  }
  if (!ended) {
    onEvent({ type: "error", stream_id: request.stream_id, code: "network", message: "The reply ended without its last line." });
  }
}
