// The Socket.IO chat transport (src/socketChatTransport.js) as a client of a running relay, read by the real `ai`
// package's readUIMessageStream as useChat reads it. Run by tests/live/test_ai_sdk_socketio.py, not by Vitest.
//
//   node socketChatClient.mjs <relay URL> '<JSON: {"chatId", "messages", "body"?, "event"?, "namespace"?, "stopAfter"?}>'
//
// `stopAfter`: abort (useChat's stop()) once that many text deltas have come, then wait for the relay's own
// `cancelled` done on the socket, which proves the stop reached it. Prints one JSON line: {"status": ok | refused,
// "message": the last UI message or null, "chunks": the chunk types in order, "errors": the error texts,
// "cancelled": whether the relay ended the stream on the stop}.
import { readUIMessageStream } from "ai";
import { io } from "socket.io-client";
import { SocketChatTransport } from "../../src/socketChatTransport.js";

const [url, argument] = process.argv.slice(2);
const { chatId, messages, body, event = "chatgpt_description", namespace = "", stopAfter } = JSON.parse(argument);
const socket = io(url + namespace, { transports: ["websocket"], reconnection: false });
const transport = new SocketChatTransport({ socket, event, body, storage: null });
const abort = new AbortController();
const chunks = [];
const errors = [];
let deltas = 0;
const cancelled = stopAfter && new Promise((resolve) => {
  const bound = setTimeout(() => resolve(false), 10_000); // for a stop that never reached the relay
  socket.on(`${event}_done`, (done) => {
    if (done.finish_reason !== "cancelled") return;
    clearTimeout(bound);
    resolve(true);
  });
});

function recorded(stream) {
  return stream.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      chunks.push(chunk.type);
      controller.enqueue(chunk);
      if (chunk.type === "text-delta" && ++deltas === stopAfter) abort.abort();
    },
  }));
}

let outcome = "ok";
let message = null;
try {
  const stream = await transport.sendMessages({ chatId, messages, trigger: "submit-message", messageId: undefined,
    abortSignal: abort.signal });
  for await (const snapshot of readUIMessageStream({ stream: recorded(stream),
    onError: (error) => errors.push(error.message) })) {
    message = snapshot;
  }
} catch (error) {
  outcome = "refused";
  errors.push(error.message);
}
const stopped = cancelled ? await cancelled : false;
process.stdout.write(JSON.stringify({ status: outcome, message, chunks, errors, cancelled: stopped }) + "\n");
socket.disconnect();
