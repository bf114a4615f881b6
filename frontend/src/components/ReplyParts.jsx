import { useState } from "react";

/**
 * The model's thinking: open while it streams, folded once the reply's text starts (or the reply ends), and opened
 * or folded again by a click, which then holds. Plain text, never Markdown or HTML: it is the model's scratchpad.
 */
export function Thinking({ reasoning, streaming, answered }) {
  const [chosen, setChosen] = useState(null); // the reader's choice, once they have made one
  const live = streaming && !answered;
  const open = chosen ?? live;
  return (
    <details className="thinking" open={open} data-testid="thinking" data-open={open ? "true" : "false"}>
      <summary
        onClick={(event) => {
          event.preventDefault(); // React owns `open`: the click only records the choice
          setChosen(!open);
        }}
      >
        {live ? "Thinking…" : "Thinking"}
      </summary>
      {open ? <p className="reasoning" data-testid="reasoning">{reasoning}</p> : null}
    </details>
  );
}

/**
 * Each tool call as it streams: its name as soon as it comes, then its arguments (JSON) as they grow; under it, what
 * a tool the server ran returned, or why it failed. Plain text, never HTML: a result is whatever the tool read.
 */
export function ToolCalls({ calls }) {
  return (
    <ul className="tool-calls">
      {calls.map((call) => (
        <li key={call.index} className="tool-call" data-testid="tool-call" data-name={call.name}>
          <span>Tool call </span>
          <code className="tool-name">{call.name || "…"}</code>
          <pre className="tool-arguments" data-testid="tool-arguments">{call.arguments}</pre>
          {call.error != null ? <p className="tool-error" data-testid="tool-error">{call.error}</p> : null}
          {"result" in call ? <pre className="tool-result" data-testid="tool-result">{shown(call.result)}</pre> : null}
        </li>
      ))}
    </ul>
  );
}

/** A tool's result as text: a string as it is, any other JSON value indented. */
function shown(result) {
  return typeof result === "string" ? result : JSON.stringify(result, null, 2);
}

/** The images sent with a prompt. */
export function PromptImages({ images }) {
  return (
    <div className="images">
      {images.map((url, index) => (
        <img key={index} src={url} alt={`Image ${index + 1} sent`} data-testid="sent-image" />
      ))}
    </div>
  );
}
