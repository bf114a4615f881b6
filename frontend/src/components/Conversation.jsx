import { useEffect, useRef } from "react";
import { Message } from "./Message.jsx";

const PINNED_PX = 80; // this close to the bottom counts as "reading the latest"

/** The turns so far. The list is a polite live region, so screen readers follow the streaming reply. */
export function Conversation({ messages, active }) {
  const end = useRef(null);
  const pinned = useRef(true);
  const last = messages.at(-1);

  // Follow the reply only while the reader is at the bottom, so scrolling up to reread is not undone.
  useEffect(() => {
    const scroller = end.current?.closest("main");
    if (!scroller) return undefined;
    function onScroll() {
      pinned.current = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < PINNED_PX;
    }
    scroller.addEventListener("scroll", onScroll, { passive: true });
    return () => scroller.removeEventListener("scroll", onScroll);
  }, [messages.length > 0]);

  useEffect(() => {
    pinned.current = true; // a new prompt always brings its reply into view
  }, [messages.length]);

  useEffect(() => {
    if (pinned.current) end.current?.scrollIntoView({ block: "end" });
  }, [messages.length, last?.content, last?.status]);

  if (messages.length === 0) {
    return <p className="empty">Ask something to start a conversation.</p>;
  }
  return (
    <ol className="conversation" aria-live="polite" data-testid="conversation">
      {messages.map((m) => (
        <Message key={m.id} message={m} stopping={active?.stopping && m.streamId === active.streamId} />
      ))}
      <li ref={end} aria-hidden="true" className="end" />
    </ol>
  );
}
