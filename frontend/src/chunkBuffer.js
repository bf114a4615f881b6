// Gathers streamed text and hands it on at most once per interval, so the page re-renders
// (and re-parses Markdown) about 20 times a second however fast tokens arrive.

/**
 * onFlush(streamId, text) gets each stream's gathered text, in arrival order. flush() hands on
 * everything at once (before a terminal event); cancel() drops the pending timer.
 */
export function createChunkBuffer(onFlush, intervalMs) {
  const pending = new Map();
  let timer = null;

  function flush() {
    clearTimeout(timer);
    timer = null;
    const gathered = [...pending];
    pending.clear();
    for (const [streamId, text] of gathered) onFlush(streamId, text);
  }

  return {
    add(streamId, text) {
      pending.set(streamId, (pending.get(streamId) ?? "") + text);
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
