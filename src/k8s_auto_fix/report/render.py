"""Human and machine renderings of detect results."""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..checks.registry import Check
from ..contracts import dumps
from .sarif import to_sarif


def payload(fmt: str, result, checks: Sequence[Check]):
    if fmt == "sarif":
        return to_sarif(result.detections, result.problems, checks)
    return [d.model_dump(by_alias=True, mode="json") for d in result.detections]


def print_json(data) -> None:
    sys.stdout.write(dumps(data))


def summary_line(result) -> str:
    errors = len(result.errors)  # a broken file, or one broken object of a file
    skipped = f", {errors} input error(s)" if errors else ""
    return (
        f"{len(result.detections)} finding(s) in {result.objects} object(s) "
        f"from {result.files} file(s){skipped}"
    )


SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}


def print_table(result, console: Console) -> None:
    """Findings grouped by file, as compilers print them: a line with the
    place, severity, check and object, then the message below it, indented.
    Two or three lines a finding at 80 columns, with nothing cut."""
    if result.detections:
        current = None
        for d in sorted(result.detections, key=lambda d: (d.manifest_path, d.line or 0, d.column or 0, d.policy_id)):
            if d.manifest_path != current:
                current = d.manifest_path
                console.print(Text(d.manifest_path, style="bold underline"), soft_wrap=True)
            place = f"{d.line}:{d.column or 1}" if d.line else "-"
            target = f"{d.object.kind}/{d.object.name}" + (f" [{d.container}]" if d.container else "")
            head = Text.assemble(
                f"  {place:<8} ", (f"{d.severity.value:<8} ", SEVERITY_STYLE.get(d.severity.value, "")), (d.policy_id, "bold"), f"  {target}"
            )
            head.truncate(console.width, overflow="ellipsis")
            console.print(head, no_wrap=True)
            message = textwrap.fill(d.violation_text, console.width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
            console.print(Text(message), soft_wrap=True)
        by_check = Counter(d.policy_id for d in result.detections)
        console.print(", ".join(f"{check}: {n}" for check, n in by_check.most_common()))
    console.print(summary_line(result))


def print_checks(checks: Sequence[Check], fmt: str, console: Console) -> None:
    if fmt == "json":
        print_json(
            [
                {
                    "id": c.id,
                    "severity": c.severity.value,
                    "enabled_by_default": c.enabled_by_default,
                    "kube_linter": c.kube_linter.value,
                    "template": c.template,
                    "params": c.params,
                    "kinds": list(c.kinds.names),
                    "has_fix": c.fix is not None,
                    "description": c.description,
                    "remediation": c.remediation,
                }
                for c in checks
            ]
        )
        return
    table = Table(header_style="bold", expand=True)
    for column in ("check", "severity", "default", "kube-linter"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", overflow="fold")
    for c in checks:
        table.add_row(c.id, c.severity.value, "yes" if c.enabled_by_default else "no", c.kube_linter.value, escape(c.description))
    console.print(table)


def print_inputs_summary(summaries, console: Console) -> None:
    table = Table(title="inputs")
    for column in ("line", "input", "status", "findings", "accepted", "why"):
        table.add_column(column, justify="right" if column in ("line", "findings", "accepted") else "left")
    for s in summaries:
        why = s.message or (f"{len(s.problems)} unreadable file(s) or object(s)" if s.problems else "")
        table.add_row(str(s.line), s.input, s.status, str(s.findings), str(s.accepted), why)
    console.print(table)


def print_run_summary(result: dict, out, head: int, console: Console) -> None:
    m = result["metrics"]
    table = Table(title=f"k8s-auto-fix run -> {out}")
    for column in ("findings", "patches", "verified", "accepted", "auto-fix rate", "manual", "queued"):
        table.add_column(column, justify="right")
    table.add_row(
        str(m["detections"]), str(m["patches"]), str(m["verified"]), str(m["accepted"]),
        f"{(m['auto_fix_rate'] or 0) * 100:.1f}%", str(m["manual"]), str(result["queue"]["total"]),
    )
    console.print(table)
    queue = Table(title="head of the queue")
    for column in ("#", "score", "check", "object", "file", "kev"):
        queue.add_column(column, overflow="fold", no_wrap=column in ("#", "score", "kev"))
    detection_of = {d.id: d for d in result.get("detections") or ()}
    for rank, item in enumerate(result["schedule"][:head], 1):
        d = detection_of.get(item.id)
        target = f"{d.object.kind}/{d.object.name}" + (f" [{d.container}]" if d.container else "") if d else item.id
        queue.add_row(str(rank), f"{item.score:.4f}", item.policy_id, escape(target), escape(d.where) if d else "", "yes" if item.kev else "")
    console.print(queue)
    console.print(f"report: {out / 'report.html'}")
