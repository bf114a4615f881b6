"""Benchmark: the relay (gevent and eventlet, Socket.IO and HTTP) against the seed design and a direct read
of the upstream, side by side in one run.

    .venv/bin/python -m bench.run            # everything, about 14 minutes: the first part of `make bench`
    .venv/bin/python -m bench.run --quick    # a smoke run with small levels, about 2 minutes

The server under test is pinned to one core (taskset), and everything else, the upstream
(bench/upstream.py), the load generator (bench/loadgen.py) and this orchestrator, to the other, so the
load side's CPU is its own and shown beside the server's. Servers run one after another:

- `direct`: no server; the load generator reads the upstream itself. This is the limit: the lag and
  throughput the load side alone allows.
- `relay-gevent` (gunicorn -c gunicorn.conf.py) and `relay-eventlet` (python -m app), as users start them.
- `seed`: the design the relay replaced (bench/seed_server.py), on gunicorn's gevent worker.

Against each, for Socket.IO (`sio`) and HTTP (`http`: the relay's NDJSON, the seed's text lines):

- paced: for each N in --levels, N streams of --chunks pieces, one every --delay s, starts spread over
  --ramp s. Text lag (upstream send to client arrival, per piece), first piece, gaps between events, pieces/s.
  Each level runs --rounds times; the round with the median lag p99 is shown.
- throughput: --tput-streams streams of --tput-chunks pieces, no pacing.
- N=1 overhead: --single sequential single streams: time to first piece, against the direct read.
And for the relays: a cancel storm (--storm streams all stopped after a few pieces: how fast the
upstream connections close) and memory (RSS per idle connection and per active stream).

Writes bench/results/latest.json and the plots in docs/benchmarks/, and prints the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "docs" / "benchmarks"
SERVER_CORE, LOAD_CORE = 0, 1
API_KEY = "sk-bench-not-a-secret"

SERVERS = ["direct", "relay-gevent", "relay-eventlet", "seed"]
RELAYS = ["relay-gevent", "relay-eventlet"]


# ---------------------------------------------------------------------------------------------
# Processes: the upstream, the servers, and their CPU and memory


class Upstream:
    """bench/upstream.py in its own process; `counters()` asks it for its counts and CPU."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.upstream"], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("ready "):
            raise RuntimeError(f"the bench upstream did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def counters(self) -> dict[str, Any]:
        self.process.stdin.write("?\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def relay_env(upstream: Upstream) -> dict[str, str]:
    """Settings a load test needs: every limit out of the way (one address opens all the streams)."""
    return {
        "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": upstream.url, "OPENAI_MODEL": "bench",
        "UPSTREAM_READ_TIMEOUT": "60", "UPSTREAM_MAX_RETRIES": "0",
        "RATE_LIMIT": "", "MAX_STREAMS_PER_CLIENT": "100000", "MAX_STREAMS_TOTAL": "100000",
        "MAX_CONNECTIONS_PER_CLIENT": "100000",
    }


def start_server(name: str, upstream: Upstream, pin: bool, extra: dict[str, str] | None = None) -> Any:
    """A server as users start it, on the server core; `extra` settings on top of relay_env's."""
    from tests.conftest import BIN, free_port, launch, server_command

    port = free_port()
    env = {**relay_env(upstream), "HOST": "127.0.0.1", "PORT": str(port), **(extra or {})}
    if name == "seed":
        command = [str(BIN / "gunicorn"), "-c", "bench/seed_gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                   "bench.seed_server:app"]
    else:
        mode = name.removeprefix("relay-")
        env["ASYNC_MODE"] = mode
        command = server_command(mode)
    if pin:
        command = ["taskset", "-c", str(SERVER_CORE), *command]
    return launch(name, command, port, env, RESULTS / f"server-{name}.log", timeout=60)


def worker_pid(pid: int) -> int:
    """gunicorn's worker (the master's one child), or the process itself (eventlet's server)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            pass
    return total


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def streams_running(url: str) -> int:
    import requests

    return int(requests.get(f"{url}/healthz", timeout=10).json().get("streams", 0))


def settle(target: Target, timeout: float = 30) -> None:
    """Start each measurement from rest: no stream left from the last one, and the server's CPU idle.

    Streams that a client gave up on keep their producer for RESUME_GRACE, and a server still busy with the
    last level would be charged to the next one.
    """
    if target.pid is None:
        return
    deadline = time.monotonic() + timeout
    while streams_running(target.spec["url"]) and time.monotonic() < deadline:
        time.sleep(0.1)  # another process's state: poll it
    while time.monotonic() < deadline:
        cpu0 = tree_cpu_seconds(target.pid)
        time.sleep(0.25)
        if tree_cpu_seconds(target.pid) - cpu0 < 0.01:  # under 4% of a core: at rest
            return


# ---------------------------------------------------------------------------------------------
# One measured run: streams from client processes


@dataclass
class Target:
    server: str
    transport: str  # sio, http, direct
    spec: dict[str, Any]  # what the load generator needs: url (and format)
    pid: int | None  # the server's process, for its CPU


def prompt(chunks: int, delay: float) -> str:
    return json.dumps({"bench": {"chunks": chunks, "delay": delay}})


def run_streams(target: Target, upstream: Upstream, jobs: list[Any], procs: int, timeout: float,
                during: Any = None, before_go: Any = None) -> dict[str, Any]:
    """Spread the jobs over `procs` load processes, release them at one t0, and collect what they saw.

    `before_go()` runs once every client is connected, before the streams start; `during(t0)` runs in this
    process while the streams run (memory readings, a storm's clock).
    """
    from bench.loadgen import worker_main

    settle(target)
    kind = "direct" if target.transport == "direct" else target.transport
    ctx = mp.get_context("spawn")
    parts = [jobs[i::procs] for i in range(procs) if jobs[i::procs]]
    workers = []
    for part in parts:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker_main, args=(child, kind, target.spec, part, timeout), daemon=True)
        process.start()
        child.close()
        workers.append((process, parent))
    try:
        for _, conn in workers:
            message = _recv(conn, 120, "connecting")
            if message[0] != "ready":
                raise RuntimeError(f"load process failed: {message[1]}")
        if before_go is not None:
            before_go()
        t0 = time.monotonic() + 0.3
        server_cpu0 = tree_cpu_seconds(target.pid) if target.pid else None
        upstream0 = upstream.counters()
        for _, conn in workers:
            conn.send(("go", t0))
        extra = during(t0) if during else None
        records, load_cpu, lag99 = [], 0.0, []
        for _, conn in workers:
            message = _recv(conn, timeout + 60, "streaming")
            if message[0] != "result":
                raise RuntimeError(f"load process failed: {message[1]}")
            records += message[1]
            load_cpu += message[2]["cpu_s"]
            lag99.append(message[2]["loop_lag_p99_ms"])
        window = max(1e-9, time.monotonic() - t0)
        server_cpu = None if server_cpu0 is None else tree_cpu_seconds(target.pid or 0) - server_cpu0
        upstream1 = upstream.counters()
    finally:
        for process, conn in workers:
            process.join(20)
            if process.is_alive():
                process.terminate()
                process.join(5)
            conn.close()
    return {"records": records, "window_s": window, "server_cpu_s": server_cpu,
            "load_cpu_s": load_cpu + upstream1["cpu_s"] - upstream0["cpu_s"],
            "client_lag_p99_ms": max((x for x in lag99 if x is not None), default=None), "extra": extra}


def _recv(conn: Any, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"load process gave no answer for {timeout:.0f} s while {what}")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"load process died while {what}") from None


# ---------------------------------------------------------------------------------------------
# Statistics


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 2)


def summarize(run: dict[str, Any], chunks: int) -> dict[str, Any]:
    """The figures of one run, from the client side, plus who was busy."""
    lags, firsts, gaps, failures = [], [], [], {}
    pieces = events = complete = 0
    emits, ends = [], []
    for rec in run["records"]:
        events += len(rec["events"])
        pieces += len(rec["pieces"])
        if rec["emit"] is not None:
            emits.append(rec["emit"])
        if rec["events"]:
            ends.append(rec["events"][-1])
            if rec["emit"] is not None:
                firsts.append(rec["events"][0] - rec["emit"])
        gaps += [b - a for a, b in itertools.pairwise(rec["events"])]
        lags += [rec["events"][number] - sent for number, _, sent in rec["pieces"]]
        in_order = [index for _, index, _ in rec["pieces"]] == list(range(chunks))
        if rec["error"] is None and rec["done"] is not None and in_order:
            complete += 1
        else:
            why = rec["error"] or f"{len(rec['pieces'])}/{chunks} pieces or out of order"
            failures[why] = failures.get(why, 0) + 1
    span = (max(ends) - min(emits)) if ends and emits else None
    window = run["window_s"]
    gap50, gap99 = pct(gaps, 50), pct(gaps, 99)
    return {
        "streams": len(run["records"]), "complete": complete, "failures": failures,
        "lag_p50_ms": ms(pct(lags, 50)), "lag_p99_ms": ms(pct(lags, 99)), "lag_max_ms": ms(pct(lags, 100)),
        "first_p50_ms": ms(pct(firsts, 50)), "first_p99_ms": ms(pct(firsts, 99)),
        "gap_p50_ms": ms(gap50), "gap_p99_ms": ms(gap99),
        "gap_ratio": None if not gap50 or gap99 is None else round(gap99 / gap50, 2),
        "pieces": pieces, "events": events,
        "pieces_per_event": None if not events else round(pieces / events, 2),
        "pieces_per_s": None if not span else round(pieces / span, 1),
        "server_cpu_cores": None if run["server_cpu_s"] is None else round(run["server_cpu_s"] / window, 2),
        "server_us_per_piece": (None if run["server_cpu_s"] is None or not pieces
                                else round(1e6 * run["server_cpu_s"] / pieces, 1)),
        "load_cpu_cores": round(run["load_cpu_s"] / window, 2),
        "client_lag_p99_ms": run["client_lag_p99_ms"],
    }


# ---------------------------------------------------------------------------------------------
# The measurements


def paced(target: Target, upstream: Upstream, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from bench.loadgen import Job

    text = prompt(args.chunks, args.delay)
    jobs = [Job(f"p{n}-{i}", text, offset=args.ramp * i / n) for i in range(n)]
    run = run_streams(target, upstream, jobs, args.client_procs, args.level_timeout)
    return summarize(run, args.chunks)


def throughput(target: Target, upstream: Upstream, args: argparse.Namespace) -> dict[str, Any]:
    from bench.loadgen import Job

    jobs = [Job(f"t{i}", prompt(args.tput_chunks, 0)) for i in range(args.tput_streams)]
    return summarize(run_streams(target, upstream, jobs, 1, args.level_timeout), args.tput_chunks)


def single(target: Target, upstream: Upstream, args: argparse.Namespace) -> dict[str, Any]:
    """Time to first piece of lone streams, one after another: what the server adds when it is idle."""
    from bench.loadgen import Job

    jobs = [Job(f"s{i}", prompt(3, 0), offset=0.05 * i) for i in range(args.single)]
    return summarize(run_streams(target, upstream, jobs, 1, args.level_timeout), 3)


def storm(target: Target, upstream: Upstream, args: argparse.Namespace) -> dict[str, Any]:
    """N long streams, each stopped after 5 pieces (the event, or POST .../stop), all within the ramp."""
    from bench.loadgen import Job

    n = args.storm
    before = upstream.counters()
    jobs = [Job(f"c{i}", prompt(10_000, args.delay), offset=args.ramp * i / n, stop_after=5) for i in range(n)]
    run = run_streams(target, upstream, jobs, args.client_procs, args.level_timeout)
    last_stop = max((r["stopped_at"] for r in run["records"] if r["stopped_at"]), default=None)
    deadline = time.monotonic() + 30
    while upstream.counters()["aborted"] - before["aborted"] < n and time.monotonic() < deadline:
        time.sleep(0.005)  # the upstream is another process: poll its counter
    closed = upstream.counters()["aborted"] - before["aborted"]
    all_closed = time.monotonic()
    stop_to_done = [r["done"] - r["stopped_at"] for r in run["records"] if r["done"] and r["stopped_at"]]
    return {
        "streams": n, "upstream_closed": closed,
        "stop_to_terminal_p50_ms": ms(pct(stop_to_done, 50)), "stop_to_terminal_p99_ms": ms(pct(stop_to_done, 99)),
        "last_stop_to_all_closed_ms": None if last_stop is None else ms(all_closed - last_stop),
        "cancelled": sum(1 for r in run["records"] if r["finish"] in ("cancelled", "hung up")),
        "server_cpu_cores": None if run["server_cpu_s"] is None else round(run["server_cpu_s"] / run["window_s"], 2),
        "streams_left": streams_running(target.spec["url"]),
    }


def memory(target: Target, upstream: Upstream, args: argparse.Namespace) -> dict[str, Any]:
    """RSS of the worker: per idle Socket.IO connection, then per active stream on those same connections.

    The connections open first and are measured idle; then each starts a stream of 3 pieces 3 s apart (active,
    nearly silent), measured once every stream has reached the upstream. The difference is what a running
    stream adds to its connection: its producer, reader and log, and its upstream connection.
    """
    from bench.loadgen import Job

    pid = worker_pid(target.pid or 0)
    n = args.memory
    base = rss_kb(pid)
    readings: dict[str, int] = {}

    def connected() -> None:
        time.sleep(1.0)  # let the server settle after the connection burst before reading its memory
        readings["idle"] = rss_kb(pid)

    def all_started(t0: float) -> None:
        started0 = upstream.counters()["started"]
        deadline = time.monotonic() + 60
        while upstream.counters()["started"] - started0 < n and time.monotonic() < deadline:
            time.sleep(0.05)  # another process's counter: poll it
        time.sleep(0.5)  # every stream has its producer, its reader and its upstream connection by now
        readings["active"] = rss_kb(pid)

    jobs = [Job(f"m{i}", prompt(3, 3.0)) for i in range(n)]
    run_streams(target, upstream, jobs, args.client_procs, 60, during=all_started, before_go=connected)
    idle, active = readings.get("idle"), readings.get("active")
    return {
        "connections": n, "rss_base_kb": base, "rss_idle_kb": idle, "rss_active_kb": active,
        "kb_per_idle_connection": None if idle is None else round((idle - base) / n, 1),
        "kb_per_active_stream": None if idle is None or active is None else round((active - idle) / n, 1),
    }


# ---------------------------------------------------------------------------------------------


def measure_server(name: str, upstream: Upstream, args: argparse.Namespace, out: dict[str, Any]) -> None:
    server = None if name == "direct" else start_server(name, upstream, args.pin)
    transports = ["direct"] if server is None else [t for t in args.transports.split(",") if t]
    try:
        if name in RELAYS and args.memory:  # first, on a fresh server: the load runs leave pools and caches behind
            target = Target(name, "sio", {"url": server.url}, server.process.pid)  # type: ignore[union-attr]
            out.setdefault(f"{name}/sio", {"paced": {}})["memory"] = s = _guarded(memory, target, upstream, args)
            print(f"   memory: {s}", flush=True)
        for transport in transports:
            if server is None:
                target = Target(name, "direct", {"url": upstream.url}, None)
            else:
                spec = {"url": server.url, "format": "text" if name == "seed" else "ndjson"}
                target = Target(name, transport, spec, server.process.pid)
            column = name if transport == "direct" else f"{name}/{transport}"
            entry: dict[str, Any] = out.setdefault(column, {"paced": {}})
            print(f"== {column}", flush=True)
            warm = summarize(run_streams(target, upstream, [_warm(i) for i in range(4)], 1, 30), 10)
            if warm["complete"] < 4:
                print(f"   warm-up failed: {warm['failures']}", flush=True)
            for n in args.levels:
                entry["paced"][str(n)] = s = median_round([_guarded(paced, target, upstream, n, args)
                                                           for _ in range(args.rounds)])
                _say(f"paced N={n}", s)
            entry["throughput"] = s = _guarded(throughput, target, upstream, args)
            _say("throughput", s)
            entry["single"] = s = _guarded(single, target, upstream, args)
            _say("single", s)
            if name in RELAYS:
                entry["storm"] = s = _guarded(storm, target, upstream, args)
                print(f"   storm: {s}", flush=True)
    finally:
        if server is not None:
            from tests.conftest import stop_server

            stop_server(server)


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Of repeated rounds of one level, the round with the median text lag p99, whole (its figures belong together),
    with every round's p99 beside it: one full collection of the garbage collector can land in a round or not."""
    done = [r for r in rounds if "failed" not in r and r["lag_p99_ms"] is not None]
    if not done:
        return rounds[0]
    ordered = sorted(done, key=lambda r: r["lag_p99_ms"])
    return {**ordered[(len(ordered) - 1) // 2], "rounds_lag_p99_ms": [r.get("lag_p99_ms") for r in rounds]}


def _warm(i: int) -> Any:
    from bench.loadgen import Job

    return Job(f"w{i}", prompt(10, 0.005))


def _guarded(measure: Any, *args: Any) -> dict[str, Any]:
    try:
        return measure(*args)
    except RuntimeError as err:
        print(f"   FAILED: {err}", flush=True)
        return {"failed": str(err)}


def _say(label: str, s: dict[str, Any]) -> None:
    if "failed" in s:
        return
    print(f"   {label:>14}: {s['complete']}/{s['streams']} complete, lag p50/p99/max {s['lag_p50_ms']}/"
          f"{s['lag_p99_ms']}/{s['lag_max_ms']} ms, first p50/p99 {s['first_p50_ms']}/{s['first_p99_ms']} ms, "
          f"gap p50/p99 {s['gap_p50_ms']}/{s['gap_p99_ms']} ms, {s['pieces_per_s']} pieces/s, "
          f"{s['pieces_per_event']} pieces/event, server {s['server_cpu_cores']} cores "
          f"({s['server_us_per_piece']} us/piece), load {s['load_cpu_cores']} cores", flush=True)


def machine_note(pin: bool) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pinned": f"server on core {SERVER_CORE}, load on core {LOAD_CORE}" if pin else "not pinned",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="50,100,200,500,1000", help="concurrent paced streams, comma-separated")
    parser.add_argument("--chunks", type=int, default=100, help="pieces per paced stream")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between pieces (50 pieces/s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each paced level; the median is shown")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which a level's starts are spread")
    parser.add_argument("--tput-streams", type=int, default=20)
    parser.add_argument("--tput-chunks", type=int, default=2000)
    parser.add_argument("--single", type=int, default=40, help="sequential lone streams for the N=1 overhead")
    parser.add_argument("--storm", type=int, default=200, help="streams in the cancel storm")
    parser.add_argument("--memory", type=int, default=500, help="connections for the memory figures; 0 skips")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--transports", default="sio,http")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--level-timeout", type=float, default=90)
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server and load to cores")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small levels and counts")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--plots", type=Path, default=PLOTS, help="where the PNG plots go")
    parser.add_argument("--no-plots", dest="plots", action="store_const", const=None, help="write no plots")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.chunks, args.tput_chunks, args.single, args.storm, args.memory = "10,20", 20, 200, 5, 20, 50
        args.rounds = 1
    args.levels = [int(x) for x in str(args.levels).split(",") if x.strip()]
    args.pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    if args.pin:
        os.sched_setaffinity(0, {LOAD_CORE})  # this process, the upstream and the load processes it starts
    RESULTS.mkdir(parents=True, exist_ok=True)
    note = machine_note(args.pin)
    print(f"# bench.run {note['date']} {note['cpu']} nproc={note['nproc']} python={note['python']} "
          f"{note['pinned']} loadavg={note['loadavg_at_start']}", flush=True)
    results: dict[str, Any] = {}
    upstream = Upstream()
    try:
        for name in [s for s in SERVERS if s in args.servers.split(",")]:
            measure_server(name, upstream, args, results)
    finally:
        upstream.stop()
    note["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    document = {"machine": note, "config": config, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    from bench.report import plots, tables

    print()
    print(tables(document))
    if args.plots is not None:
        for path in plots(document, args.plots):
            print(f"plot: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
