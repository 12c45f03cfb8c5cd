"""bench parity: does the built-in engine find what kube-linter finds?

Both engines run over the same paths with the same application rule, and
their findings are compared as multisets of (file, object, check) for every
check both know. With ``--reference FILE`` the other side is a JSONL file of
kube-linter findings (path, check, message) instead of a live run; such a
file names no object, so the comparison is (file, check), and since a
reference list may be partial only its checks are compared.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..checks.registry import KubeLinter
from ..checks.selection import select_checks
from ..detect import DetectOptions, detect
from ..engines.kube_linter import KubeLinterError, detect_with_kube_linter
from ..manifests.context import ContextMode

EXAMPLES_PER_CHECK = 5


class ParityError(Exception):
    pass


def _key(d, with_object: bool) -> tuple:
    path = os.path.abspath(d.manifest_path)
    if not with_object:
        return (path, d.policy_id)
    name = "" if d.object.name_is_prefix else d.object.name  # kube-linter names a generateName object ""
    return (path, d.object.kind, d.object.namespace, name, d.policy_id)


def run_parity(paths: Sequence[str], context: ContextMode, reference: Path | None, console: Console, all_checks: bool = False) -> dict:
    """The comparison on kube-linter's default checks, or on all of them."""
    # A reference file names its own checks: ours are all run, and only its are compared.
    shared_checks = [c for c in select_checks(all_checks=all_checks or reference is not None) if c.kube_linter is not KubeLinter.NONE]
    ours = detect(paths, shared_checks, DetectOptions(context=context))
    if reference is not None:
        theirs_keys, compared = _reference_keys(reference)
        ours_keys = Counter(_key(d, False) for d in ours.detections if d.policy_id in compared)
        source = f"reference {reference}"
    else:
        try:
            theirs = detect_with_kube_linter(paths, shared_checks, DetectOptions(context=context).runner)
        except KubeLinterError as err:
            raise ParityError(str(err)) from None
        theirs_keys = Counter(_key(d, True) for d in theirs.detections)
        ours_keys = Counter(_key(d, True) for d in ours.detections)
        compared = {c.id for c in shared_checks}
        source = "kube-linter"

    report = compare(ours_keys, theirs_keys, compared)
    report |= {"source": source, "context": context.value, "files": ours.files, "objects": ours.objects, "checks_compared": len(compared)}
    _print(report, console)
    return report


def _reference_keys(path: Path) -> tuple[Counter, set[str]]:
    base = path.resolve().parent.parent  # rows are relative to the corpus folder
    keys: Counter = Counter()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ParityError(f"{path}: cannot read: {err.strerror or err}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            keys[(str(base / row["path"]), row["check"])] += 1
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ParityError(f"{path}:{number}: expected a JSON object with path and check") from None
    # A reference row says "at least one finding of this check in this file".
    return Counter(set(keys)), {check for _, check in keys}


def compare(ours: Counter, theirs: Counter, checks: set[str]) -> dict:
    per_check: dict[str, dict] = {c: {"matches": 0, "misses": 0, "extras": 0, "miss_examples": [], "extra_examples": []} for c in sorted(checks)}
    with_object = any(len(k) > 2 for k in list(ours) + list(theirs))
    for key in set(ours) | set(theirs):
        check = key[-1]
        row = per_check.setdefault(check, {"matches": 0, "misses": 0, "extras": 0, "miss_examples": [], "extra_examples": []})
        matched = min(ours[key], theirs[key]) if with_object else int(ours[key] > 0 and theirs[key] > 0)
        missed = theirs[key] - matched if with_object else int(theirs[key] > 0 and ours[key] == 0)
        extra = ours[key] - matched if with_object else 0
        row["matches"] += matched
        row["misses"] += missed
        row["extras"] += extra
        if missed and len(row["miss_examples"]) < EXAMPLES_PER_CHECK:
            row["miss_examples"].append(list(key[:-1]))
        if extra and len(row["extra_examples"]) < EXAMPLES_PER_CHECK:
            row["extra_examples"].append(list(key[:-1]))
    totals = {name: sum(r[name] for r in per_check.values()) for name in ("matches", "misses", "extras")}
    return {"ok": totals["misses"] == 0 and totals["extras"] == 0, "totals": totals, "checks": per_check}


def _print(report: dict, console: Console) -> None:
    table = Table(title=f"parity with {report['source']} ({report['files']} files, context={report['context']})")
    for column in ("check", "matches", "misses", "extras"):
        table.add_column(column, justify="right" if column != "check" else "left")
    for check, row in report["checks"].items():
        style = "red" if row["misses"] or row["extras"] else None
        table.add_row(check, str(row["matches"]), str(row["misses"]), str(row["extras"]), style=style)
    totals = report["totals"]
    table.add_row("total", str(totals["matches"]), str(totals["misses"]), str(totals["extras"]), style="bold")
    console.print(table)
    for check, row in report["checks"].items():
        for label, examples in (("missed", row["miss_examples"]), ("extra", row["extra_examples"])):
            for example in examples:
                console.print(f"  {check} {label}: {' '.join(str(part) for part in example)}")
