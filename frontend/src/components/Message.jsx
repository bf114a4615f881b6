import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";
import { describeError, describeFinish, describeRetry } from "../errors.js";

// react-markdown renders to React elements and ignores raw HTML unless a plugin enables it,
// so model output cannot inject markup or scripts.
function ReplyText({ content }) {
  return (
    <div className="markdown">
      <Markdown remarkPlugins={[remarkGfm]} skipHtml>
        {content}
      </Markdown>
    </div>
  );
}

function ReplyNote({ message, stopping }) {
  if (message.status === "streaming") {
    if (!stopping && message.reconnecting) {
      // The connection dropped (or the page was reloaded): the hook is resuming the reply from its cursor.
      return <p className="note reconnecting" role="status" data-testid="reconnecting">Reconnecting…</p>;
    }
    return <p className="note muted">{stopping ? "Stopping…" : message.content ? "" : "Waiting for the model…"}</p>;
  }
  if (message.status === "stopped") return <p className="note stopped" data-testid="stopped">Stopped.</p>;
  if (message.status === "error") {
    const retry = describeRetry(message.error.retryAfter);
    return (
      <p className="note error" role="alert" data-testid="error" data-code={message.error.code}>
        <strong>{describeError(message.error.code)}</strong>
        {message.error.message ? ` ${message.error.message}` : ""}
        {retry ? ` ${retry}` : ""} <code>{message.error.code}</code>
      </p>
    );
  }
  const cut = describeFinish(message.finishReason);
  return cut ? <p className="note cut" data-testid="finish" data-reason={message.finishReason}>{cut}</p> : null;
}

/** One turn: the user's prompt as typed, or the model's reply as Markdown with its outcome. */
export function Message({ message, stopping }) {
  if (message.role === "user") {
    return (
      <li className="message user">
        <div className="bubble">{message.content}</div>
      </li>
    );
  }
  return (
    <li
      className={`message assistant status-${message.status}`}
      data-testid="reply"
      data-status={message.status}
      data-reconnecting={message.reconnecting ? "true" : undefined}
    >
      <ReplyText content={message.content} />
      <ReplyNote message={message} stopping={stopping} />
    </li>
  );
}
