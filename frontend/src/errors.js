// Error codes (every one in docs/protocol.md's table, plus those the page itself detects) in plain words.

const HEADLINES = {
  invalid_request: "Request refused.",
  upstream_auth: "The model refused the server's credentials.",
  rate_limited: "Too many requests.", // the model's rate limit, or this server's own per client
  upstream_timeout: "The model timed out.",
  upstream_unavailable: "The model is unreachable.",
  upstream_error: "The model failed.",
  internal: "Server error.",
  unauthorized: "This server needs an access token.",
  origin_not_allowed: "This page's address is not allowed to use the server.",
  host_not_allowed: "The server does not answer to this address.",
  too_many_streams: "Too many replies at once.",
  budget_exceeded: "You have used your token budget for now.",
  too_many_connections: "Too many connections open from here (other tabs?).",
  server_shutdown: "The server is shutting down.",
  stream_expired: "The server no longer keeps this reply, so the rest of it is lost.", // a resume after RESUME_TTL
  resume_unavailable: "The reply cannot be picked up again right now.", // the shared store is away; retried
  interrupted: "The reply was cut off: the server writing it stopped.", // its instance died; the text kept is shown
  stalled_reader: "The reply was cut off: this page stopped taking it in.", // nothing read for STALLED_READER_TIMEOUT
  network: "Connection failed.",
  disconnected: "Connection lost.",
};

/** A short headline for a code, shown before the server's message; unknown codes still get words. */
export function describeError(code) {
  return HEADLINES[code] ?? "Something went wrong.";
}

/** When to try again, from a `rate_limited` or `budget_exceeded` error's `retry_after` (whole seconds), or null without one. */
export function describeRetry(retryAfter) {
  if (retryAfter == null || !Number.isFinite(retryAfter) || retryAfter < 0) return null;
  if (retryAfter <= 1) return "Try again in a second.";
  if (retryAfter < 120) return `Try again in ${Math.ceil(retryAfter)} seconds.`;
  if (retryAfter < 7200) return `Try again in ${Math.ceil(retryAfter / 60)} minutes.`;
  return `Try again in ${Math.ceil(retryAfter / 3600)} hours.`; // a budget's period may be a day
}

const CUT = {
  length: "The reply was cut off: it reached the length limit.",
  content_filter: "The reply was cut off by the model's content filter.",
  tool_calls: "The model asked to call a tool, which this page does not support.",
  tool_steps_exceeded: "The reply was cut off: the model called the server's tools too many times in a row.",
};

/** Why a finished reply is incomplete, or null when it ended normally. */
export function describeFinish(finishReason) {
  return CUT[finishReason] ?? null;
}
