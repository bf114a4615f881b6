"""Where the relay's CPU goes, by layer: py-spy samples of the worker under a workload, grouped by what they do.

    .venv/bin/python -m bench.layers                      # throughput: 20 streams of 4000 pieces, unpaced
    .venv/bin/python -m bench.layers --streams 4 --chunks 1000 --delay 0.004    # one piece per event
    .venv/bin/python -m bench.layers --seed               # the seed design, for the "before" picture

The worker (gevent, pinned to the server core) is sampled at 500 Hz for the whole run. Each sample goes to the
layer of the deepest frame that names one (the code that was running, not its callers), so it counts once.
The CPU per piece comes from /proc, and "us per piece" of a layer is its share of that.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.run import (
    RESULTS,
    SERVER_CORE,
    Target,
    Upstream,
    prompt,
    run_streams,
    start_server,
    summarize,
    worker_pid,
)

# (layer, markers). A sample belongs to the layer of the deepest frame of its stack that has a marker: the code
# that was running, not the code that called it.
LAYERS = [
    ("upstream request (openai client, connect)", ["Upstream.open", "SyncAPIClient.post", "Completions.create"]),
    ("typed chunks (openai Stream, construct_type)", ["openai/_streaming.py", "openai/_models.py",
                                                      "_process_response_data"]),
    ("upstream read (httpx, httpcore, h11, socket)", ["httpx2/", "httpcore2/", "h11/",
                                                      "chat_relay/streams/upstream.py"]),
    ("SSE parse (ours, orjson)", ["chat_relay/streams/upstream_sse.py"]),
    ("log and readers (ours)", ["chat_relay/streams/", "_deliver", "chat_relay/transports/http_body_formats.py",
                                "chat_relay/transports/backpressure.py"]),
    ("Socket.IO emit (python-socketio)", ["socketio/", "flask_socketio/"]),
    ("websocket write (engine.io writer, simple-websocket, wsproto)", ["engineio/socket.py", "simple_websocket/",
                                                                        "wsproto/", "websocket_frames.py"]),
    ("HTTP response write (gunicorn)", ["gunicorn/"]),
    ("request handling (engine.io, Flask, validation, admission)", ["engineio/", "flask/", "werkzeug/",
                                                                    "chat_relay/transports/", "chat_relay/access/",
                                                                    "pydantic"]),
    ("gevent hub and switches", ["gevent/", "Hub.run", "greenlet"]),
]


def layer_of(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        for name, markers in LAYERS:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def classify(path: Path) -> collections.Counter[str]:
    shares: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            shares[layer_of(stack)] += int(count)
    return shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=4000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--transport", default="sio", choices=["sio", "http"])
    parser.add_argument("--seed", action="store_true", help="profile the seed design instead of the relay")
    parser.add_argument("--out", type=Path, default=RESULTS / "layers.json")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {1 - SERVER_CORE})
    from bench.loadgen import Job
    from tests.conftest import stop_server

    upstream = Upstream()
    name = "seed" if args.seed else "relay-gevent"
    server = start_server(name, upstream, pin=True)
    samples = RESULTS / f"layers-{name}-{args.transport}.txt"
    try:
        target = Target(name, args.transport, {"url": server.url, "format": "text" if args.seed else "ndjson"},
                        server.process.pid)
        run_streams(target, upstream, [Job(f"w{i}", prompt(20, 0.005)) for i in range(4)], 1, 60)
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "500", "-p",
             str(worker_pid(server.process.pid)), "-o", str(samples), "-f", "raw", "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # py-spy attaches
        jobs = [Job(f"p{i}", prompt(args.chunks, args.delay), offset=0.002 * i) for i in range(args.streams)]
        figures = summarize(run_streams(target, upstream, jobs, 1, 120), args.chunks)
        spy.send_signal(2)
        spy.wait(30)
    finally:
        stop_server(server)
        upstream.stop()
    shares = classify(samples)
    total = sum(shares.values()) or 1
    per_piece = figures["server_us_per_piece"] or 0
    print(f"{name} over {args.transport}: {args.streams} streams x {args.chunks} pieces, delay {args.delay} s: "
          f"{figures['pieces_per_s']} pieces/s, {figures['pieces_per_event']} pieces per event, "
          f"{per_piece} us of server CPU per piece ({total} samples)")
    rows = []
    for layer, _ in [*LAYERS, ("other", [])]:
        share = shares.get(layer, 0) / total
        if share:
            rows.append({"layer": layer, "share": round(share, 3), "us_per_piece": round(share * per_piece, 1)})
            print(f"  {100 * share:5.1f}%  {share * per_piece:6.1f} us/piece  {layer}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "figures": figures,
                                    "layers": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
