"""bench fix: the fix pipeline on a corpus, timed, with its acceptance metrics.

Two timed runs in this process (both cores used by detect's workers):
``pipeline`` is detect + propose + verify (offline schema gate) + combining
each object's fixes, with no output produced; ``with diff`` also renders the
fixed text of every changed file (ruamel.yaml round trip), as `fix --diff` does.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from ..fix.apply import run_fix
from ..report.metrics import fix_metrics


def bench_fix(paths: Sequence[str], checks, detect_options, settings, console: Console) -> dict:
    start = time.perf_counter()
    run = run_fix(paths, checks, detect_options, dataclasses.replace(settings, render=False))
    pipeline = time.perf_counter() - start
    start = time.perf_counter()
    rendered = run_fix(paths, checks, detect_options, settings)
    with_diff = time.perf_counter() - start
    metrics = fix_metrics(run.patches, run.verdicts, run.detected.detections)
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    report = {
        "files": run.detected.files,
        "objects": run.detected.objects,
        "findings": len(run.detected.detections),
        "context": detect_options.context.value,
        "applicability": sorted(a.value for a in settings.allowed),
        "pipeline_s": round(pipeline, 2),
        "with_diff_s": round(with_diff, 2),
        "patches_verified_per_s": round(metrics["verified"] / pipeline, 1) if pipeline else None,
        "fixed_findings": rendered.fixed_findings,
        "changed_files": len(rendered.new_texts),
        "peak_rss_mb": round(peak / 1024, 1),
        **metrics,
    }
    _print(report, console)
    return report


def _print(report: dict, console: Console) -> None:
    console.print(
        f"fix on {report['files']} files ({report['objects']} objects, {report['findings']} findings), "
        f"context={report['context']}, applying {'+'.join(report['applicability'])} fixes"
    )
    console.print(
        f"pipeline (detect+propose+verify): {report['pipeline_s']} s; with diff rendering: {report['with_diff_s']} s; "
        f"{report['patches_verified_per_s']} patches verified/s; peak RSS {report['peak_rss_mb']} MB"
    )
    console.print(
        f"patches: {report['patches']} proposed, {report['manual']} manual, {report['verified']} verified, "
        f"{report['accepted']} accepted ({(report['acceptance_rate'] or 0) * 100:.2f}%), median {report['median_patch_ops']} ops; "
        f"{report['fixed_findings']} findings fixed in {report['changed_files']} files"
    )
    console.print(
        f"auto-fix rate: {report['accepted']} accepted fixes / {report['findings_with_fix']} findings of checks with a fix = "
        f"{(report['auto_fix_rate'] or 0) * 100:.1f}%"
    )
    gates = sorted(report["rejections"])
    table = Table(title="per check (turned away: by gate)")
    for column in ("check", "findings", "verified", "accepted", "manual", *gates):
        table.add_column(column, justify="left" if column == "check" else "right")
    for check, row in report["per_check"].items():
        turned = [str(report["rejections"][g].get(check, "")) for g in gates]
        table.add_row(check, str(row.get("findings", 0)), str(row.get("verified", 0)), str(row.get("accepted", 0)), str(row.get("manual", 0)), *turned)
    console.print(table)
    for gate, counts in report["rejections"].items():
        for check, count in counts.items():
            examples = "; ".join(report["rejection_examples"].get(check, []))
            console.print(f"rejected by {gate}: {check} x{count}: {examples}")
