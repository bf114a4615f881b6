/** Start over: the running reply is stopped first, and the conversation forgotten (also across reloads). */
export function NewChat({ onClick, disabled, busy }) {
  return (
    <button
      type="button"
      className="new-chat"
      onClick={onClick}
      disabled={disabled}
      title={busy ? "Stop the reply and start a new conversation" : "Start a new conversation"}
    >
      New chat
    </button>
  );
}
