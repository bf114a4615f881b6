// The HTTP transport (docs/protocol.md): POST /message/stream read as NDJSON while it arrives, its resume
// (GET /message/stream/<id>?after_seq=N) and its stop (POST /message/stream/<id>/stop), both with the resume token.
import { ProtocolError, readNdjson } from "./ndjson.js";

const NDJSON = "application/x-ndjson";
// A proxy's answer while the relay behind it is away (restarting, say): worth another try, like a dropped connection.
const GATEWAY = new Set([502, 503, 504]);

/**
 * Stream one reply over HTTP. onEvent gets the protocol's events ({type: "chunk" | "done" | "error"});
 * exactly one terminal event is delivered unless the signal aborts, which rejects with an AbortError.
 * onOpen({streamId, resumeToken}) is called once the server has taken the request (its X-Stream-Id and
 * X-Resume-Token headers), before any chunk. A token, when given, goes as `Authorization: Bearer <token>`
 * (servers with AUTH_TOKENS need one).
 */
export async function streamPost(request, { signal, onEvent, onOpen = () => {}, token = null }) {
  const headers = { "Content-Type": "application/json", Accept: NDJSON };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method: "POST", headers, body: JSON.stringify(request), signal };
  await streamFrom("/message/stream", init, request.stream_id, { onEvent, onOpen });
}

/**
 * Read the rest of a reply, from just after the cursor `afterSeq`, with its resume token: the chunks the server
 * wrote after it, the live ones, then the terminal event, as streamPost delivers them. A connection that fails or
 * drops ends with an error event of code `network` (retry it); a refusal ends with its code (`invalid_request`,
 * `stream_expired`, or `resume_unavailable` with `retry_after`).
 */
export async function streamResume(streamId, afterSeq, resumeToken, { signal, onEvent, onOpen = () => {}, token = null }) {
  const headers = { Accept: NDJSON, "X-Resume-Token": resumeToken };
  if (token) headers.Authorization = `Bearer ${token}`;
  const url = `/message/stream/${encodeURIComponent(streamId)}?after_seq=${afterSeq}`;
  await streamFrom(url, { method: "GET", headers, signal, cache: "no-store" }, streamId, { onEvent, onOpen });
}

/**
 * Stop a reply from anywhere, with its resume token. Closing an HTTP response no longer stops a stream (it waits
 * RESUME_GRACE seconds for a resume), so this is how the page's Stop reaches the server. Resolves to true when
 * the server stopped it; never rejects (a stop that cannot be delivered is left to the grace period).
 */
export async function stopStream(streamId, resumeToken, { token = null } = {}) {
  const headers = { "X-Resume-Token": resumeToken };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(`/message/stream/${encodeURIComponent(streamId)}/stop`, { method: "POST", headers });
    return response.ok;
  } catch {
    return false;
  }
}

async function streamFrom(url, init, streamId, { onEvent, onOpen }) {
  const fail = (code, message, extra = {}) => onEvent({ type: "error", stream_id: streamId, code, message, ...extra });
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    fail("network", "Could not reach the server.");
    return;
  }
  if (!response.ok) {
    // Before anything streams, errors come as a status and a JSON body {"error": {code, message}}.
    const body = await response.json().catch(() => null);
    const error = body?.error ?? { code: fallbackCode(response.status), message: `The server answered ${response.status}.` };
    // rate_limited and resume_unavailable: retry_after is the seconds to wait.
    fail(error.code, error.message, error.retry_after != null ? { retry_after: error.retry_after } : {});
    return;
  }
  onOpen({
    streamId: response.headers.get("X-Stream-Id") ?? streamId,
    resumeToken: response.headers.get("X-Resume-Token"),
  });
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

/** The code for an error status without the relay's body: a proxy's, say. */
function fallbackCode(status) {
  if (status === 401) return "unauthorized"; // still means a token is needed
  if (GATEWAY.has(status)) return "network";
  return "internal";
}
