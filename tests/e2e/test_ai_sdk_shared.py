"""The AI SDK endpoint across instances (Redis): the real `ai` package resumes a chat's running reply on another
instance than the one producing it, and stops it from there, by its chat id; a caller with another access token
finds neither (docs/ai-sdk.md). One instance per async mode, sharing a redis-server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests import ai_sdk_client
from tests.ai_sdk_client import user
from tests.cluster import instance_per_mode
from tests.conftest import MODES, LiveServer, upstream_env
from tests.fake_upstream import FakeUpstream, controls

OWNER, OTHER = "token-of-the-owner", "token-of-someone-else"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def two_instances(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[list[LiveServer]]:
    ai_sdk_client.require_ai_package()
    env = {**upstream_env(fake_upstream), "RESUME_GRACE": "5", "RESUME_TTL": "30", "AUTH_TOKENS": f"{OWNER},{OTHER}"}
    with instance_per_mode(env, tmp_path_factory.mktemp("ai-sdk-cluster")) as servers:
        yield servers


def held(gate: str) -> list[dict]:
    return [user(controls(chunks=4, gate=gate, hold_after=2, heartbeat=0.3))]


@pytest.mark.parametrize("producing", [0, 1], ids=MODES)
def test_resume_on_another_instance(two_instances: list[LiveServer], fake_upstream: FakeUpstream, gate: str,
                                    producing: int) -> None:
    producer, other = two_instances[producing], two_instances[1 - producing]
    chat = f"shared-{gate}"
    sending = ai_sdk_client.start(f"{producer.url}/api/chat", "send", chat, held(gate), headers=bearer(OWNER))
    try:
        ai_sdk_client.connected(sending)
        stranger = ai_sdk_client.run(f"{other.url}/api/chat", "resume", chat, headers=bearer(OTHER))
        assert stranger["status"] == "no-stream"  # another caller's chat id finds nothing
        resuming = ai_sdk_client.start(f"{other.url}/api/chat", "resume", chat, headers=bearer(OWNER))
        ai_sdk_client.connected(resuming)
    finally:
        fake_upstream.open_gate(gate)
    sent, resumed = ai_sdk_client.finish(sending), ai_sdk_client.finish(resuming)
    assert resumed["message"] == sent["message"]
    assert resumed["message"]["parts"] == [{"type": "step-start"},
                                           {"type": "text", "text": "w0 w1 w2 w3 ", "state": "done"}]
    # ended: nothing to resume, on either instance
    for server in two_instances:
        assert ai_sdk_client.run(f"{server.url}/api/chat", "resume", chat, headers=bearer(OWNER))["status"] == \
            "no-stream"


def test_stop_from_another_instance(two_instances: list[LiveServer], fake_upstream: FakeUpstream, gate: str) -> None:
    producer, other = two_instances
    chat = f"stopped-{gate}"
    sending = ai_sdk_client.start(f"{producer.url}/api/chat", "send", chat, held(gate), headers=bearer(OWNER))
    try:
        ai_sdk_client.connected(sending)
        refused = requests.post(f"{other.url}/api/chat/{chat}/stop", headers=bearer(OTHER), timeout=10)
        assert refused.status_code == 400
        stopped = requests.post(f"{other.url}/api/chat/{chat}/stop", headers=bearer(OWNER), timeout=10)
        assert stopped.status_code == 200, stopped.text
        result = ai_sdk_client.finish(sending)
    finally:
        fake_upstream.open_gate(gate)
    assert result["chunks"][-1] == "abort"
    assert result["message"]["parts"][-1] == {"type": "text", "text": "w0 w1 ", "state": "streaming"}



def test_a_body_without_a_token_is_not_read(two_instances: list[LiveServer]) -> None:
    """MAX_UNAUTHENTICATED_BYTES holds at the AI SDK endpoint as at /message/stream: a request announcing 1 MB
    without a token gets 401 before a byte of its body, and its connection is closed (a server that waited for
    the body would answer nothing until REQUEST_BODY_TIMEOUT, then 408)."""
    for server in two_instances:
        url = urlsplit(server.url)
        head = (f"POST /api/chat HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000000\r\n\r\n")
        with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
            sock.sendall(head.encode())
            answer = b""
            while data := sock.recv(65536):  # the socket's timeout fails a server that waits for the body
                answer += data
        assert answer.startswith(b"HTTP/1.1 401") and b'"unauthorized"' in answer, answer[:300]
