// useChat from @ai-sdk/react on the chat relay, over HTTP (the AI SDK's own transport) or Socket.IO (the relay's):
// text, reasoning and tool calls as they stream, resume after a reload, and Stop.
import { useChat } from "@ai-sdk/react";
import { useEffect, useMemo, useState } from "react";
import { chatId, loadMessages, newChatId, saveMessages, savedTransport, saveTransport } from "./chatStore.js";
import { makeTransport, relaySocket, stopAtRelay } from "./transports.js";

function ConnectionState() {
  const socket = relaySocket();
  const [connected, setConnected] = useState(socket.connected);
  useEffect(() => {
    const on = () => setConnected(true);
    const off = () => setConnected(false);
    socket.on("connect", on);
    socket.on("disconnect", off);
    setConnected(socket.connected);
    return () => {
      socket.off("connect", on);
      socket.off("disconnect", off);
    };
  }, [socket]);
  return <span data-testid="connection" data-state={connected ? "connected" : "disconnected"}>
    {connected ? "connected" : "connecting…"}</span>;
}

function Part({ part }) {
  if (part.type === "text") return <div data-testid="text">{part.text}</div>;
  if (part.type === "reasoning") return <div className="reasoning" data-testid="reasoning">{part.text}</div>;
  if (part.type === "dynamic-tool" || part.type.startsWith("tool-")) {
    const name = part.type === "dynamic-tool" ? part.toolName : part.type.slice("tool-".length);
    return (
      <div className="tool-call" data-testid="tool-call" data-name={name} data-state={part.state}>
        {name}(<span data-testid="tool-input">{JSON.stringify(part.input ?? {})}</span>)
        {part.state === "output-available" && <> = <span data-testid="tool-output">{JSON.stringify(part.output)}</span></>}
        {part.state === "output-error" && <> failed: <span data-testid="tool-output">{part.errorText}</span></>}
      </div>
    );
  }
  return null;
}

function Chat({ id, kind }) {
  const transport = useMemo(() => makeTransport(kind), [kind]);
  const initial = useMemo(() => loadMessages(id), [id]);
  const { messages, sendMessage, status, stop, error } = useChat({ id, messages: initial, transport, resume: true });
  const [input, setInput] = useState("");
  const busy = status === "submitted" || status === "streaming";

  useEffect(() => {
    if (status !== "streaming") saveMessages(id, messages);
  }, [id, messages, status]);

  const submit = (e) => {
    e.preventDefault();
    if (!input.trim() || busy) return;
    sendMessage({ text: input });
    setInput("");
  };
  const onStop = async () => {
    await stopAtRelay(kind, id);
    stop();
  };

  return (
    <main data-testid="chat" data-status={status}>
      {messages.map((m) => (
        <div key={m.id} className={`message ${m.role}`} data-testid="message" data-role={m.role}>
          {m.parts.map((part, i) => <Part key={i} part={part} />)}
        </div>
      ))}
      {error && <p className="error" data-testid="error">{error.message}</p>}
      <form onSubmit={submit}>
        <input aria-label="Message" value={input} onChange={(e) => setInput(e.target.value)} placeholder="Ask…" />
        {busy ? <button type="button" onClick={onStop}>Stop</button> : <button type="submit">Send</button>}
      </form>
    </main>
  );
}

export default function App() {
  const [kind, setKind] = useState(savedTransport);
  const [id, setId] = useState(chatId);
  const pick = (next) => {
    saveTransport(next);
    setKind(next);
  };
  return (
    <>
      <header>
        <h1>useChat on the chat relay</h1>
        <label>
          <input type="radio" name="transport" checked={kind === "http"} onChange={() => pick("http")} />HTTP
        </label>
        <label>
          <input type="radio" name="transport" checked={kind === "socket"} onChange={() => pick("socket")} />Socket.IO
        </label>
        {kind === "socket" && <ConnectionState />}
        <button type="button" onClick={() => setId(newChatId())}>New chat</button>
      </header>
      <Chat key={`${kind}:${id}`} id={id} kind={kind} />
    </>
  );
}
