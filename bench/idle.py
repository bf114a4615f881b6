"""Benchmark: what an idle Socket.IO connection costs the server in memory, in each async mode.

    .venv/bin/python -m bench.idle [--levels 250,500,1000,1900] [--modes gevent,eventlet]

Starts the relay as the tests start it (gunicorn's gevent worker; `python -m app` for eventlet), opens
connected websocket Socket.IO clients that never start a stream, up to each level in turn, and reads the
resident memory (RSS, from /proc) of the process that serves them: gunicorn's worker, or eventlet's
process. A level counts once /healthz counts every connection. The cost of a connection is the growth
over the baseline, taken after a warm-up of a few connections opened and closed, divided by the number open.

Prints one table per mode and writes bench/results/idle.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

_CONNECT_CONCURRENCY = 25
_WARMUP = 20


def serving_pid(pid: int) -> int:
    """The process that holds the connections: gunicorn's one worker (the master's child), else `pid` itself."""
    children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()]
    return children[0] if children else pid


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_connections(url: str) -> int:
    return int(requests.get(f"{url}/healthz", timeout=10).json()["connections"])


def wait_for_count(url: str, count: int, timeout: float = 60) -> None:
    """Poll /healthz until the server counts `count` connections: the server has no event to wait on."""
    deadline = time.monotonic() + timeout
    while (seen := open_connections(url)) != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server counts {seen} connections, expected {count}")
        time.sleep(0.1)


async def connect_clients(url: str, count: int) -> list[Any]:
    """`count` connected python-socketio clients over websocket, a browser tab each, idle."""
    import socketio

    sem = asyncio.Semaphore(_CONNECT_CONCURRENCY)

    async def one() -> Any:
        client = socketio.AsyncClient(reconnection=False)
        async with sem:
            await client.connect(url, transports=["websocket"], wait_timeout=30)
        return client

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_clients(clients: list[Any]) -> None:
    await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)


async def measure(url: str, pid: int, levels: list[int]) -> dict[str, Any]:
    """RSS at the baseline and at each level, and the cost per connection."""
    await close_clients(await connect_clients(url, _WARMUP))  # first-use allocations, not counted
    await asyncio.to_thread(wait_for_count, url, 0)
    baseline = rss_kib(pid)
    clients: list[Any] = []
    rows = []
    for level in levels:
        clients += await connect_clients(url, level - len(clients))
        await asyncio.to_thread(wait_for_count, url, level)
        rss = rss_kib(pid)
        rows.append({"connections": level, "rss_mib": round(rss / 1024, 1),
                     "growth_mib": round((rss - baseline) / 1024, 1),
                     "kib_per_connection": round((rss - baseline) / level, 1)})
        print(f"  {level:>5} idle connections: RSS {rss / 1024:7.1f} MiB, +{(rss - baseline) / 1024:6.1f} MiB, "
              f"{(rss - baseline) / level:5.1f} KiB each", flush=True)
    await close_clients(clients)
    await asyncio.to_thread(wait_for_count, url, 0)
    return {"baseline_rss_mib": round(baseline / 1024, 1), "levels": rows,
            "rss_after_close_mib": round(rss_kib(pid) / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="250,500,1000,1900",
                        help="idle connections to hold, rising, comma-separated; at most 1990 (worker_connections)")
    parser.add_argument("--modes", default="gevent,eventlet")
    parser.add_argument("--out", type=Path, default=RESULTS / "idle.json")
    args = parser.parse_args(argv)
    levels = sorted(int(x) for x in args.levels.split(",") if x.strip())

    from tests.conftest import start_server, stop_server, upstream_env
    from tests.fake_upstream import FakeUpstream

    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "levels": levels, "modes": {}}
    with FakeUpstream() as fake:  # never called: the server only needs an upstream to start
        env = {**upstream_env(fake), "MAX_CONNECTIONS_PER_CLIENT": str(max(levels) + _WARMUP)}
        for mode in args.modes.split(","):
            server = start_server(mode, env, RESULTS / f"server-idle-{mode}.log")
            try:
                print(f"{mode}:", flush=True)
                results["modes"][mode] = asyncio.run(measure(server.url, serving_pid(server.process.pid), levels))
            finally:
                stop_server(server)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"JSON: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
