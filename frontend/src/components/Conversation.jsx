import { useEffect, useRef } from "react";
import { Message } from "./Message.jsx";

/** The turns so far. The list is a polite live region, so screen readers follow the streaming reply. */
export function Conversation({ messages, active }) {
  const end = useRef(null);
  const last = messages.at(-1);
  useEffect(() => {
    end.current?.scrollIntoView({ block: "end" });
  }, [messages.length, last?.content]);

  if (messages.length === 0) {
    return <p className="empty">Ask something to start a conversation.</p>;
  }
  return (
    <ol className="conversation" aria-live="polite" aria-busy={active ? "true" : "false"} data-testid="conversation">
      {messages.map((m) => (
        <Message key={m.id} message={m} stopping={active?.stopping && m.streamId === active.streamId} />
      ))}
      <li ref={end} aria-hidden="true" className="end" />
    </ol>
  );
}
