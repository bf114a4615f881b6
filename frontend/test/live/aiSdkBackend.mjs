// The reference for tests/live/test_ai_sdk.py: an AI SDK backend made of the real packages (streamText with the
// OpenAI-compatible provider, convertToModelMessages, toUIMessageStream) answering the same UI messages from the
// same upstream, read back by readUIMessageStream. What the relay's endpoint gives must be what this gives.
// Run by the tests, not by Vitest.
//
//   UPSTREAM_API_KEY=... node aiSdkBackend.mjs '<JSON: {"baseURL", "model", "messages", "tools"?}>'
//
// Prints one JSON line: {"message": the last UI message, "chunks": the chunk types in order}.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { convertToModelMessages, jsonSchema, readUIMessageStream, streamText, tool } from "ai";

const { baseURL, model, messages, tools = [] } = JSON.parse(process.argv[2]);
const provider = createOpenAICompatible({ name: "upstream", baseURL, apiKey: process.env.UPSTREAM_API_KEY });
const result = streamText({
  model: provider.chatModel(model),
  messages: await convertToModelMessages(messages),
  // The tools as the request declares them (OpenAI's shape), none executed here: the client runs them.
  tools: Object.fromEntries(tools.map(({ function: fn }) => [fn.name, tool({
    inputSchema: jsonSchema(fn.parameters ?? { type: "object" }),
  })])),
});
const chunks = [];
const recorded = result.toUIMessageStream().pipeThrough(new TransformStream({
  transform(chunk, controller) {
    chunks.push(chunk.type);
    controller.enqueue(chunk);
  },
}));
let message = null;
for await (const snapshot of readUIMessageStream({ stream: recorded })) message = snapshot;
process.stdout.write(JSON.stringify({ message, chunks }) + "\n");
