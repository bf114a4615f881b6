"""Benchmark: the relay (gevent and eventlet) against the seed design, side by side in one run.

    .venv/bin/python -m bench.run [--levels 25,50,100,200] [--quick]

Starts the fake OpenAI upstream in this process, then one server after the other: the relay in
gevent mode (gunicorn -c gunicorn.conf.py) and in eventlet mode (python -m app), exactly as the
tests start them, then the seed baseline (bench/seed_server.py under gunicorn's gevent worker).
Against each it runs, for every concurrency level N, N concurrent streams, each from its own
connected Socket.IO client, each of `--chunks` chunks paced at `--delay` s by the upstream; then
a throughput run of `--tput-streams` streams of `--tput-chunks` unpaced chunks. A control column,
"upstream", reads the same streams straight from the fake, which shows what the fake and the
clients alone add. The clients run in separate processes (bench/loadgen.py).

Prints one table per metric (rows: N; columns: servers; plus seed/relay ratios) and writes
bench/results/latest.json. Ratios matter more than absolute figures: the machine is shared and
noisy, which is why every server is measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

CONTROL = "upstream"
SERVERS = ["relay-gevent", "relay-eventlet", "seed"]
RELAYS = ["relay-gevent", "relay-eventlet"]


# ---------------------------------------------------------------------------------------------
# Servers


def start_seed(env: dict[str, str], log_path: Path) -> Any:
    """The seed baseline under gunicorn's gevent worker, started and awaited like tests start the relay."""
    from tests.conftest import BIN, free_port, launch

    port = free_port()
    command = [str(BIN / "gunicorn"), "-c", "bench/seed_gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
               "bench.seed_server:app"]
    return launch("seed", command, port, env, log_path)


def start(name: str, env: dict[str, str]) -> Any:
    from tests.conftest import start_server

    log_path = RESULTS / f"server-{name}.log"
    if name == "seed":
        return start_seed(env, log_path)
    return start_server(name.removeprefix("relay-"), env, log_path)


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and its children (gunicorn's worker), from /proc."""
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


def machine_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs from /proc/stat: how much the hypervisor took from this VM."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])
    except (OSError, ValueError):
        return 0, 0


def own_cpu_seconds() -> float:
    """This process's CPU: the fake upstream's threads, the orchestrator being idle meanwhile."""
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------------------------------------
# One measured run: N streams from client processes


def run_streams(kind: str, target: dict[str, str], jobs: list[tuple[str, str]], procs: int, timeout: float,
                server_pid: int | None) -> dict[str, Any]:
    """Spread the streams over `procs` spawned client processes, start them all at once, collect records."""
    from bench.loadgen import worker_main

    ctx = mp.get_context("spawn")
    parts = [jobs[i::procs] for i in range(procs) if jobs[i::procs]]
    workers = []
    for part in parts:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker_main, args=(child, kind, target, part, timeout), daemon=True)
        process.start()
        child.close()
        workers.append((process, parent))
    try:
        for _, conn in workers:
            message = _recv(conn, 90, "connecting the clients")
            if message[0] != "ready":
                raise RuntimeError(f"client process failed: {message[1]}")
        t0 = time.monotonic() + 0.3
        server_cpu0 = tree_cpu_seconds(server_pid) if server_pid else None
        own_cpu0 = own_cpu_seconds()
        ticks0 = machine_ticks()
        for _, conn in workers:
            conn.send(("go", t0))
        records, client_stats = [], []
        for _, conn in workers:
            message = _recv(conn, timeout + 30, "the streams")
            if message[0] != "result":
                raise RuntimeError(f"client process failed: {message[1]}")
            records += message[1]
            client_stats.append(message[2])
        window = max(1e-9, time.monotonic() - t0)
        server_cpu = None if server_cpu0 is None else tree_cpu_seconds(server_pid or 0) - server_cpu0
        own_cpu = own_cpu_seconds() - own_cpu0
        ticks1 = machine_ticks()
    finally:
        for process, conn in workers:
            process.join(15)
            if process.is_alive():
                process.terminate()
                process.join(5)
            conn.close()
    return {"records": records, "client_stats": client_stats, "window_s": window,
            "server_cpu_s": server_cpu, "upstream_cpu_s": own_cpu,
            "steal_pct": 100 * (ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1])}


def _recv(conn: Any, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"client process gave no answer for {timeout:.0f} s while {what}")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"client process died while {what}") from None


