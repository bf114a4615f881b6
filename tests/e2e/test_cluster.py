"""Scale-out, with real programs: two relay instances (gunicorn, gevent) on one redis-server, behind Debian's
nginx running deploy/nginx.conf. Streams through nginx are incremental on both transports; a stream resumes on
another instance with no gap and no repeat; the death of its instance is reported; Redis may come and go.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
import requests
import socketio

from app.serving import processes
from tests.clients import DONE, ERROR, SioProbe, chunks_through, ndjson_events, post_stream
from tests.cluster import Cluster, running_cluster
from tests.conftest import ROOT, free_port, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor
from tests.redis_server import RedisServer
from tests.waits import until

NDJSON = "application/x-ndjson"
GRACE, TTL = 3, 5


@pytest.fixture(scope="module")
def cluster(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[Cluster]:
    env = {**upstream_env(fake_upstream), "RESUME_GRACE": str(GRACE), "RESUME_TTL": str(TTL)}
    with running_cluster(env, tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


def words(count: int) -> list[str]:
    return [f"w{i} " for i in range(count)]


def held(gate: str, chunks: int = 10, hold_after: int = 4) -> str:
    return controls(chunks=chunks, gate=gate, hold_after=hold_after, heartbeat=0.3)


def store_of(cluster: Cluster) -> redis.Redis:
    return redis.Redis.from_url(cluster.redis.url)


def test_the_production_config_passes_nginx_t(cluster: Cluster) -> None:
    assert cluster.nginx is not None
    result = cluster.nginx.test_config()
    assert result.returncode == 0, result.stderr


def test_metrics_are_scraped_from_each_instance_never_through_nginx(cluster: Cluster) -> None:
    for path in ("/metrics", "/readyz"):
        through = requests.get(f"{cluster.url}{path}", timeout=10)
        assert through.status_code == 404 and "relay_" not in through.text, path
    for instance in cluster.instances:  # the scrape targets: the addresses of nginx's `server` lines
        direct = requests.get(f"{instance.url}/metrics", timeout=10)
        assert direct.status_code == 200 and "relay_streams_running" in direct.text
        assert requests.get(f"{instance.url}/readyz", timeout=10).json() == {"status": "ready"}


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
def test_socketio_through_nginx_is_incremental(cluster: Cluster, fake_upstream: FakeUpstream, gate: str,
                                               transports: list[str]) -> None:
    """Websocket-only (any instance), polling (sticky) and polling upgraded to a websocket (sticky)."""
    client = SioProbe(cluster.url, transports=transports)
    try:
        completed = fake_upstream.completed
        client.start({"prompt": held(gate), "stream_id": "inc"})
        client.wait_chunks("inc", 4)  # held by the gate: these passed nginx as they came
        assert fake_upstream.completed == completed
        fake_upstream.open_gate(gate)
        name, done = client.wait_terminal("inc")
        assert name == DONE
        check_cursor(client.chunks("inc"), words(10), done)
    finally:
        client.close()


def test_http_through_nginx_is_incremental(cluster: Cluster, fake_upstream: FakeUpstream, gate: str) -> None:
    completed = fake_upstream.completed
    with post_stream(cluster.url, {"prompt": held(gate)}, accept=NDJSON) as response:
        assert response.headers["X-Resume-Token"]
        events = ndjson_events(response)
        seen = chunks_through(events, 3)
        assert fake_upstream.completed == completed  # nginx did not buffer these
        fake_upstream.open_gate(gate)
        *rest, done = [*seen, *events]
    check_cursor([(c["seq"], c["text"]) for c in rest], words(10), done)


def test_a_dropped_client_resumes_on_another_instance(cluster: Cluster, fake_upstream: FakeUpstream,
                                                      gate: str) -> None:
    first = SioProbe(cluster.url)
    first.start({"prompt": held(gate), "stream_id": "moved"})
    token = first.tokens["moved"]
    first.wait_chunks("moved", 4)
    seen = first.chunks("moved")
    first.close()
    aborted = fake_upstream.aborted
    store = store_of(cluster)
    for _ in range(20):  # nginx balances websockets: reconnect until this one lands on the other instance
        again = SioProbe(cluster.url)
        assert again.resume("moved", seen[-1][0], token) == {"stream_id": "moved"}
        again.settle()
        if store.keys("relay:reader:*"):  # it reads the shared log: another instance than the producer
            break
        again.close()
    else:
        pytest.fail("no reconnect landed on the other instance")
    try:
        fake_upstream.open_gate(gate)
        name, done = again.wait_terminal("moved")
        again.settle()
        assert name == DONE and len(again.terminals("moved")) == 1
        check_cursor(seen + again.chunks("moved"), words(10), done)
        assert fake_upstream.aborted == aborted
    finally:
        again.close()


def test_http_resume_and_last_event_id_through_nginx(cluster: Cluster) -> None:
    response = post_stream(cluster.url, {"prompt": controls(chunks=60, delay=0.03), "stream_id": "h"}, accept=NDJSON)
    token = response.headers["X-Resume-Token"]
    events = ndjson_events(response)
    seen = chunks_through(events, 2)
    response.close()
    with requests.get(f"{cluster.url}/message/stream/h?after_seq={seen[-1]['seq']}", stream=True, timeout=20,
                      headers={"Accept": NDJSON, "X-Resume-Token": token}) as again:
        *rest, done = ndjson_events(again)
    check_cursor([(e["seq"], e["text"]) for e in seen + rest], words(60), done)
    with requests.get(f"{cluster.url}/message/stream/h", stream=True, timeout=20,
                      headers={"Accept": "text/event-stream", "Last-Event-ID": "57", "X-Resume-Token": token}) as sse:
        blocks = sse.text.strip().split("\n\n")
    assert [json.loads(b.split("data: ", 1)[1])["text"] for b in blocks[:-1]] in (["w58 w59 "], ["w58 ", "w59 "])


def test_a_finished_stream_replays_on_the_other_instance_until_its_ttl(cluster: Cluster) -> None:
    producer_side = SioProbe(cluster.url)
    try:
        producer_side.start({"prompt": controls(chunks=5), "stream_id": "old"})
        _, done = producer_side.wait_terminal("old")
        token = producer_side.tokens["old"]
    finally:
        producer_side.close()
    for instance in cluster.instances:  # straight to each: one has it in memory, the other reads Redis
        probe = SioProbe(instance.url)
        try:
            assert probe.resume("old", -1, token) == {"stream_id": "old"}
            assert probe.wait_terminal("old") == (DONE, done)
            check_cursor(probe.chunks("old"), words(5), done)
        finally:
            probe.close()
    store = store_of(cluster)
    assert 0 < store.pttl(f"relay:log:{_key_of(store)}") <= TTL * 1000


def _key_of(store: redis.Redis) -> str:
    keys = [k.decode().removeprefix("relay:log:") for k in store.keys("relay:log:*")]
    return max(keys, key=lambda k: store.pttl(f"relay:log:{k}"))


def test_nobody_resumes_within_the_grace_period(cluster: Cluster, fake_upstream: FakeUpstream) -> None:
    probe = SioProbe(cluster.url)
    probe.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "gone"})
    probe.wait_chunks("gone", 2)
    producer = cluster.producing()
    aborted = fake_upstream.aborted
    probe.close()
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=GRACE + 10)
    assert until(lambda: producer.streams() == 0, timeout=5)
    assert "cause=client_gone" in producer.log()


def test_kill_9_of_the_producing_instance_is_reported(cluster: Cluster, fake_upstream: FakeUpstream) -> None:
    client = SioProbe(cluster.url)
    client.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "doomed"})
    token = client.tokens["doomed"]
    client.wait_chunks("doomed", 5)
    producer = cluster.producing()
    cluster.kill(producer)
    client.wait(lambda p: not p.client.connected, timeout=10)
    seen = client.chunks("doomed")
    client.close()
    survivor = SioProbe(cluster.url)  # nginx sends it to the instance still alive
    try:
        assert survivor.resume("doomed", seen[-1][0], token) == {"stream_id": "doomed"}
        name, error = survivor.wait_terminal("doomed", timeout=20)
        survivor.settle()
        assert name == ERROR and error["code"] == "interrupted", error
        assert len(survivor.terminals("doomed")) == 1
        kept = seen + survivor.chunks("doomed")
        check_cursor(kept, words(1000))  # the text the dead instance had sent, none lost and none twice
    finally:
        survivor.close()
        cluster.revive(producer)


def test_the_ai_sdk_endpoint_through_nginx(cluster: Cluster, fake_upstream: FakeUpstream, gate: str) -> None:
    """The real `ai` package through deploy/nginx.conf: a chat's reply resumed by its chat id, then stopped."""
    from tests import ai_sdk_client

    api, chat = f"{cluster.url}/api/chat", f"nginx-{gate}"
    sending = ai_sdk_client.start(api, "send", chat, [ai_sdk_client.user(held(gate))])
    try:
        ai_sdk_client.connected(sending)
        resuming = ai_sdk_client.start(api, "resume", chat)
        ai_sdk_client.connected(resuming)
        assert requests.post(f"{api}/{chat}/stop", timeout=10).status_code == 200
        sent, resumed = ai_sdk_client.finish(sending), ai_sdk_client.finish(resuming)
    finally:
        fake_upstream.open_gate(gate)
    assert sent["chunks"][-1] == resumed["chunks"][-1] == "abort"
    assert sent["message"] == resumed["message"]
    assert sent["message"]["parts"][-1]["text"] == "".join(words(4))


