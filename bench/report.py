"""Tables and plots from one benchmark run (bench/results/latest.json): `python -m bench.report [json]`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ORDER = ["direct", "relay-gevent/sio", "relay-gevent/http", "relay-eventlet/sio", "relay-eventlet/http",
         "seed/sio", "seed/http"]
# Each relay column against the seed's column on the same transport.
SEED_OF = {"relay-gevent/sio": "seed/sio", "relay-eventlet/sio": "seed/sio",
           "relay-gevent/http": "seed/http", "relay-eventlet/http": "seed/http"}


def _columns(results: dict[str, Any]) -> list[str]:
    return [c for c in ORDER if c in results] + [c for c in results if c not in ORDER]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"
    return str(v)


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"**{title}**", "", line(header), rule, *(line(r) for r in rows)])


def _get(summary: dict[str, Any] | None, key: str) -> Any:
    return None if not summary or "failed" in summary else summary.get(key)


def _ratio(a: Any, b: Any) -> str:
    return "-" if not isinstance(a, int | float) or not isinstance(b, int | float) or not b else f"{a / b:.2f}x"


def paced_table(results: dict[str, Any], title: str, key: str, extra: list[tuple[str, Callable]] | None = None) -> str:
    columns = _columns(results)
    levels = sorted({int(n) for c in columns for n in results[c].get("paced", {})})
    header = ["N", *columns, *(name for name, _ in extra or [])]
    rows = []
    for n in levels:
        cells = {c: _get(results[c].get("paced", {}).get(str(n)), key) for c in columns}
        rows.append([str(n), *(_fmt(cells[c]) for c in columns), *(f(cells) for _, f in extra or [])])
    return _table(title, header, rows)


def tables(document: dict[str, Any]) -> str:
    results = document["results"]
    columns = _columns(results)
    out = []
    minus_direct = [(f"{c} - direct", (lambda cells, c=c: _fmt(None if cells.get(c) is None or cells.get("direct")
                                                             is None else round(cells[c] - cells["direct"], 1))))
                    for c in ("relay-gevent/sio", "relay-gevent/http") if c in results and "direct" in results]
    out.append(paced_table(results, "Text lag p99 (ms): upstream send to client arrival, per piece", "lag_p99_ms",
                           minus_direct))
    out.append(paced_table(results, "Text lag p50 (ms)", "lag_p50_ms"))
    out.append(paced_table(results, "Complete streams (every piece, in order, then done)", "complete"))
    out.append(paced_table(results, "Pieces/s delivered", "pieces_per_s"))
    out.append(paced_table(results, "Pieces per event (coalescing)", "pieces_per_event"))
    out.append(paced_table(results, "Fairness: gap between a stream's events, p99 / p50", "gap_ratio"))
    out.append(paced_table(results, "Server CPU (cores busy; 1.0 = its core saturated)", "server_cpu_cores"))
    out.append(paced_table(results, "Server CPU per piece (us)", "server_us_per_piece"))
    out.append(paced_table(results, "Load side CPU: upstream + load generator (cores busy, on its own core)",
                           "load_cpu_cores"))

    header = ["figure", *columns]
    tput = {c: results[c].get("throughput") for c in columns}
    rows = [["pieces/s", *(_fmt(_get(tput[c], "pieces_per_s")) for c in columns)],
            ["vs the seed on its transport", *(_ratio(_get(tput[c], "pieces_per_s"), _get(tput.get(SEED_OF.get(c, "")),
                                                "pieces_per_s")) for c in columns)],
            ["vs the direct read", *(_ratio(_get(tput[c], "pieces_per_s"), _get(tput.get("direct"), "pieces_per_s"))
                                     for c in columns)],
            ["complete", *(f"{_get(tput[c], 'complete')}/{_get(tput[c], 'streams')}" for c in columns)],
            ["pieces per event", *(_fmt(_get(tput[c], "pieces_per_event")) for c in columns)],
            ["server CPU (cores)", *(_fmt(_get(tput[c], "server_cpu_cores")) for c in columns)],
            ["server us/piece", *(_fmt(_get(tput[c], "server_us_per_piece")) for c in columns)],
            ["load CPU (cores)", *(_fmt(_get(tput[c], "load_cpu_cores")) for c in columns)]]
    config = document["config"]
    out.append(_table(f"Throughput: {config['tput_streams']} streams of {config['tput_chunks']} pieces, no pacing",
                      header, rows))

    single = {c: results[c].get("single") for c in columns}
    direct_first = _get(single.get("direct"), "first_p50_ms")
    rows = [["first piece p50 (ms)", *(_fmt(_get(single[c], "first_p50_ms")) for c in columns)],
            ["first piece p99 (ms)", *(_fmt(_get(single[c], "first_p99_ms")) for c in columns)],
            ["added over direct, p50 (ms)", *(_fmt(None if direct_first is None or _get(single[c], "first_p50_ms")
                                                   is None else round(single[c]["first_p50_ms"] - direct_first, 2))
                                              for c in columns)]]
    out.append(_table(f"N=1: time to first piece of {config['single']} lone streams", header, rows))

    storms = {c: results[c]["storm"] for c in columns if results[c].get("storm")}
    if storms:
        keys = ["streams", "cancelled", "upstream_closed", "stop_to_terminal_p50_ms", "stop_to_terminal_p99_ms",
                "last_stop_to_all_closed_ms", "streams_left", "server_cpu_cores"]
        title = "Cancel storm: every stream stopped after 5 pieces (the stop event, or POST .../stop)"
        out.append(_table(title,
                          ["figure", *storms], [[k, *(_fmt(storms[c].get(k)) for c in storms)] for k in keys]))
    memories = {c: results[c]["memory"] for c in columns if results[c].get("memory")}
    if memories:
        keys = ["connections", "kb_per_idle_connection", "kb_per_active_stream", "rss_base_kb", "rss_idle_kb",
                "rss_active_kb"]
        out.append(_table("Memory of the worker (RSS)", ["figure", *memories],
                          [[k, *(_fmt(memories[c].get(k)) for c in memories)] for k in keys]))
    return "\n\n".join(out)


def plots(document: dict[str, Any], folder: Path) -> list[Path]:
    """Lag p99 and pieces/s against N, one line per server and transport."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = document["results"]
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for key, ylabel, name, log in [("lag_p99_ms", "text lag p99 (ms, log scale)", "lag-p99.png", True),
                                   ("pieces_per_s", "pieces delivered per second", "pieces-per-second.png", False)]:
        fig, ax = plt.subplots(figsize=(8, 5))
        for column in _columns(results):
            points = sorted((int(n), s[key]) for n, s in results[column].get("paced", {}).items()
                            if s and "failed" not in s and s.get(key) is not None)
            if points:
                style = "--" if column == "direct" else (":" if column.startswith("seed") else "-")
                ax.plot(*zip(*points, strict=True), style, marker="o", label=column)
        if key == "pieces_per_s":
            levels = sorted({int(n) for c in results for n in results[c].get("paced", {})})
            per_stream = 1 / document["config"]["delay"]
            ax.plot(levels, [n * per_stream for n in levels], color="grey", linewidth=0.8, label="offered load")
        ax.set_xlabel("concurrent streams (N), each 50 pieces/s")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        machine = document["machine"]
        ax.set_title(f"{machine['date'][:10]}, {machine['cpu']}, {machine['pinned']}", fontsize=9)
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)
    return made


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results" / "latest.json"
    print(tables(json.loads(source.read_text())))
