"""bench fix: the fix pipeline on a corpus, timed, with its acceptance metrics.

Two timed runs in this process (both cores used by detect's workers):
``pipeline`` is detect + propose + verify (offline schema gate) + combining
each object's fixes, with no output produced; ``with diff`` also renders the
fixed text of every changed file (ruamel.yaml round trip), as `fix --diff` does.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..fix.apply import run_fix
from ..report.metrics import fix_metrics
from ..verify.external import TOOLS_BIN


@dataclass(frozen=True)
class Oracles:
    """The real tools that judge the fixed copy (each off unless asked for)."""

    rescan_kube_linter: bool = False
    checkov: bool = False
    psa_level: str | None = None  # a Pod Security level: restricted or baseline
    kubeconfig: str | None = None  # the API server for psa (default: a throwaway one)

    def __bool__(self) -> bool:
        return self.rescan_kube_linter or self.checkov or self.psa_level is not None


def bench_fix(paths: Sequence[str], checks, detect_options, settings, console: Console, oracles: Oracles = Oracles()) -> dict:
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
    if oracles:
        report["oracles"] = judge_fixed_copy(rendered, paths, checks, detect_options, oracles)
    _print(report, console)
    return report


def judge_fixed_copy(run, paths: Sequence[str], checks, detect_options, oracles: Oracles) -> dict:
    """Write every fix into a copy of the input, and let each asked-for tool judge both."""
    from .oracles import checkov_delta, fixed_tree, kube_linter_rescan, pod_security

    judged: dict = {}
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-oracles-") as scratch:
        tree = fixed_tree(run, paths, Path(scratch) / "fixed")
        if oracles.rescan_kube_linter:
            judged["kube_linter"] = kube_linter_rescan(tree, run, checks, detect_options)
        if oracles.checkov:
            checkov = shutil.which("checkov") or str(TOOLS_BIN / "checkov")
            judged["checkov"] = checkov_delta(tree, checkov) if os.path.exists(checkov) else {"error": "checkov is not installed (make test installs it)"}
        if oracles.psa_level:
            judged["pod_security"] = pod_security(tree, oracles.psa_level, oracles.kubeconfig, Path(scratch))
    return judged


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
    _print_oracles(report.get("oracles") or {}, console)
    for gate, counts in report["rejections"].items():
        for check, count in counts.items():
            examples = "; ".join(report["rejection_examples"].get(check, []))
            console.print(f"rejected by {gate}: {check} x{count}: {examples}")


def _print_oracles(oracles: dict, console: Console) -> None:
    rescan = oracles.get("kube_linter")
    if rescan:
        if "error" in rescan:
            console.print(f"kube-linter rescan: {rescan['error']}")
        else:
            console.print(
                f"kube-linter rescan of the fixed copy: {rescan['refound']} of {rescan['fixed']} fixed findings found again, "
                f"{rescan['new']} new ({rescan['before']} findings before, {rescan['after']} after)"
            )
            for label in ("refound", "new"):
                for example in rescan[f"{label}_examples"]:
                    console.print(f"  {label}: {' '.join(map(str, example))}")
    checkov = oracles.get("checkov")
    if checkov:
        if "error" in checkov:
            console.print(f"Checkov: {checkov['error']}")
        else:
            console.print(
                f"Checkov: {checkov['failed_before']} failed checks before, {checkov['failed_after']} after; newly failing "
                f"(check, resource): {checkov['newly_failing_on_existing']} on resources that were there {checkov['newly_failing_by_check']}, "
                f"{checkov['newly_failing_on_created']} on resources a fix created {checkov['on_created_by_check']}; "
                f"{len(checkov['crashed_files'])} files Checkov crashed on {checkov['crashed_files'][:5]}"
            )
            for example in checkov["newly_failing_examples"]:
                console.print(f"  newly failing: {' '.join(map(str, example))}")
    psa = oracles.get("pod_security")
    if psa:
        for side in ("before", "after"):
            row = psa[side]
            top = ", ".join(f"{rule} x{n}" for rule, n in list(row["refused_by_reason"].items())[:6])
            console.print(f"Pod Security {psa['level']} {side}: {row['admitted']} of {row['workloads']} workloads admitted; refused for: {top}")
