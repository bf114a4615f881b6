// NDJSON over a byte stream: a pure line splitter, and a reader that feeds it from a ReadableStream.

/**
 * Split text that arrives in arbitrary pieces into complete lines. Network reads cut lines anywhere,
 * so the tail after the last newline is kept until the next piece (or the end) completes it.
 */
export function createLineSplitter() {
  let partial = "";
  return {
    push(text) {
      partial += text;
      const lines = partial.split("\n");
      partial = lines.pop();
      return lines.filter((line) => line.trim() !== "");
    },
    end() {
      const last = partial;
      partial = "";
      return last.trim() === "" ? [] : [last];
    },
  };
}

/** Thrown when a line is not JSON: the server broke the protocol, which is not the user's doing. */
export class ProtocolError extends Error {}

function parseLine(line) {
  try {
    return JSON.parse(line);
  } catch {
    throw new ProtocolError("The server sent a line that is not JSON.");
  }
}

/**
 * Read an NDJSON body as it arrives, calling onEvent with each parsed object in order.
 * TextDecoder runs with stream:true so a multi-byte character split across two reads is decoded whole.
 */
export async function readNdjson(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const splitter = createLineSplitter();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const line of splitter.push(decoder.decode(value, { stream: true }))) onEvent(parseLine(line));
    }
    for (const line of splitter.push(decoder.decode())) onEvent(parseLine(line));
    for (const line of splitter.end()) onEvent(parseLine(line));
  } finally {
    reader.releaseLock();
  }
}
