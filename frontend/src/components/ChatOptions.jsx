/** The model picker and the transport toggle. */
export function ChatOptions({ models, model, onModel, transport, onTransport, disabled }) {
  return (
    <div className="settings">
      <label>
        Model{" "}
        <select value={model ?? ""} onChange={(e) => onModel(e.target.value)} disabled={disabled || models.length === 0} data-testid="model">
          {models.map((m) => (
            <option key={m} value={m}>{m}</option>
          ))}
        </select>
      </label>
      <fieldset className="transport" disabled={disabled}>
        <legend className="visually-hidden">Transport</legend>
        {[
          ["socket", "Socket.IO"],
          ["http", "HTTP"],
        ].map(([value, label]) => (
          <label key={value}>
            <input type="radio" name="transport" value={value} checked={transport === value} onChange={() => onTransport(value)} />
            {label}
          </label>
        ))}
      </fieldset>
    </div>
  );
}
