import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { describeError, describeFinish, describeRetry } from "../src/errors.js";

// The codes as docs/protocol.md's "Error codes" table lists them: the contract the page must put in words.
function protocolCodes() {
  const doc = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");
  const table = doc.split("## Error codes")[1].split("\n\n")[2];
  return [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
}

describe("describeError", () => {
  it("has its own words for every code in docs/protocol.md", () => {
    const codes = protocolCodes();
    expect(codes).toEqual(expect.arrayContaining(["unauthorized", "origin_not_allowed", "too_many_streams", "server_shutdown"]));
    const fallback = describeError("no-such-code");
    for (const code of codes) expect(describeError(code), code).not.toBe(fallback);
  });

  it("still says something for an unknown code", () => {
    expect(describeError("no-such-code")).toBe("Something went wrong.");
  });
});

describe("describeRetry", () => {
  it("says when to try again", () => {
    expect(describeRetry(1)).toBe("Try again in a second.");
    expect(describeRetry(17)).toBe("Try again in 17 seconds.");
    expect(describeRetry(600)).toBe("Try again in 10 minutes.");
    expect(describeRetry(20 * 3600)).toBe("Try again in 20 hours."); // budget_exceeded, a day's budget
  });

  it("says nothing without a retry_after", () => {
    expect(describeRetry(undefined)).toBeNull();
    expect(describeRetry(null)).toBeNull();
  });
});

describe("describeFinish", () => {
  it("says why a reply was cut, the server tools' step cap too", () => {
    expect(describeFinish("stop")).toBeNull();
    expect(describeFinish("length")).toMatch(/length limit/);
    expect(describeFinish("tool_steps_exceeded")).toMatch(/too many times/);
  });
});
