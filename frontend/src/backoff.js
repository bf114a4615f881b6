// How long the page waits before it tries again to read the rest of a reply (docs/protocol.md, "Resuming a
// stream"): after an HTTP connection dropped mid-reply, or a resume refused with `resume_unavailable`.

/**
 * Doubling from 250 ms up to 5 s: the first retry is quick, since most drops are a proxy or a server restarting.
 * Ten tries span about 33 s, longer than the server's default RESUME_GRACE (20 s): after that the stream is
 * cancelled, and a resume that still gets through reads its end ("Stopped."), never silence.
 */
export const RESUME_BACKOFF = { firstMs: 250, maxMs: 5_000, attempts: 10 };

/**
 * Milliseconds to wait before retry number `attempt` (0 for the first), or null when the page should give up.
 * A `retryAfter` in seconds (the server's `retry_after`) is honoured instead of the doubling.
 */
export function resumeDelay(attempt, retryAfter = null, backoff = RESUME_BACKOFF) {
  if (attempt >= backoff.attempts) return null;
  if (typeof retryAfter === "number" && Number.isFinite(retryAfter) && retryAfter >= 0) return retryAfter * 1000;
  return Math.min(backoff.firstMs * 2 ** attempt, backoff.maxMs);
}
