import { useState } from "react";

/**
 * The prompt box: Enter sends, Shift+Enter starts a new line, Esc stops the running reply.
 * While `locked` (the server wants a token first) the prompt can be written but not sent.
 */
export function Composer({ busy, locked = false, onSend, onStop }) {
  const [prompt, setPrompt] = useState("");

  function submit() {
    if (busy || locked || !prompt.trim()) return;
    onSend(prompt);
    setPrompt("");
  }

  function onKeyDown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && busy) {
      event.preventDefault();
      onStop();
    }
  }

  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        submit();
      }}
    >
      <label htmlFor="prompt" className="visually-hidden">Message</label>
      <textarea
        id="prompt"
        value={prompt}
        rows={3}
        placeholder="Ask something…  (Enter to send, Shift+Enter for a new line, Esc to stop)"
        onChange={(event) => setPrompt(event.target.value)}
        onKeyDown={onKeyDown}
      />
      {busy ? (
        <button type="button" className="stop" onClick={onStop}>Stop</button>
      ) : (
        <button type="submit" disabled={locked || !prompt.trim()}>Send</button>
      )}
    </form>
  );
}
