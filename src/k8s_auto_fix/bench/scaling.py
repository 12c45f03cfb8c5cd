"""bench scaling: `fix` on one `kind: List` of 1x, 2x and 4x items, to show its cost grows linearly.

Each size is a generated List of Deployments (each with the findings a bare
Deployment has), fixed the way `fix --diff` does it (detect, propose, verify,
render, diff) in this process, one application on one core. The report gives
the CPU seconds per size, per item, and the ratio to the first size: linear
cost is a ratio close to the size factor.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console

from ..fix.apply import run_fix, unified_diff


def deployment_list(items: int) -> str:
    """A `kind: List` of ``items`` Deployments, in block style."""
    parts = ["apiVersion: v1\nkind: List\nitems:\n"]
    for i in range(items):
        parts.append(
            f"- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: app-{i}\n    namespace: ns-{i % 7}\n"
            f"  spec:\n    replicas: 2\n    selector:\n      matchLabels:\n        app: app-{i}\n"
            f"    template:\n      metadata:\n        labels:\n          app: app-{i}\n"
            "      spec:\n        containers:\n        - name: app\n          image: nginx:1.25\n"
            "          ports:\n          - containerPort: 80\n"
        )
    return "".join(parts)


def fix_list(path: str, checks, settings) -> tuple[int, int]:
    """`fix --diff` on one file, in this process: (fixed findings, diff lines)."""
    from ..runner import RunnerOptions

    run = run_fix([path], checks, RunnerOptions(jobs=1), settings)
    return run.fixed_findings, unified_diff(run).count("\n")


def bench_scaling(items: int, factors: list[int], checks, settings, console: Console) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-scaling-") as scratch:
        for factor in factors:
            path = Path(scratch) / f"list-{factor}.yaml"
            path.write_text(deployment_list(items * factor), encoding="utf-8")
            cpu, wall = time.process_time(), time.perf_counter()
            fixed, diff_lines = fix_list(str(path), checks, settings)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            rows.append({"items": items * factor, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "fixed_findings": fixed, "diff_lines": diff_lines})
    base = rows[0]["cpu_s"] or 1e-9
    for row, factor in zip(rows, factors):
        row["cpu_ratio"] = round(row["cpu_s"] / base, 2)
        row["factor"] = factor
        row["ms_per_item"] = round(1000 * row["cpu_s"] / row["items"], 2)
        console.print(
            f"{row['items']:>7} items: {row['cpu_s']:>7} s CPU ({row['wall_s']} s wall), {row['ms_per_item']} ms/item, "
            f"x{row['cpu_ratio']} for x{factor} items; {row['fixed_findings']} findings fixed, {row['diff_lines']} diff lines",
            soft_wrap=True,
        )
    return {"items": items, "factors": factors, "runs": rows}
