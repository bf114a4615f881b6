"""Typed parts through Redis (issue 17): a stream produced on one instance, resumed on another (one instance per
async mode, sharing a redis-server) from a seq in the middle of each kind, over Socket.IO, NDJSON and SSE,
continues exactly, and replays there after its end (tests/parts_script.py has the script)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.cluster import instance_per_mode
from tests.conftest import LiveServer, upstream_env
from tests.fake_upstream import FakeUpstream
from tests.parts_script import NDJSON, check_exact, held_stream, read_ndjson, resume_everywhere


@pytest.fixture(scope="module")
def two_instances(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[list[LiveServer]]:
    """Two instances sharing one redis-server, one per async mode."""
    env = {**upstream_env(fake_upstream), "RESUME_GRACE": "5", "RESUME_TTL": "30"}
    with instance_per_mode(env, tmp_path_factory.mktemp("parts-cluster")) as servers:
        yield servers


def test_resume_mid_kind_on_another_instance(two_instances: list[LiveServer], fake_upstream: FakeUpstream,
                                             gate: str) -> None:
    producer, other = two_instances
    first, token = held_stream(producer, gate, "moved")
    try:
        resume_everywhere(fake_upstream, gate, "moved", token, [other])
    finally:
        first.close()
    # and after its end, replayed from there
    with requests.get(f"{other.url}/message/stream/moved?after_seq=4", headers={"Accept": NDJSON,
                                                                                   "X-Resume-Token": token},
                      stream=True, timeout=20) as response:
        check_exact(*read_ndjson(response), after=4)
