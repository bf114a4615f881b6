"""What permessage-deflate costs and saves for chunk events: the reason WEBSOCKET_COMPRESSION is off by default.

    .venv/bin/python -m bench.compression

The relay (gevent, pinned) runs twice, with WEBSOCKET_COMPRESSION off and on; the load generator's clients
offer permessage-deflate as browsers do. Each run is the paced workload (one piece per event: the common
case) and the unpaced one (many pieces per event). Server CPU per piece comes from /proc. The bytes saved are
computed from the events themselves: each run's Socket.IO messages compressed as permessage-deflate does
(one raw-deflate stream per connection with context takeover, each message flushed), against their size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

from bench.run import RESULTS, SERVER_CORE, Target, Upstream, prompt, run_streams, start_server, summarize

CHUNK = "chatgpt_description_chunk"


def deflated_share(records: list[dict[str, Any]]) -> float:
    """Compressed bytes / plain bytes of the runs' chunk messages, per connection as permessage-deflate does."""
    plain = packed = 0
    for rec in records:
        stream = zlib.compressobj(6, zlib.DEFLATED, -15)
        seq = -1
        for number in range(len(rec["events"])):
            pieces = [p for p in rec["pieces"] if p[0] == number]
            text = "".join(f"{index}@{int(sent * 1e6)} " for _, index, sent in pieces)
            seq = pieces[-1][1] if pieces else seq
            message = ("42" + json.dumps([CHUNK, text, {"stream_id": rec["stream_id"], "seq": seq}],
                                         separators=(",", ":"))).encode()
            plain += len(message)
            packed += len(stream.compress(message) + stream.flush(zlib.Z_SYNC_FLUSH)) - 4  # less the 4-byte tail
    return packed / plain if plain else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paced", type=int, default=50, help="paced streams (50 pieces/s each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "compression.json")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {1 - SERVER_CORE})
    from bench.loadgen import Job
    from tests.conftest import stop_server

    upstream = Upstream()
    out: dict[str, Any] = {}
    try:
        for setting in ("false", "true"):
            server = start_server("relay-gevent", upstream, pin=True, extra={"WEBSOCKET_COMPRESSION": setting})
            try:
                target = Target("relay", "sio", {"url": server.url, "compress": True}, server.process.pid)
                run_streams(target, upstream, [Job(f"w{i}", prompt(20, 0.005)) for i in range(4)], 1, 60)
                for name, jobs, chunks in (
                    ("paced", [Job(f"p{i}", prompt(100, 0.02), offset=i / args.paced) for i in range(args.paced)],
                     100),
                    ("unpaced", [Job(f"t{i}", prompt(2000, 0)) for i in range(20)], 2000),
                ):
                    run = run_streams(target, upstream, jobs, 1, 120)
                    s = summarize(run, chunks)
                    share = deflated_share(run["records"])
                    out[f"{name}/{setting}"] = {**{k: s[k] for k in ("complete", "streams", "pieces_per_s",
                                                                     "pieces_per_event", "server_us_per_piece",
                                                                     "lag_p99_ms")},
                                                "deflated_share": round(share, 3)}
                    print(f"{name:8} compression {setting:5}: {s['complete']}/{s['streams']} complete, "
                          f"{s['server_us_per_piece']} us/piece, {s['pieces_per_event']} pieces/event, "
                          f"lag p99 {s['lag_p99_ms']} ms; deflate would send {100 * share:.0f}% of the bytes",
                          flush=True)
            finally:
                stop_server(server)
    finally:
        upstream.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
