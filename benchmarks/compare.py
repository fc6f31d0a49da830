"""One table: our figures against every peer's, from the raw reps the two harnesses wrote.

    .venv/bin/python benchmarks/compare.py [--ours benchmarks/results/asynctask.json]
                                           [--peers benchmarks/peers/results]

Each cell is the median of the reps. The last columns name the best peer for the workload
and the ratio ours / best (for latencies best / ours, so above 1 always means we are ahead).
Peers whose submit is not durable are marked; our runs fsync every submit before the ack.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: (key, label, higher is better)
WORKLOADS = (
    ("w1_per_s", "W1 submits/s, one call per task", True),
    ("w1_bulk_per_s", "W1 bulk submits/s", True),
    ("w2_per_s", "W2 drain tasks/s (wall)", True),
    ("w2_first_last_per_s", "W2 first->last tasks/s", True),
    ("w3_p50_ms", "W3 submit->start p50 ms", False),
    ("w3_p99_ms", "W3 submit->start p99 ms", False),
    ("w4_per_s", "W4 10 ms sleeps tasks/s (wall)", True),
    ("w4_first_last_per_s", "W4 first->last tasks/s", True),
    ("w5_per_s", "W5 8 producers submits/s", True),
    ("mt_per_s", "MT drain tasks/s, 100 tenants (ours only)", True),
    ("mt_over_w2", "MT / W2 (target >= 0.70; ours only)", True),
    ("rss_mib", "RSS MiB during W2 (ours: daemon; peers: workers)", False),
)


def medians(result: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, _, _ in WORKLOADS:
        values = [rep[key] for rep in result.get("reps", []) if rep.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", type=Path, default=ROOT / "benchmarks/results/asynctask.json")
    parser.add_argument("--peers", type=Path, default=ROOT / "benchmarks/peers/results")
    args = parser.parse_args()
    ours = medians(json.loads(args.ours.read_text()))
    peers = {}
    durable = {}
    for path in sorted(args.peers.glob("*.json")):
        result = json.loads(path.read_text())
        peers[result["config"]] = medians(result)
        durable[result["config"]] = bool(result.get("durable_submit"))
    names = list(peers)
    header = ["workload", "asynctask", *[n + ("" if durable[n] else "*") for n in names]]
    print("| " + " | ".join([*header, "best peer", "ours / best"]) + " |")
    print("|" + "---|" * (len(header) + 2))
    for key, label, higher in WORKLOADS:
        cells = [label, _fmt(ours.get(key))]
        cells += [_fmt(peers[n].get(key)) for n in names]
        measured = {n: peers[n][key] for n in names if key in peers[n]}
        if measured and key in ours:
            pick = max if higher else min
            best = pick(measured, key=measured.__getitem__)
            ratio = ours[key] / measured[best] if higher else measured[best] / ours[key]
            cells += [best, f"{ratio:.2f}x"]
        else:
            cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    print()
    print(r"\* the peer acknowledges a submit before it is on disk (Redis `appendonly no`).")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:,.2f}"  # a ratio (MT / W2) or a few ms
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


if __name__ == "__main__":
    main()