@dataclass
class Bench:
    """Runs the levels against one server (or the control) and prints a line per level."""

    tag: str
    kind: str
    target: dict[str, str]
    server_pid: int | None
    client_procs: int
    level_timeout: float
    deadline: float

    def measure(self, label: str, n: int, prompt: str, chunks: int) -> dict[str, Any] | None:
        if time.monotonic() > self.deadline:
            print(f"  {self.tag:18} {label:>12}: skipped, over the --budget", flush=True)
            return None
        jobs = [(f"{label}-{i}", prompt) for i in range(n)]
        procs = max(1, min(self.client_procs, n))
        try:
            run = run_streams(self.kind, self.target, jobs, procs, self.level_timeout, self.server_pid)
        except RuntimeError as err:
            print(f"  {self.tag:18} {label:>12}: FAILED: {err}", flush=True)
            return {"streams": n, "complete": 0, "failures": {str(err): n}}
        s = summarize(run, chunks)
        print(f"  {self.tag:18} {label:>12}: {s['complete']}/{n} complete, first p50/p99 {s['first_p50_ms']}/"
              f"{s['first_p99_ms']} ms, gap p50/p99/max {s['gap_p50_ms']}/{s['gap_p99_ms']}/{s['gap_max_ms']} ms, "
              f"{s['chunks_per_s']} chunks/s, server cpu {s['server_cpu_cores']}, client cpu {s['client_cpu_max']} "
              f"lag99 {s['client_lag_p99_ms']} ms, steal {s['steal_pct']}%", flush=True)
        return s


