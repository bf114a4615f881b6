// Gathers streamed chunks (their text and typed parts) and hands them on at most once per interval, so the page
// re-renders (and re-parses Markdown) about 20 times a second however fast tokens arrive.
import { joinParts, partsOf } from "./replyParts.js";

/**
 * onFlush(streamId, text, seq, parts) gets each stream's gathered text, in arrival order, with the cursor
 * (docs/protocol.md, "The cursor") of the last chunk in it: the text shown and the cursor a resume starts from always
 * move together. `parts` are the chunks' typed parts, joined (replyParts.js), text included.
 * flush() hands on everything at once (before a terminal event, or a resume); cancel() drops the pending timer.
 */
export function createChunkBuffer(onFlush, intervalMs) {
  const pending = new Map(); // streamId -> {text, seq, parts}
  let timer = null;

  function flush() {
    clearTimeout(timer);
    timer = null;
    const gathered = [...pending];
    pending.clear();
    for (const [streamId, { text, seq, parts }] of gathered) onFlush(streamId, text, seq, parts);
  }

  return {
    /**
     * Add a chunk; `seq` is its cursor (null when the transport has none), kept as the latest for the stream;
     * `parts` its typed parts, absent when it holds text only.
     */
    add(streamId, text, seq = null, parts = null) {
      const before = pending.get(streamId);
      pending.set(streamId, {
        text: (before?.text ?? "") + text,
        seq: seq ?? before?.seq ?? null,
        parts: joinParts(before?.parts ?? [], partsOf(text, parts)),
      });
      timer ??= setTimeout(flush, intervalMs);
    },
    flush,
    cancel() {
      clearTimeout(timer);
      timer = null;
      pending.clear();
    },
  };
}
