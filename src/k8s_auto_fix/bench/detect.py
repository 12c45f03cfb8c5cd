"""bench detect: the built-in engine and `kube-linter lint`, timed on the same input.

Both run as separate processes, from start to exit, so interpreter start-up
and imports count the way a user feels them. Peak memory is the largest
resident set of the process tree (as wait4 reports it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..engines.kube_linter import find_kube_linter, kube_linter_targets
from ..manifests.context import ContextMode
from ..manifests.loader import iter_manifest_files


def timed_run(command: Sequence[str]) -> dict:
    """Run once; wall seconds, peak RSS in MB, exit code."""
    with tempfile.TemporaryFile() as err, open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=sink, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-500:]
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "exit": proc.returncode, "stderr": tail}


def _best(command: Sequence[str], repeat: int) -> dict:
    runs = [timed_run(command) for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r["wall_s"])
    return {**best, "runs_s": [r["wall_s"] for r in runs], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def bench_detect(paths: Sequence[str], context: ContextMode, repeat: int, with_kube_linter: bool, console: Console) -> dict:
    files = [p for p, problem in iter_manifest_files(paths) if not problem]
    total_bytes = sum(os.path.getsize(p) for p in files)
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-bench-") as scratch:
        out = os.path.join(scratch, "detections.json")
        builtin_cmd = [sys.executable, "-m", "k8s_auto_fix", "detect", *paths, "--context", context.value, "--format", "json", "--out", out]
        report: dict = {"files": len(files), "bytes": total_bytes, "context": context.value, "cores": os.cpu_count()}
        report["builtin"] = _best(builtin_cmd, repeat)
        with open(out, encoding="utf-8") as handle:
            report["builtin"]["findings"] = len(json.load(handle))

        binary = find_kube_linter() if with_kube_linter else None
        if binary:
            links = Path(scratch) / "kube-linter-input"
            links.mkdir()
            targets, _ = kube_linter_targets(paths, files, context, links)
            report["kube_linter"] = _best([binary, "lint", "--format", "json", *targets], repeat)
            report["ratio"] = round(report["kube_linter"]["wall_s"] / report["builtin"]["wall_s"], 2)
            report["memory_ratio"] = round(report["kube_linter"]["peak_rss_mb"] / report["builtin"]["peak_rss_mb"], 2)
        elif with_kube_linter:
            report["kube_linter"] = None
            report["note"] = "kube-linter not installed; only the built-in engine was timed"

    _print(report, console)
    return report


def _print(report: dict, console: Console) -> None:
    table = Table(title=f"detect on {report['files']} files ({report['bytes'] / 1e6:.1f} MB), context={report['context']}")
    for column in ("engine", "best wall s", "runs s", "peak RSS MB", "exit"):
        table.add_column(column)
    for name in ("builtin", "kube_linter"):
        run = report.get(name)
        if run:
            table.add_row(name, f"{run['wall_s']:.2f}", " ".join(f"{s:.2f}" for s in run["runs_s"]), f"{run['peak_rss_mb']:.0f}", str(run["exit"]))
    console.print(table)
    if "ratio" in report:
        console.print(f"kube-linter / builtin: wall time {report['ratio']}x, peak memory {report['memory_ratio']}x (above 1: the built-in engine is faster / smaller)")
    if report.get("note"):
        console.print(report["note"])
