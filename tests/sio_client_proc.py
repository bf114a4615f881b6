"""A Socket.IO client in its own process, for tests that freeze it (SIGSTOP) to vanish without a TCP close.

Usage: python -m tests.sio_client_proc URL PROMPT. Prints `streaming` once the first chunk has arrived.
"""

from __future__ import annotations

import sys
import threading

import socketio


def main() -> None:
    url, prompt = sys.argv[1], sys.argv[2]
    first = threading.Event()
    client = socketio.Client(reconnection=False)
    client.on("chatgpt_description_chunk", lambda text, meta: first.set())
    client.connect(url, transports=["websocket"], wait_timeout=10)
    client.call("chatgpt_description", {"prompt": prompt, "stream_id": "frozen"}, timeout=10)
    first.wait(10)
    print("streaming", flush=True)
    client.wait()


if __name__ == "__main__":
    main()
