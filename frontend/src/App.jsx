import { useEffect, useState } from "react";
import { Composer } from "./components/Composer.jsx";
import { ConnectionStatus } from "./components/ConnectionStatus.jsx";
import { Conversation } from "./components/Conversation.jsx";
import { NewChat } from "./components/NewChat.jsx";
import { ChatOptions } from "./components/ChatOptions.jsx";
import { TokenForm } from "./components/TokenForm.jsx";
import { describeError } from "./errors.js";
import { fetchModels } from "./models.js";
import { loadTransport, saveTransport } from "./transportChoice.js";
import { useChatStream } from "./useChatStream.js";

export default function App() {
  const { connection, messages, active, access, refusal, send, stop, newChat, submitToken } = useChatStream();
  const [models, setModels] = useState([]);
  const [model, setModel] = useState(null);
  const [transport, setTransport] = useState(loadTransport); // the toggle as the user left it, across reloads

  useEffect(() => saveTransport(transport), [transport]);

  useEffect(() => {
    let live = true;
    fetchModels().then((found) => {
      if (!live) return;
      setModels(found.models);
      setModel(found.default);
    });
    return () => {
      live = false;
    };
  }, []);

  const busy = active !== null;
  return (
    <div className="page">
      <header>
        <h1>Chat relay</h1>
        <div className="header-end">
          <NewChat onClick={newChat} disabled={messages.length === 0} busy={busy} />
          <ConnectionStatus connection={connection} />
        </div>
      </header>
      <ChatOptions
        models={models}
        model={model}
        onModel={setModel}
        transport={transport}
        onTransport={setTransport}
        disabled={busy}
      />
      {access ? <TokenForm error={access.error} checking={access.checking} onSubmit={submitToken} /> : null}
      {refusal ? (
        <p className="refusal error" role="alert" data-testid="refusal" data-code={refusal.code}>
          <strong>{describeError(refusal.code)}</strong> {refusal.message}
        </p>
      ) : null}
      <main>
        <Conversation messages={messages} active={active} />
      </main>
      <Composer
        busy={busy}
        locked={access !== null}
        onSend={(prompt) => send(prompt, { transport, model })}
        onStop={stop}
      />
    </div>
  );
}
