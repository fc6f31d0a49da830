"""`make soak`: every check of the reliability battery with full counts, written to
benchmarks/RELIABILITY.md (date, machine, the exact command, figures and a verdict per check).

    .venv/bin/python -m benchmarks.reliability.soak [--kills 30] [--mixed-duration 180] ...

The checks (one module each in benchmarks/reliability/; short runs in tests/reliability/):
  faultshim  the LD_PRELOAD storage-fault shim builds (the other storage checks need it)
  powerloss  power cuts replayed from the daemon's write journal, durability normal and full
  killnine   kill -9 of the daemon (30+ times) and of its workers under a steady submit load
  diskfull   the home on a small tmpfs, filled up and freed (root only); then every fsync
             failing with EIO (faultshim) and recovering
  mixedload  minutes of tasks that raise, time out and os._exit; RSS, fds, threads, WAL sampled
  hostile    unread replies, pre-handshake floods, idle/half-sent connections, 20,000 queues

A check that cannot run here (no gcc, not root) is reported as skipped with the reason. The
file is written whatever the checks find; the exit status is 1 when any check found a promise
of docs/contract.md broken, so a scheduled run can alert on it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.reliability import diskfull, hostile, killnine, mixedload, powerloss, shim
from benchmarks.reliability.common import ROOT, machine

OUT = ROOT / "benchmarks" / "RELIABILITY.md"


@dataclass
class Section:
    title: str
    verdict: str  # "ok", "FINDING", "skipped", "error"
    body: str
    seconds: float = 0.0


def _powerloss(args: argparse.Namespace) -> Section:
    lib = shim.build()
    lines = []
    findings = []
    for durability in ("normal", "full"):
        result = powerloss.run(lib, durability, args.powerloss_tasks, args.powerloss_cuts)
        lines.append(f"- {result.summary()}")
        by_policy: dict[str, list[int]] = {}
        for cut in result.cuts:
            by_policy.setdefault(cut.policy, []).append(len(cut.lost))
        lines.append(
            "  - lost per cut, by policy: "
            + "; ".join(f"{p}: {v}" for p, v in sorted(by_policy.items()))
        )
        if durability == "normal" and not result.lost:
            findings.append("the positive control (normal) lost nothing: the model saw no loss")
        if durability == "full" and result.cuts_losing:
            findings.append(
                f'durability="full" lost acknowledged tasks in {result.cuts_losing} cuts'
            )
        if any(not c.started for c in result.cuts):
            findings.append(f"a daemon did not start on a rebuilt home ({durability})")
    lines += [f"- FINDING: {f}" for f in findings]
    return Section("Power loss (powerloss.py)", "FINDING" if findings else "ok", "\n".join(lines))


def _killnine(args: argparse.Namespace) -> Section:
    report = killnine.run(args.kills, args.worker_kills, args.rate)
    lines = [f"- {report.summary()}"]
    for name in ("lost", "stuck", "failed", "duplicates_unexplained", "unexpected"):
        items = getattr(report, name)
        if items:
            lines.append(f"- FINDING {name}: {len(items)}, e.g. {items[:5]}")
    if report.attempt_not_counted:
        lines.append(f"- FINDING attempt not counted: {report.attempt_not_counted[:5]}")
    if report.orphans:
        lines.append(f"- FINDING: {report.orphans} processes outlived a killed daemon")
    return Section("kill -9 (killnine.py)", "ok" if report.ok else "FINDING", "\n".join(lines))


def _storage_findings(report: diskfull.Report) -> list[str]:
    findings = []
    if not report.typed:
        findings.append(f"the refusal is not a typed storage error: {report.refusal}")
    if report.lost or report.split or report.changed_by_restart:
        findings.append(
            f"lost {report.lost[:5]}, daemon/database split {report.split[:5]}, "
            f"changed by a restart {report.changed_by_restart[:5]}"
        )
    if report.fatal:  # an I/O error: it must stop (75) for its supervisor, then serve again
        if report.exit_code != 75:
            findings.append(f"the daemon did not stop with 75 (exit code {report.exit_code})")
        if report.resumed_after_s is None:
            findings.append("service did not resume after the restart")
        if len(report.in_doubt) > 1:
            findings.append(f"{len(report.in_doubt)} requests of unknown outcome (at most 1)")
    elif report.resumed_after_s is None or not report.same_process:
        findings.append("service did not resume without a restart")
    if not report.reads_ok:
        findings.append(
            "reads failed after the restart" if report.fatal else "reads failed while full"
        )
    if report.error:
        findings.append(f"the check itself failed: {report.error}")
    return findings


def _diskfull(args: argparse.Namespace) -> Section:
    lines = []
    findings = []
    try:
        full = diskfull.run(args.tmpfs_size)
    except diskfull.MountUnavailable as exc:
        lines.append(f"- disk full: skipped: {exc}")
    else:
        lines.append(f"- disk full: {full.summary()}")
        findings += [f"disk full: {f}" for f in _storage_findings(full)]
    eio = diskfull.run_eio(shim.build())
    lines.append(f"- fsync EIO: {eio.summary()}")
    findings += [f"fsync EIO: {f}" for f in _storage_findings(eio)]
    lines += [f"- FINDING: {f}" for f in findings]
    return Section(
        "Disk full and I/O errors (diskfull.py)",
        "FINDING" if findings else "ok",
        "\n".join(lines),
    )


def _mixedload(args: argparse.Namespace) -> Section:
    report = mixedload.run(args.mixed_duration, args.rate)
    lines = [f"- {report.summary()}", "", "| metric | first | peak | final |", "|---|---|---|---|"]
    for name in mixedload.METRICS:
        first, peak, final = report.figures(name)
        lines.append(f"| {name} | {first:.1f} | {peak:.1f} | {final:.1f} |")
    if report.samples:
        lines += ["", "Samples every ~30 s (s since start: RSS MiB / fds / threads / WAL MiB):", ""]
        t0 = report.samples[0][0]
        next_at = 0.0
        for at, values in report.samples:
            if at - t0 >= next_at:
                lines.append(
                    f"- {at - t0:5.0f} s: {values['rss_mib']:.1f} / {values['fds']:.0f} / "
                    f"{values['threads']:.0f} / {values['wal_mib']:.1f}"
                )
                next_at += 30.0
    if not report.ok:
        lines.append(
            f"- FINDING: lost {report.lost[:5]}, stuck {report.stuck[:5]}, "
            f"wrong outcome {report.wrong_outcome[:5]}, daemon died {report.daemon_died}"
        )
    return Section(
        "Mixed failure load (mixedload.py)", "ok" if report.ok else "FINDING", "\n".join(lines)
    )


def _hostile(args: argparse.Namespace) -> Section:
    results = hostile.run(args.hostile_scale)
    lines = [hostile.TABLE_HEAD, *(r.row() for r in results)]
    findings = [  # the daemon's own measure: a ping also waits for a CPU on 2 busy cores
        f"{r.name}: the loop was held {r.held_max_ms:.0f} ms (docs/contract.md: 50 ms)"
        for r in results
        if r.held_max_ms > 50
    ]
    findings += [f"{r.name}: the daemon died" for r in results if not r.daemon_alive]
    findings += [f"{r.name}: {note}" for r in results for note in r.notes if "FAILED" in note]
    lines += ["", *[f"- FINDING: {f}" for f in findings]]
    return Section(
        "Hostile clients (hostile.py)", "FINDING" if findings else "ok", "\n".join(lines)
    )


CHECKS: dict[str, Callable[[argparse.Namespace], Section]] = {
    "powerloss": _powerloss,
    "killnine": _killnine,
    "diskfull": _diskfull,
    "mixedload": _mixedload,
    "hostile": _hostile,
}


def _faultshim() -> Section:
    try:
        lib = shim.build()
    except shim.ShimUnavailable as exc:
        return Section("Fault shim (faultshim.c)", "skipped", f"- skipped: {exc}")
    return Section("Fault shim (faultshim.c)", "ok", f"- built: {lib}")


def write(sections: list[Section], command: str, started: datetime.datetime, out: Path) -> None:
    total = sum(s.seconds for s in sections)
    lines = [
        "# Reliability battery: figures of the last `make soak`",
        "",
        "Written by benchmarks/reliability/soak.py; what each check does is in its module's "
        "docstring (benchmarks/reliability/), and tests/reliability/ runs each one short in "
        "`make test`. A FINDING is a promise of docs/contract.md that the daemon broke in this "
        "run.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC ({total / 60:.1f} min)",
        f"- Machine: {machine()}",
        f"- Command: {command}",
        "",
        "| check | verdict | time |",
        "|---|---|---|",
        *(f"| {s.title} | {s.verdict} | {s.seconds:.0f} s |" for s in sections),
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}: {section.verdict}", "", section.body, ""]
    out.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="daemon kill -9s (killnine)")
    parser.add_argument("--worker-kills", type=int, default=15)
    parser.add_argument("--rate", type=float, default=20.0, help="submits/s (killnine, mixed)")
    parser.add_argument("--powerloss-tasks", type=int, default=1000)
    parser.add_argument("--powerloss-cuts", type=int, default=20)
    parser.add_argument("--mixed-duration", type=float, default=180.0, help="seconds")
    parser.add_argument("--tmpfs-size", default="24M")
    parser.add_argument("--hostile-scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", choices=sorted(CHECKS), help="these checks only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    command = (
        f"`{shlex.join(['.venv/bin/python', '-m', 'benchmarks.reliability.soak', *sys.argv[1:]])}`"
    )
    if os.environ.get("MAKELEVEL"):
        command = f"`make soak`, which runs {command}"
    started = datetime.datetime.now(datetime.UTC)
    sections = [_faultshim()]
    for name in args.only or list(CHECKS):
        print(f"soak: {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            section = CHECKS[name](args)
        except shim.ShimUnavailable as exc:
            section = Section(name, "skipped", f"- skipped: {exc}")
        except Exception:  # a check that crashes is reported, and the others still run
            section = Section(name, "error", "```\n" + traceback.format_exc() + "```")
        section.seconds = time.monotonic() - t0
        print(f"soak: {name}: {section.verdict} ({section.seconds:.0f} s)\n{section.body}\n")
        sections.append(section)
        write(sections, command, started, args.out)
    print(f"soak: written to {args.out}")
    return 1 if any(s.verdict in ("FINDING", "error") for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
