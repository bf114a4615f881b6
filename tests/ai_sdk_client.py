"""The real `ai` package as a client of the relay's AI SDK endpoint: frontend/test/live/aiSdkClient.mjs run by Node.

Its DefaultChatTransport sends the chat (or reconnects to it) and its readUIMessageStream builds the UI message,
as useChat does; the script prints the outcome as one JSON line, which these helpers read back.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import ROOT

FRONTEND = ROOT / "frontend"
SCRIPT = FRONTEND / "test" / "live" / "aiSdkClient.mjs"
BACKEND = FRONTEND / "test" / "live" / "aiSdkBackend.mjs"
NODE = shutil.which("node") or "/usr/bin/node"


def require_ai_package() -> None:
    """Skip without Node or the `ai` package locally, but fail in CI, which installs both."""
    missing = None
    if not os.path.exists(NODE):
        missing = "node is missing (apt-get install -y nodejs)"
    elif not (FRONTEND / "node_modules" / "ai" / "package.json").is_file():
        missing = "frontend/node_modules has no `ai` package: run `npm ci` in frontend/"
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


def start(api: str, action: str, chat_id: str, messages: list[dict] | None = None,
          body: dict | None = None, headers: dict | None = None) -> subprocess.Popen:
    """Run the client in the background: `send` the chat's messages, or `resume` the chat's stream."""
    require_ai_package()
    argument = json.dumps({"action": action, "chatId": chat_id, "messages": messages or [], "body": body,
                           "headers": headers})
    return subprocess.Popen([NODE, str(SCRIPT), api, argument], cwd=FRONTEND, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def connected(process: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until the client has its response: the relay has started (or found) the chat's stream."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    assert json.loads(line or "{}").get("connected"), f"the AI SDK client got no stream: {line}"


def finish(process: subprocess.Popen, timeout: float = 30) -> dict[str, Any]:
    """What the client got: {status: ok | no-stream | refused, message, chunks (their types), errors}."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the AI SDK client did not finish: {out} {err}") from None
    assert process.returncode == 0 and out.strip(), f"the AI SDK client failed ({process.returncode}): {err}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run(api: str, action: str, chat_id: str, messages: list[dict] | None = None, **options: Any) -> dict[str, Any]:
    return finish(start(api, action, chat_id, messages, **options))


def reference(base_url: str, api_key: str, model: str, messages: list[dict],
              tools: list[dict] | None = None) -> dict[str, Any]:
    """What an AI SDK backend (streamText with the OpenAI-compatible provider on the same upstream) gives for
    these UI messages: {message, chunks}, as `finish` gives them."""
    require_ai_package()
    argument = json.dumps({"baseURL": base_url, "model": model, "messages": messages, "tools": tools or []})
    done = subprocess.run([NODE, str(BACKEND), argument], cwd=FRONTEND, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "UPSTREAM_API_KEY": api_key})
    assert done.returncode == 0 and done.stdout.strip(), f"the AI SDK backend failed: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def user(text: str, message_id: str = "u1") -> dict[str, Any]:
    """A user's UI message with one text part, as useChat's sendMessage({text}) makes it."""
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}