# ---------------------------------------------------------------------------------------------
# Statistics


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(run: dict[str, Any], chunks: int) -> dict[str, Any]:
    """Client-side figures for one run: first chunk, gaps, completion, rate, and who was busy."""
    records = run["records"]
    firsts: list[float] = []
    gaps: list[float] = []
    durations: list[float] = []
    failures: dict[str, int] = {}
    delivered = 0
    emits = [r["emit"] for r in records if r["emit"] is not None]
    ends: list[float] = []
    for rec in records:
        arrivals = rec["arrivals"]
        delivered += len(arrivals)
        if arrivals:
            ends.append(arrivals[-1][0])
            if rec["emit"] is not None:
                firsts.append(arrivals[0][0] - rec["emit"])
        gaps += [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
        in_order = len(arrivals) == chunks and all(
            seq == i and text == f"w{i} " for i, (_, seq, text) in enumerate(arrivals))
        if rec["done"] is not None and rec["error"] is None and in_order:
            durations.append(rec["done"] - rec["emit"])
        else:
            why = rec["error"] or (f"{len(arrivals)}/{chunks} chunks or out of order" if not in_order else "no done")
            failures[why] = failures.get(why, 0) + 1
    span = (max(ends) - min(emits)) if ends and emits else None
    ms = lambda v: None if v is None else round(1000 * v, 2)  # noqa: E731
    s3 = lambda v: None if v is None else round(v, 3)  # noqa: E731
    stats = run["client_stats"]
    return {
        "streams": len(records),
        "complete": len(durations),
        "failures": failures,
        "first_p50_ms": ms(pct(firsts, 50)),
        "first_p99_ms": ms(pct(firsts, 99)),
        "first_max_ms": ms(pct(firsts, 100)),
        "gap_p50_ms": ms(pct(gaps, 50)),
        "gap_p99_ms": ms(pct(gaps, 99)),
        "gap_max_ms": ms(pct(gaps, 100)),
        "duration_p50_s": s3(pct(durations, 50)),
        "duration_p99_s": s3(pct(durations, 99)),
        "chunks_delivered": delivered,
        "chunks_per_s": None if not span else round(delivered / span, 1),
        "server_cpu_cores": None if run["server_cpu_s"] is None else round(run["server_cpu_s"] / run["window_s"], 2),
        "server_cpu_us_per_chunk": (None if run["server_cpu_s"] is None or not delivered
                                    else round(1e6 * run["server_cpu_s"] / delivered, 1)),
        "upstream_cpu_cores": round(run["upstream_cpu_s"] / run["window_s"], 2),
        "steal_pct": round(run["steal_pct"], 1),
        "client_cpu_max": round(max(s["cpu_share"] for s in stats), 2) if stats else None,
        "client_lag_p99_ms": (round(max(s["loop_lag_p99_ms"] for s in stats), 2)
                              if stats and all(s["loop_lag_p99_ms"] is not None for s in stats) else None),
    }


def merge(summaries: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Rounds into one summary: medians of the figures, totals of the stream counts and failures."""
    present = [s for s in summaries if s]
    if len(present) <= 1:
        return present[0] if present else None
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for s in present for k in s):
        values = [s.get(key) for s in present]
        if key in ("streams", "complete", "chunks_delivered"):
            out[key] = sum(v or 0 for v in values)
        elif key == "failures":
            out[key] = {}
            for failures in values:
                for why, count in (failures or {}).items():
                    out[key][why] = out[key].get(why, 0) + count
        else:
            numbers = [v for v in values if isinstance(v, (int, float))]
            out[key] = round(statistics.median(numbers), 2) if numbers else None
    out["rounds"] = len(present)
    return out


# ---------------------------------------------------------------------------------------------
# Tables


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def table(title: str, rows: list[tuple[str, dict[str, Any]]], columns: list[str],
          value: Callable[[dict[str, Any]], Any], ratios: list[tuple[str, str, str]] | None = None) -> str:
    """rows: (label, {column: summary}); ratios: (header, numerator column, denominator column)."""
    ratios = ratios or []
    header = ["N", *columns, *(h for h, _, _ in ratios)]
    body = []
    for label, by_col in rows:
        values = {c: _safe(value, by_col.get(c)) for c in columns}
        body.append([label, *(fmt(values[c]) for c in columns),
                     *(ratio(values[num], values[den]) for _, num, den in ratios)])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *(line(r) for r in body)])


def _safe(value: Callable[[dict[str, Any]], Any], summary: dict[str, Any] | None) -> Any:
    """A summary's figure, or None when that run failed or has no such figure."""
    try:
        return value(summary) if summary else None
    except (KeyError, TypeError):
        return None


def report(results: dict[str, Any], columns: list[str]) -> str:
    present = [c for c in columns if c in results["servers"]]
    relays = [r for r in RELAYS if r in present]
    seed_over = [(f"seed/{r.removeprefix('relay-')}", "seed", r) for r in relays] if "seed" in present else []
    relay_over = [(f"{r.removeprefix('relay-')}/seed", r, "seed") for r in relays] if "seed" in present else []
    levels = results["config"]["levels"]
    paced = [(str(n), {c: results["servers"][c]["paced"].get(str(n)) for c in present}) for n in levels]
    cfg = results["config"]
    out = [f"Paced streams: each {cfg['chunks']} chunks at {cfg['delay']} s apart from the upstream "
           f"(ideal: first chunk ~{1000 * cfg['delay']:.0f} ms, every gap ~{1000 * cfg['delay']:.0f} ms). "
           "Times in ms, from the client side."]
    specs = [
        ("First chunk p50 (ms)", lambda s: s["first_p50_ms"], []),
        ("First chunk p99 (ms)", lambda s: s["first_p99_ms"], seed_over),
        ("Inter-chunk gap p50 (ms)", lambda s: s["gap_p50_ms"], []),
        ("Inter-chunk gap p99 (ms)", lambda s: s["gap_p99_ms"], seed_over),
        ("Inter-chunk gap max (ms)", lambda s: s["gap_max_ms"], []),
        ("Stream duration p99 (s)", lambda s: s["duration_p99_s"], []),
        ("Complete streams (all chunks in order + done)", lambda s: f"{s['complete']}/{s['streams']}", []),
        ("Aggregate chunks/s delivered", lambda s: s["chunks_per_s"], relay_over),
        ("Server CPU (cores busy)", lambda s: s["server_cpu_cores"], []),
        ("Server CPU per chunk (us)", lambda s: s["server_cpu_us_per_chunk"], []),
        ("Busiest client process CPU share / its loop lag p99 (ms)",
         lambda s: f"{s['client_cpu_max']:.2f} / {s['client_lag_p99_ms']}", []),
        ("Upstream (fake, in the orchestrator) CPU (cores busy)", lambda s: s["upstream_cpu_cores"], []),
        ("CPU stolen by the hypervisor during the level (% of the machine)", lambda s: s["steal_pct"], []),
    ]
    for title, value, ratios in specs:
        out += ["", table(title, paced, present, value, ratios)]
    tput = [(f"{cfg['tput_streams']}x{cfg['tput_chunks']}",
             {c: results["servers"][c].get("throughput") for c in present})]
    out += ["", f"Throughput: {cfg['tput_streams']} streams of {cfg['tput_chunks']} chunks, no delay upstream."]
    for title, value, ratios in [
        ("Chunks/s delivered", lambda s: s["chunks_per_s"], relay_over),
        ("Complete streams", lambda s: f"{s['complete']}/{s['streams']}", []),
        ("First chunk p99 (ms)", lambda s: s["first_p99_ms"], seed_over),
        ("Inter-chunk gap p99 (ms)", lambda s: s["gap_p99_ms"], seed_over),
        ("Inter-chunk gap max (ms)", lambda s: s["gap_max_ms"], seed_over),
        ("Server CPU (cores busy)", lambda s: s["server_cpu_cores"], []),
        ("Server CPU per chunk (us)", lambda s: s["server_cpu_us_per_chunk"], []),
        ("Busiest client process CPU share / loop lag p99 (ms)",
         lambda s: f"{s['client_cpu_max']:.2f} / {s['client_lag_p99_ms']}", []),
        ("Upstream (fake) CPU (cores busy)", lambda s: s["upstream_cpu_cores"], []),
        ("CPU stolen by the hypervisor (% of the machine)", lambda s: s["steal_pct"], []),
    ]:
        out += ["", table(title, tput, present, value, ratios)]
    failures = []
    for c in present:
        by_run = {**results["servers"][c]["paced"], "throughput": results["servers"][c]["throughput"]}
        failures += [f"  {c} {k}: {s['failures']}" for k, s in by_run.items() if s and s["failures"]]
    if failures:
        out += ["", "Incomplete streams (why):", *failures]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def machine_note() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="25,50,100,200", help="concurrent streams per level, comma-separated")
    parser.add_argument("--chunks", type=int, default=100, help="chunks per paced stream")
    parser.add_argument("--delay", type=float, default=0.02, help="upstream delay before each chunk, seconds")
    parser.add_argument("--tput-streams", type=int, default=20)
    parser.add_argument("--tput-chunks", type=int, default=2000)
    parser.add_argument("--servers", default=",".join([CONTROL, *SERVERS]),
                        help=f"which of {CONTROL},{','.join(SERVERS)} to run, comma-separated")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole sequence; tables show the median of the rounds")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes the streams are spread over")
    parser.add_argument("--level-timeout", type=float, default=60, help="seconds one level may take before it is cut")
    parser.add_argument("--budget", type=float, default=15, help="minutes; levels not started by then are skipped")
    parser.add_argument("--quick", action="store_true", help="a smoke run: levels 10,20, 20 chunks, 4x200 throughput")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.chunks, args.tput_streams, args.tput_chunks = "10,20", 20, 4, 200
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    columns = [c for c in [CONTROL, *SERVERS] if c in args.servers.split(",")]

    from tests.conftest import API_KEY, stop_server, upstream_env
    from tests.fake_upstream import FakeUpstream, controls

    RESULTS.mkdir(parents=True, exist_ok=True)
    note = machine_note()
    print(f"# bench.run  {note['date']}  nproc={note['nproc']}  python={note['python']}  "
          f"loadavg={note['loadavg_at_start']}  ({note['platform']})", flush=True)
    paced_prompt = controls(chunks=args.chunks, delay=args.delay)
    tput_prompt = controls(chunks=args.tput_chunks, delay=0)
    deadline = time.monotonic() + 60 * args.budget
    config = {"levels": levels, "chunks": args.chunks, "delay": args.delay, "tput_streams": args.tput_streams,
              "tput_chunks": args.tput_chunks, "rounds": args.rounds, "client_procs": args.client_procs,
              "level_timeout": args.level_timeout, "servers": columns}
    rounds: list[dict[str, Any]] = []

    with FakeUpstream(api_key=API_KEY) as fake:
        env = {**upstream_env(fake), "UPSTREAM_READ_TIMEOUT": "30"}
        direct = {"base_url": fake.url, "api_key": API_KEY, "model": env["OPENAI_MODEL"]}
        for round_no in range(1, args.rounds + 1):
            this_round: dict[str, Any] = {}
            rounds.append(this_round)
            for name in columns:
                tag = f"{name} r{round_no}" if args.rounds > 1 else name
                server = None if name == CONTROL else start(name, env)
                kind, target = ("direct", direct) if server is None else ("sio", {"url": server.url})
                pid = None if server is None else server.process.pid
                entry: dict[str, Any] = {"paced": {}, "throughput": None}
                this_round[name] = entry

                bench = Bench(tag, kind, target, pid, args.client_procs, args.level_timeout, deadline)
                try:
                    # Imports and first connections, not measured.
                    bench.measure("warmup", 4, controls(chunks=10, delay=0.01), 10)
                    for n in levels:
                        entry["paced"][str(n)] = bench.measure(f"paced-{n}", n, paced_prompt, args.chunks)
                    entry["throughput"] = bench.measure("throughput", args.tput_streams, tput_prompt, args.tput_chunks)
                finally:
                    if server is not None:
                        stop_server(server)
                        if API_KEY in server.log():
                            print(f"  warning: the API key appears in {server.log_path}", flush=True)

    note["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    servers = {name: {"paced": {str(n): merge([r[name]["paced"].get(str(n)) for r in rounds]) for n in levels},
                      "throughput": merge([r[name]["throughput"] for r in rounds])}
               for name in columns}
    results = {"machine": note, "config": config, "servers": servers, "rounds": rounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    if args.rounds > 1:
        print(f"Each figure is the median of {args.rounds} rounds; stream counts are totals over the rounds.\n")
    print(report(results, columns))
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"\nloadavg at end {note['loadavg_at_end']}; JSON: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
