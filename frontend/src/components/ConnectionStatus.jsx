const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  token_needed: "Token needed",
};

/** The Socket.IO connection state, as a coloured dot and a word. */
export function ConnectionStatus({ connection }) {
  return (
    <span className={`connection connection-${connection}`} data-testid="connection" data-state={connection}>
      <span className="dot" aria-hidden="true" />
      {LABELS[connection] ?? connection}
    </span>
  );
}
