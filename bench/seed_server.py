"""The seed design, re-created as the BASELINE the relay is measured against. Not production code.

The two blog posts the project grew from, as they wrote it:

- Socket.IO (post 003): the `chatgpt_description` event handler itself loops over the OpenAI stream and
  calls `emit()` for each chunk. It starts no background task and never yields on purpose (no
  `socketio.sleep(0)`), so other greenlets, each connection's websocket writer among them, run only when
  this loop happens to block on the upstream socket.
- HTTP (post 000): `POST /message/stream` returns a generator that yields each chunk as a line of plain
  text, `\\n` inside the text written as `<br />`, read by the page's `streamPost`.

No validation, no cancellation, no error events, no timeouts: it exists only so that `python -m bench.run`
can show, in the same run on the same machine, what the relay improves.

Run (from the repository root), as the benchmark does:

    OPENAI_BASE_URL=... OPENAI_API_KEY=... OPENAI_MODEL=... \\
        gunicorn -c bench/seed_gunicorn.conf.py -b 127.0.0.1:8001 bench.seed_server:app

(`-c bench/seed_gunicorn.conf.py` is `-k gevent -w 1` plus the relay's worker_connections; without
a `-c`, gunicorn would read the relay's own ./gunicorn.conf.py.) gunicorn's gevent worker has
monkey-patched the standard library before this module is imported.
"""

import os

from flask import Flask, jsonify, request
from flask_socketio import SocketIO, emit
from openai import OpenAI

app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent")

# One client for the process, like the relay's, so the comparison is about the streaming loop and
# not about building an HTTP client per request.
client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY"), base_url=os.environ.get("OPENAI_BASE_URL"))
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


@app.get("/healthz")
def healthz():
    return jsonify({"ok": True})


@socketio.on("chatgpt_description")
def chatgpt_description(data):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": data["prompt"]}],
        stream=True,
    )
    i = 0
    for chunk in stream:
        text = chunk.choices[0].delta.content if chunk.choices else None
        if text:
            emit("chatgpt_description_chunk", (text, {"stream_id": data["stream_id"], "seq": i}))
            i += 1
    emit("chatgpt_description_done", {"stream_id": data["stream_id"]})


@app.route("/message/stream", methods=["POST"])
def chatgpt_message_stream():
    j = request.get_json()

    def generate():
        for resp in client.chat.completions.create(
            model=MODEL,
            messages=[dict(role="user", content=j["prompt"])],
            stream=True,
        ):
            r = resp.choices[0] if resp.choices else None
            if r is None or not r.delta.content:
                continue
            if r.finish_reason == "stop":
                break
            chunk = r.delta.content
            chunk = chunk.replace("\n", "<br />")
            yield f"{chunk}\n"

    return generate(), {"Content-Type": "text/plain"}
