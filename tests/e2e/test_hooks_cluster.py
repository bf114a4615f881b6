"""The team's hooks across two instances on one Redis (tests/hooks_app.py, gevent): a token budget holds exactly
under a burst spread over both, and on_finish runs once, on the producing instance, after a resume elsewhere."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.clients import DONE, SioProbe
from tests.conftest import LiveServer, free_port, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.live.test_hooks import HookLog, start_hooks_app
from tests.outcomes import Outcome, check_cursor, run_http
from tests.redis_server import RedisServer
from tests.waits import until

CHUNKS = 5  # each reply's completion tokens, as the fake counts them
REPLIES = 5  # the budget allows this many replies' usage
BURST = 12


@dataclass
class Pair:
    instances: list[LiveServer]
    hook_log: HookLog
    store: redis.Redis
    budget: int


def usage_of(user: str, prompt: str) -> int:
    """What the fake reports for one reply (tests/fake_upstream.py): prompt characters // 4, plus a token a piece;
    the prompt is the hook's system message and the user's."""
    return (len(f"You help {user}.") + len(prompt)) // 4 + CHUNKS


def prompt_for(user: str) -> str:
    """A prompt whose conversation (with the hook's system message) is a whole number of 4 characters, so the
    relay's estimate (characters / 4, rounded up, plus max_tokens) is exactly the fake's usage."""
    for fill in range(4):
        prompt = controls(chunks=CHUNKS, fill="x" * fill)
        if (len(f"You help {user}.") + len(prompt)) % 4 == 0:
            return prompt
    raise AssertionError("unreachable")


BUDGET_USER = "burst-user"


@pytest.fixture(scope="module")
def pair(fake_upstream: FakeUpstream, redis_server: RedisServer,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir: Path = tmp_path_factory.mktemp("hooks-cluster")
    budget = REPLIES * usage_of(BUDGET_USER, prompt_for(BUDGET_USER))
    env = {**upstream_env(fake_upstream), "REDIS_URL": redis_server.url, "SECRET_KEY": "the-same-on-both",
           "BUDGET_TOKENS": str(budget), "RESUME_GRACE": "5"}
    store = redis.Redis.from_url(redis_server.url)
    for key in store.scan_iter("relay:budget:*"):
        store.delete(key)
    instances: list[LiveServer] = []
    try:
        for _ in range(2):
            instances.append(start_hooks_app("gevent", env, workdir, port=free_port()))
        yield Pair(instances, HookLog(workdir / "hooks.jsonl"), store, budget)
    finally:
        for server in instances:
            stop_server(server)


def test_a_budget_holds_exactly_under_a_burst_across_two_instances(pair: Pair) -> None:
    prompt = prompt_for(BUDGET_USER)
    barrier = threading.Barrier(BURST)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        server = pair.instances[index % 2]  # half on each instance
        barrier.wait(timeout=20)
        outcome = run_http(server.url, {"prompt": prompt, "max_tokens": CHUNKS, "stream_id": f"b{index}"},
                           headers={"X-User": BUDGET_USER})
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done = [o for o in outcomes if o.terminal["type"] == "done"]
    refused = [o for o in outcomes if o.terminal["type"] == "error"]
    assert len(outcomes) == BURST and len(done) == REPLIES, [o.terminal for o in outcomes]
    assert all(o.text == "".join(f"w{i} " for i in range(CHUNKS)) for o in done)
    assert all(o.status == 429 and o.terminal["code"] == "budget_exceeded" and o.terminal["retry_after"] >= 1
               and o.headers["Retry-After"] == str(o.terminal["retry_after"]) for o in refused)
    assert sum(o.terminal["usage"]["total_tokens"] for o in done) == pair.budget  # each its estimate, exactly
    # Settled to the reported usage, in Redis, for every instance: all of the budget, and nothing more.
    user_keys = f"relay:budget:{hashlib.sha256(BUDGET_USER.encode()).hexdigest()[:32]}:*"
    assert until(lambda: [int(pair.store.get(key) or 0) for key in pair.store.scan_iter(user_keys)] == [pair.budget])
    later = run_http(pair.instances[0].url, {"prompt": prompt, "max_tokens": CHUNKS, "stream_id": "after"},
                     headers={"X-User": BUDGET_USER})
    assert later.terminal["code"] == "budget_exceeded"
    probe = SioProbe(pair.instances[1].url, auth={"user": BUDGET_USER})
    try:
        ack = probe.start({"prompt": prompt, "max_tokens": CHUNKS, "stream_id": "after-sio"})
    finally:
        probe.close()
    assert ack["error"]["code"] == "budget_exceeded" and ack["error"]["retry_after"] >= 1
    someone_else = run_http(pair.instances[1].url, {"prompt": controls(chunks=2), "max_tokens": 2,
                                                    "stream_id": "other"}, headers={"X-User": "someone-else"})
    assert someone_else.terminal["type"] == "done"


def test_on_finish_runs_once_on_the_producing_instance_after_a_resume_elsewhere(pair: Pair, gate: str,
                                                                               fake_upstream: FakeUpstream) -> None:
    producer, other = pair.instances
    who, stream_id = f"mover-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    first = SioProbe(producer.url, auth={"user": who})
    first.start({"prompt": controls(chunks=10, gate=gate, hold_after=4, heartbeat=0.3), "stream_id": stream_id,
                 "max_tokens": 10})
    token = first.tokens[stream_id]
    first.wait_chunks(stream_id, 4)
    seen = first.chunks(stream_id)
    first.close()
    again = SioProbe(other.url, auth={"user": who})
    try:
        assert again.resume(stream_id, seen[-1][0], token) == {"stream_id": stream_id}
        fake_upstream.open_gate(gate)
        name, done = again.wait_terminal(stream_id)
        assert name == DONE
        check_cursor(seen + again.chunks(stream_id), [f"w{i} " for i in range(10)], done)
    finally:
        again.close()
    record = pair.hook_log.wait_for(stream_id)
    assert until(lambda: producer.streams() == 0 and other.streams() == 0)
    assert pair.hook_log.lines(stream_id) == [record]  # once, and on the instance that produced it
    assert record["port"] == producer.url.rsplit(":", 1)[1] and record["user"] == who
    assert record["text"] == "".join(f"w{i} " for i in range(10)) and record["finish_reason"] == "stop"
    assert json.dumps(record["usage"]) == json.dumps(done["usage"])
    assert math.isfinite(record["duration"])
