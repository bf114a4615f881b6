import { useEffect, useRef, useState } from "react";

/**
 * Asks for the access token a server with AUTH_TOKENS wants. The field is a password field, so the token is
 * not shown on screen; a refused token's message is announced, and focus goes back to the field to retype it.
 */
export function TokenForm({ error, checking, onSubmit }) {
  const [token, setToken] = useState("");
  const field = useRef(null);

  useEffect(() => {
    if (error) field.current?.select();
  }, [error]);

  return (
    <section className="token" aria-labelledby="token-heading" data-testid="token-form">
      <h2 id="token-heading">This server needs an access token</h2>
      <p className="muted">Ask the server's operator for one. It is kept in this tab only, until you close it.</p>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (!checking && token.trim()) onSubmit(token);
        }}
      >
        <label htmlFor="token">Access token</label>
        <input
          id="token"
          ref={field}
          type="password"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          value={token}
          onChange={(event) => setToken(event.target.value)}
          aria-invalid={error ? "true" : undefined}
          aria-describedby={error ? "token-error" : undefined}
        />
        <button type="submit" disabled={checking || !token.trim()}>{checking ? "Checking…" : "Connect"}</button>
      </form>
      {error ? <p id="token-error" className="error" role="alert" data-testid="token-error">{error}</p> : null}
    </section>
  );
}
