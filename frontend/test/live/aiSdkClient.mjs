// A client of the relay's AI SDK endpoint made of the real `ai` package: its DefaultChatTransport sends the
// request (or reconnects to a chat's stream), and its readUIMessageStream builds the UI message, as useChat does.
// Run by tests/live/test_ai_sdk.py, not by Vitest (its name does not end in .test.js).
//
//   node aiSdkClient.mjs <api URL> '<JSON: {"action": "send" | "resume", "chatId", "messages"?, "body"?, "headers"?}>'
//
// Prints {"connected": true} once the response has come (a stream to read), then one JSON line: {"status": HTTP-like outcome, "message": the last UI message or null, "chunks": the
// chunk types in order, "errors": the error texts}.
import { DefaultChatTransport, readUIMessageStream } from "ai";

const [api, argument] = process.argv.slice(2);
const { action, chatId, messages = [], body, headers } = JSON.parse(argument);
const transport = new DefaultChatTransport({ api, body, headers });
const chunks = [];
const errors = [];

function recorded(stream) {
  return stream.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      chunks.push(chunk.type);
      controller.enqueue(chunk);
    },
  }));
}

let outcome = "ok";
let message = null;
try {
  const stream = action === "resume"
    ? await transport.reconnectToStream({ chatId })
    : await transport.sendMessages({ chatId, messages, trigger: "submit-message", messageId: undefined,
      abortSignal: undefined });
  if (stream === null) {
    outcome = "no-stream";
  } else {
    process.stdout.write(JSON.stringify({ connected: true }) + "\n");
    for await (const snapshot of readUIMessageStream({ stream: recorded(stream),
      onError: (error) => errors.push(error.message) })) {
      message = snapshot;
    }
  }
} catch (error) {
  outcome = "refused";
  errors.push(error.message);
}
process.stdout.write(JSON.stringify({ status: outcome, message, chunks, errors }) + "\n");
