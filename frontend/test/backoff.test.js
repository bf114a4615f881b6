import { describe, expect, it } from "vitest";
import { RESUME_BACKOFF, resumeDelay } from "../src/backoff.js";

describe("resumeDelay", () => {
  it("doubles from a quick first retry up to a cap", () => {
    const delays = Array.from({ length: RESUME_BACKOFF.attempts }, (_, i) => resumeDelay(i));
    expect(delays.slice(0, 6)).toEqual([250, 500, 1000, 2000, 4000, 5000]);
    expect(Math.max(...delays)).toBe(RESUME_BACKOFF.maxMs);
  });

  it("outlasts the server's default RESUME_GRACE (20 s) before giving up", () => {
    const total = Array.from({ length: RESUME_BACKOFF.attempts }, (_, i) => resumeDelay(i)).reduce((a, b) => a + b);
    expect(total).toBeGreaterThan(20_000);
    expect(resumeDelay(RESUME_BACKOFF.attempts)).toBeNull();
  });

  it("waits the server's retry_after instead, when it gives one", () => {
    expect(resumeDelay(0, 3)).toBe(3000);
    expect(resumeDelay(0, 0)).toBe(0);
    expect(resumeDelay(0, null)).toBe(250);
    expect(resumeDelay(0, "3")).toBe(250); // not a number: ignored
    expect(resumeDelay(RESUME_BACKOFF.attempts, 3)).toBeNull();
  });
});
