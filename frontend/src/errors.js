// Error codes (docs/protocol.md, plus two the page itself detects) in plain words.

const HEADLINES = {
  invalid_request: "Request refused.",
  upstream_auth: "The model refused the server's credentials.",
  rate_limited: "The model is busy.",
  upstream_timeout: "The model timed out.",
  upstream_unavailable: "The model is unreachable.",
  upstream_error: "The model failed.",
  internal: "Server error.",
  network: "Connection failed.",
  disconnected: "Connection lost.",
};

/** A short headline for a code, shown before the server's message; unknown codes still get words. */
export function describeError(code) {
  return HEADLINES[code] ?? "Something went wrong.";
}

const CUT = {
  length: "The reply was cut off: it reached the length limit.",
  content_filter: "The reply was cut off by the model's content filter.",
  tool_calls: "The model asked to call a tool, which this page does not support.",
};

/** Why a finished reply is incomplete, or null when it ended normally. */
export function describeFinish(finishReason) {
  return CUT[finishReason] ?? null;
}
