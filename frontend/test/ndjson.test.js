import { describe, expect, it } from "vitest";
import { createLineSplitter, ProtocolError, readNdjson } from "../src/ndjson.js";

const encoder = new TextEncoder();

/** A body that delivers exactly these byte pieces, one per read, as a network would. */
function bodyOf(pieces) {
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(typeof piece === "string" ? encoder.encode(piece) : piece);
      controller.close();
    },
  });
}

async function eventsOf(pieces) {
  const events = [];
  await readNdjson(bodyOf(pieces), (event) => events.push(event));
  return events;
}

describe("createLineSplitter", () => {
  it("keeps a partial line until a later piece completes it", () => {
    const split = createLineSplitter();
    expect(split.push('{"a"')).toEqual([]);
    expect(split.push(':1}\n{"b":')).toEqual(['{"a":1}']);
    expect(split.push("2}\n")).toEqual(['{"b":2}']);
    expect(split.end()).toEqual([]);
  });

  it("returns a last line that has no newline at the end", () => {
    const split = createLineSplitter();
    expect(split.push('{"a":1}\n{"b":2}')).toEqual(['{"a":1}']);
    expect(split.end()).toEqual(['{"b":2}']);
  });

  it("skips blank lines", () => {
    expect(createLineSplitter().push("\n\n{}\n\n")).toEqual(["{}"]);
  });
});

describe("readNdjson", () => {
  it("parses chunks split across reads, in order", async () => {
    const text = '{"type":"chunk","text":"a\\nb","seq":0}\n{"type":"chunk","text":" c","seq":1}\n{"type":"done","finish_reason":"stop"}\n';
    const pieces = [text.slice(0, 5), text.slice(5, 40), text.slice(40, 41), text.slice(41)];
    expect(await eventsOf(pieces)).toEqual([
      { type: "chunk", text: "a\nb", seq: 0 },
      { type: "chunk", text: " c", seq: 1 },
      { type: "done", finish_reason: "stop" },
    ]);
  });

  it("decodes a multi-byte UTF-8 character split between two reads", async () => {
    const bytes = encoder.encode('{"type":"chunk","text":"日😀","seq":0}\n');
    const cut = bytes.indexOf(0xf0) + 2; // inside the 4-byte emoji
    const events = await eventsOf([bytes.slice(0, cut), bytes.slice(cut)]);
    expect(events).toEqual([{ type: "chunk", text: "日😀", seq: 0 }]);
  });

  it("passes an error line on as the terminal event", async () => {
    const events = await eventsOf([
      '{"type":"chunk","text":"Hi","seq":0}\n{"type":"error","stream_id":"s","code":"upstream_timeout",',
      '"message":"The model took too long to respond."}\n',
    ]);
    expect(events.at(-1)).toEqual({
      type: "error",
      stream_id: "s",
      code: "upstream_timeout",
      message: "The model took too long to respond.",
    });
    expect(events).toHaveLength(2);
  });

  it("parses a last line without a trailing newline", async () => {
    expect(await eventsOf(['{"type":"done"}'])).toEqual([{ type: "done" }]);
  });

  it("refuses a line that is not JSON", async () => {
    await expect(eventsOf(["not json\n"])).rejects.toBeInstanceOf(ProtocolError);
  });
});