def test_an_ai_sdk_reply_of_a_killed_instance_resumes_as_interrupted(cluster: Cluster) -> None:
    from tests import ai_sdk_client

    api, chat, store = f"{cluster.url}/api/chat", "doomed-chat", store_of(cluster)
    before = set(store.keys("relay:log:*"))
    sending = ai_sdk_client.start(api, "send", chat, [ai_sdk_client.user(controls(chunks=1000, delay=0.02))])
    ai_sdk_client.connected(sending)
    # Killed once its mirror has copied some text to Redis (pieces reach the client first: what the mirror had
    # not copied yet is lost with the instance; test_shared_log.py covers a kill before the first piece).
    assert until(lambda: any(store.xlen(key) >= 2 for key in set(store.keys("relay:log:*")) - before))
    producer = cluster.producing()
    cluster.kill(producer)
    try:
        cut = ai_sdk_client.finish(sending)  # its connection cut: no terminal chunk
        assert not {"finish", "error", "abort"} & set(cut["chunks"]), cut
        resumed = ai_sdk_client.run(api, "resume", chat)  # nginx sends it to the instance still alive
        assert resumed["chunks"][-1] == "error" and resumed["errors"][0].startswith("interrupted: "), resumed
        text = resumed["message"]["parts"][-1]["text"]
        assert text and "".join(words(1000)).startswith(text)  # what it had sent, from the start, none twice
    finally:
        cluster.revive(producer)


