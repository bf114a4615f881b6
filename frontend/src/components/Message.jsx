import Markdown from "react-markdown";
import remarkGfm from "remark-gfm";
import { describeError, describeFinish, describeRetry } from "../errors.js";
import { PromptImages, Thinking, ToolCalls } from "./ReplyParts.jsx";

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
    const started = message.content || message.reasoning || message.toolCalls || message.refusal;
    return <p className="note muted">{stopping ? "Stopping…" : started ? "" : "Waiting for the model…"}</p>;
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

/**
 * One turn: the user's prompt as typed (with its images), or the model's reply: its thinking, its tool calls, its
 * text as Markdown (or its refusal), and its outcome.
 */
export function Message({ message, stopping }) {
  if (message.role === "user") {
    return (
      <li className="message user">
        {message.images?.length ? <PromptImages images={message.images} /> : null}
        {message.content ? <div className="bubble">{message.content}</div> : null}
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
      {message.reasoning ? (
        <Thinking
          reasoning={message.reasoning}
          streaming={message.status === "streaming"}
          answered={Boolean(message.content || message.toolCalls || message.refusal)}
        />
      ) : null}
      {message.toolCalls?.length ? <ToolCalls calls={message.toolCalls} /> : null}
      <ReplyText content={message.content} />
      {message.refusal ? <p className="refusal-text" data-testid="refusal-text">{message.refusal}</p> : null}
      <ReplyNote message={message} stopping={stopping} />
    </li>
  );
}
