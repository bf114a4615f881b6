"""Scale-out figures: streams held by one and by two relay instances behind nginx (with Redis), and what the shared
Redis log costs per piece against the in-memory one. Run by `make bench` after bench/run.py.

    .venv/bin/python -m bench.scale [--levels 50,100,150,200] [--quick] [--cost-only]

"Held" is as in docs/benchmarks.md: every stream complete, and text lag p99 within --margin ms of a direct
read of the upstream at the same N, measured in the same run. Nothing is pinned here: on a 2-core machine two
instances and the load side (upstream, load generator, nginx, redis-server) share both cores, which is the
honest setting for "two instances on this machine".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import (
    RESULTS,
    ROOT,
    Target,
    Upstream,
    machine_note,
    median_round,
    prompt,
    relay_env,
    run_streams,
    summarize,
)


def held(results: dict[int, dict[str, Any]], direct: dict[int, dict[str, Any]], margin: float) -> int:
    """The largest N at which every stream completed with lag p99 within `margin` ms of the direct read."""
    best = 0
    for n in sorted(results):
        s, d = results[n], direct.get(n)
        if "failed" in s or not d or "failed" in d or s["complete"] < s["streams"]:
            break
        if s["lag_p99_ms"] is None or d["lag_p99_ms"] is None or s["lag_p99_ms"] > d["lag_p99_ms"] + margin:
            break
        best = n
    return best


def paced(target: Target, upstream: Upstream, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from bench.loadgen import Job

    jobs = [Job(f"p{n}-{i}", prompt(args.chunks, args.delay), offset=args.ramp * i / n) for i in range(n)]
    try:
        return summarize(run_streams(target, upstream, jobs, args.client_procs, 90), args.chunks)
    except RuntimeError as err:
        return {"failed": str(err)}


def cluster_levels(count: int, upstream: Upstream, args: argparse.Namespace, workdir: Path) -> dict[int, Any]:
    from tests.cluster import Cluster
    from tests.conftest import free_port
    from tests.redis_server import RedisServer

    store = RedisServer(free_port(), workdir / f"redis-{count}.log").start()
    cluster = Cluster(store, relay_env(upstream), workdir / f"cluster-{count}", load_test=True)
    out: dict[int, Any] = {}
    try:
        cluster.start(count)
        target = Target(f"cluster-{count}", "sio", {"url": cluster.url}, None)
        run_streams(target, upstream, [_warm(i) for i in range(4)], 1, 30)
        for n in args.levels:
            out[n] = s = median_round([paced(target, upstream, n, args) for _ in range(args.rounds)])
            print(f"   {count} instance(s), N={n}: {_line(s)}", flush=True)
            if "failed" in s or s["complete"] < s["streams"]:
                break
    finally:
        cluster.stop()
        store.stop()
    return out


def redis_cost(upstream: Upstream, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Throughput on one pinned instance, without and with REDIS_URL: server CPU per piece for each."""
    from bench.loadgen import Job
    from bench.run import SERVER_CORE
    from tests.conftest import BIN, free_port, launch, stop_server
    from tests.redis_server import RedisServer

    store = RedisServer(free_port(), workdir / "redis-cost.log").start()
    out: dict[str, Any] = {}
    try:
        for label, extra in (("memory", {}), ("redis", {"REDIS_URL": store.url})):
            port = free_port()
            env = {**relay_env(upstream), **extra, "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": "gevent"}
            command = ["taskset", "-c", str(SERVER_CORE), str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
            server = launch(label, command, port, env, workdir / f"cost-{label}.log", timeout=60)
            try:
                target = Target(label, "sio", {"url": server.url}, server.process.pid)
                run_streams(target, upstream, [_warm(i) for i in range(4)], 1, 30)
                jobs = [Job(f"t{i}", prompt(args.tput_chunks, 0)) for i in range(args.tput_streams)]
                out[label] = s = summarize(run_streams(target, upstream, jobs, 1, 90), args.tput_chunks)
                print(f"   {label} log, throughput: {_line(s)}", flush=True)
                # One piece per event, where each piece is also one write to Redis.
                jobs = [Job(f"c{i}", prompt(args.chunks, args.delay), offset=args.ramp * i / 50) for i in range(50)]
                out[f"{label}/paced"] = s = summarize(run_streams(target, upstream, jobs, 1, 90), args.chunks)
                print(f"   {label} log, 50 paced streams: {_line(s)}", flush=True)
            finally:
                stop_server(server)
    finally:
        store.stop()
    return out


def _warm(i: int) -> Any:
    from bench.loadgen import Job

    return Job(f"w{i}", prompt(10, 0.005))


def _line(s: dict[str, Any]) -> str:
    if "failed" in s:
        return f"FAILED: {s['failed']}"
    return (f"{s['complete']}/{s['streams']} complete, lag p50/p99 {s['lag_p50_ms']}/{s['lag_p99_ms']} ms, "
            f"{s['pieces_per_s']} pieces/s, {s['pieces_per_event']} pieces/event, "
            f"server {s['server_cpu_cores']} cores ({s['server_us_per_piece']} us/piece)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="50,100,150,200,300,400,600")
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--ramp", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each level; the median is shown")
    parser.add_argument("--margin", type=float, default=25.0, help="ms over the direct read's lag p99 still 'held'")
    parser.add_argument("--tput-streams", type=int, default=20)
    parser.add_argument("--tput-chunks", type=int, default=2000)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cost-only", action="store_true", help="only what the Redis log costs per piece")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.chunks, args.tput_chunks, args.rounds = "20,40", 20, 200, 1
    args.levels = [int(x) for x in str(args.levels).split(",") if x.strip()]
    note = machine_note(False)
    print(f"# bench.scale {note['date']} {note['cpu']} nproc={note['nproc']}", flush=True)
    upstream = Upstream()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    if args.cost_only:
        try:
            cost = redis_cost(upstream, args, workdir)
        finally:
            upstream.stop()
        args.out.with_name("scale-cost.json").write_text(json.dumps(cost, indent=1) + "\n")
        return 0
    try:
        direct_target = Target("direct", "direct", {"url": upstream.url}, None)
        direct: dict[int, Any] = {}
        for n in args.levels:
            direct[n] = s = median_round([paced(direct_target, upstream, n, args) for _ in range(args.rounds)])
            print(f"   direct, N={n}: {_line(s)}", flush=True)
        one = cluster_levels(1, upstream, args, workdir)
        two = cluster_levels(2, upstream, args, workdir)
        cost = redis_cost(upstream, args, workdir)
    finally:
        upstream.stop()
    held_one, held_two = held(one, direct, args.margin), held(two, direct, args.margin)
    figures = {
        "held_by_1": held_one, "held_by_2": held_two,
        "ratio": None if not held_one else round(held_two / held_one, 2),
        "us_per_piece_memory": cost.get("memory", {}).get("server_us_per_piece"),
        "us_per_piece_redis": cost.get("redis", {}).get("server_us_per_piece"),
        "us_per_piece_memory_paced": cost.get("memory/paced", {}).get("server_us_per_piece"),
        "us_per_piece_redis_paced": cost.get("redis/paced", {}).get("server_us_per_piece"),
    }
    document = {"machine": note, "config": {k: v for k, v in vars(args).items() if k != "out"},
                "direct": direct, "one": one, "two": two, "cost": cost, "figures": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    print(f"\nStreams held (lag p99 within {args.margin:.0f} ms of the direct read, all complete): "
          f"1 instance {held_one}, 2 instances {held_two} ({figures['ratio']}x). "
          f"Server CPU per piece, in-memory log {figures['us_per_piece_memory']} us, "
          f"with the Redis log {figures['us_per_piece_redis']} us; one piece per event, "
          f"{figures['us_per_piece_memory_paced']} us and {figures['us_per_piece_redis_paced']} us.")
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"JSON: {shown}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    time.tzset()
    sys.exit(main())