def test_redis_away_then_back(cluster: Cluster, fake_upstream: FakeUpstream, gate: str) -> None:
    cluster.redis.stop()
    try:
        probe = SioProbe(cluster.url)
        try:
            # Streams keep streaming on their own instance without Redis.
            probe.start({"prompt": held(gate), "stream_id": "local"})
            probe.wait_chunks("local", 4)
            producer = cluster.producing()
            other = next(i for i in cluster.instances if i is not producer)
            elsewhere = SioProbe(other.url)
            try:  # but resuming it on another instance cannot work yet, and says so
                refused = elsewhere.resume("local", 3, probe.tokens["local"])
                assert refused["error"]["code"] == "resume_unavailable" and refused["error"]["retry_after"] >= 1
            finally:
                elsewhere.close()
            fake_upstream.open_gate(gate)
            name, done = probe.wait_terminal("local")
            assert name == DONE
            check_cursor(probe.chunks("local"), words(10), done)
        finally:
            probe.close()
    finally:
        cluster.redis.start()  # empty: it kept nothing on disk
    # Back, with no restart of the relay: the mirror writes the stream again, and it resumes elsewhere.
    elsewhere = SioProbe(other.url)
    try:
        deadline = time.monotonic() + 15
        while "error" in elsewhere.resume("local", -1, probe.tokens["local"]):  # the server's answer is the event
            assert time.monotonic() < deadline, "the stream never became resumable again"
            time.sleep(0.1)
        assert elsewhere.wait_terminal("local") == (DONE, done)
        check_cursor(elsewhere.chunks("local"), words(10), done)
    finally:
        elsewhere.close()
    assert cluster.healthy()


def test_a_client_over_the_message_queue_is_not_needed_for_streams(cluster: Cluster) -> None:
    """Flask-SocketIO's message queue is on Redis: an emit from a process with no clients reaches them."""
    probe = SioProbe(cluster.url)
    try:
        got: list = []
        probe.client.on("announcement", lambda data: got.append(data))
        manager = socketio.RedisManager(cluster.redis.url, write_only=True)
        manager.emit("announcement", {"text": "hello"}, namespace="/")
        probe.wait(lambda p: bool(got), timeout=10)
        assert got == [{"text": "hello"}]
    finally:
        probe.close()


def test_make_instances_starts_them_all_and_ctrl_c_stops_them(fake_upstream: FakeUpstream, redis_server: RedisServer,
                                                               tmp_path) -> None:
    base = free_port()
    while any(processes.port_problem("127.0.0.1", base + i) for i in range(2)):
        base = free_port()
    env = {**os.environ, **upstream_env(fake_upstream), "PORT": str(base), "REDIS_URL": redis_server.url,
           "RUN_DIR": str(tmp_path)}
    launcher = subprocess.Popen([sys.executable, "-m", "app.serving.instances", "2"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        while not any(line.startswith("upstream servers") for line in lines):
            line = launcher.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        for port in (base, base + 1):
            probe = SioProbe(f"http://127.0.0.1:{port}")
            try:
                probe.start({"prompt": controls(chunks=3), "stream_id": "one"})
                assert probe.wait_terminal("one")[0] == DONE
            finally:
                probe.close()
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(60) == 0
        for port in (base, base + 1):  # nothing is left listening
            assert processes.port_problem("127.0.0.1", port) is None
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)

