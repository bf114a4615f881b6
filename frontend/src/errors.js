// Error codes (docs/protocol.md, plus two the page itself detects) in plain words.

const HEADLINES = {
  invalid_request: "The request was not accepted.",
  upstream_auth: "The server could not sign in to the model.",
  rate_limited: "The model is busy right now. Try again in a moment.",
  upstream_timeout: "The model took too long to answer.",
  upstream_unavailable: "The model could not be reached.",
  upstream_error: "The model failed to answer.",
  internal: "Something went wrong on the server.",
  network: "The connection to the server failed.",
  disconnected: "The connection dropped, so the reply was cut off.",
};

/** A headline for a code; unknown codes still get words rather than a bare identifier. */
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
