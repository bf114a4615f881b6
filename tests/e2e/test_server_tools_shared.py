"""Server-side tools through Redis (issue 18): a stream whose tools ran on one instance is replayed, tool results
and all, by another instance sharing its redis-server (the tool app of tests/tool_app.py, one per async mode)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.clients import ndjson_events
from tests.conftest import BIN, MODES, LiveServer, free_port, launch, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream
from tests.live.test_server_tools import ADD, ECHO, parts_of, request_of, run
from tests.redis_server import RedisServer, require_redis


@pytest.fixture(scope="module")
def two_tool_apps(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    require_redis()
    workdir = tmp_path_factory.mktemp("tools-cluster")
    store = RedisServer(free_port(), workdir / "redis.log").start()
    servers: list[LiveServer] = []
    try:
        for mode in MODES:
            port = free_port()
            env = {**upstream_env(fake_upstream), "REDIS_URL": store.url, "RESUME_GRACE": "5", "RESUME_TTL": "30",
                   "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode}
            command = ([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "tests.tool_app:create_app()"]
                       if mode == "gevent" else [sys.executable, "-m", "tests.tool_app"])
            servers.append(launch(f"tools-{mode}", command, port, env, workdir / f"{mode}.log"))
        yield servers
    finally:
        for server in servers:
            stop_server(server)
        store.stop()


@pytest.mark.parametrize("producing", [0, 1], ids=MODES)
def test_another_instance_replays_the_tool_results(two_tool_apps: list[LiveServer], producing: int) -> None:
    producer, other = two_tool_apps[producing], two_tool_apps[1 - producing]
    tag = uuid.uuid4().hex
    parts, done, seen = run(producer, "http", request_of([ADD, ECHO], tag))
    assert [part["type"] for part in parts] == ["text", "tool_call", "tool_result", "text"]
    with requests.get(f"{other.url}/message/stream/s-{tag}", params={"after_seq": 2}, stream=True, timeout=20,
                      headers={"Accept": "application/x-ndjson", "X-Resume-Token": seen["token"]}) as response:
        assert response.status_code == 200, response.text
        events = list(ndjson_events(response))
    replayed = parts_of([(e["text"], e["seq"], e.get("parts")) for e in events if e["type"] == "chunk"])
    assert replayed == parts[2:]  # the result (seq 3) and the text after it, exactly
    assert events[-1] == {"type": "done", **{k: v for k, v in done.items() if k != "type"}}
