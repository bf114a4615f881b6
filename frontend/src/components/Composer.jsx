import { useRef, useState } from "react";
import { IMAGE_TYPES, imageProblem, imagesFromClipboard, readAsDataUrl } from "../images.js";

/**
 * The prompt box: Enter sends, Shift+Enter starts a new line, Esc stops the running reply. Images are attached
 * with the button or pasted into the box, shown until sent (each can be removed), and sent with the prompt.
 * While `locked` (the server wants a token first) the prompt can be written but not sent.
 */
export function Composer({ busy, locked = false, onSend, onStop }) {
  const [prompt, setPrompt] = useState("");
  const [images, setImages] = useState([]); // [{name, url}]
  const [problem, setProblem] = useState(null);
  const picker = useRef(null);
  const ready = prompt.trim() || images.length > 0;

  function submit() {
    if (busy || locked || !ready) return;
    onSend(prompt, images.map((image) => image.url));
    setPrompt("");
    setImages([]);
    setProblem(null);
  }

  async function attach(files) {
    let count = images.length;
    const added = [];
    let refused = null;
    for (const file of files) {
      const why = imageProblem(file, count);
      if (why) {
        refused ??= why;
        continue;
      }
      count += 1;
      added.push({ name: file.name || "pasted image", url: await readAsDataUrl(file) });
    }
    setProblem(refused);
    if (added.length) setImages((before) => [...before, ...added]);
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

  function onPaste(event) {
    const files = imagesFromClipboard(event.clipboardData);
    if (files.length === 0) return; // text: pasted as usual
    event.preventDefault();
    attach(files);
  }

  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        submit();
      }}
    >
      {images.length || problem ? (
        <div className="attachments">
          {images.map((image, index) => (
            <figure key={`${index}-${image.name}`} className="attachment" data-testid="attachment">
              <img src={image.url} alt={image.name} />
              <button
                type="button"
                aria-label={`Remove ${image.name}`}
                onClick={() => setImages((before) => before.filter((_, at) => at !== index))}
              >
                ×
              </button>
            </figure>
          ))}
          {problem ? <p className="note error" role="alert" data-testid="attach-problem">{problem}</p> : null}
        </div>
      ) : null}
      <div className="composer-row">
        <label htmlFor="prompt" className="visually-hidden">Message</label>
        <textarea
          id="prompt"
          value={prompt}
          rows={3}
          placeholder="Ask something…  (Enter to send, Shift+Enter for a new line, Esc to stop; paste an image to attach it)"
          onChange={(event) => setPrompt(event.target.value)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
        />
        <input
          ref={picker}
          type="file"
          accept={IMAGE_TYPES.join(",")}
          multiple
          hidden
          aria-label="Image file"
          onChange={(event) => {
            attach(Array.from(event.target.files ?? []));
            event.target.value = ""; // the same file can be picked again
          }}
        />
        <button type="button" className="attach" onClick={() => picker.current?.click()} disabled={locked}>
          Attach image
        </button>
        {busy ? (
          <button type="button" className="stop" onClick={onStop}>Stop</button>
        ) : (
          <button type="submit" disabled={locked || !ready}>Send</button>
        )}
      </div>
    </form>
  );
}
