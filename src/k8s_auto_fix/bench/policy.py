"""bench policy: Kyverno's policy sets as the detector, on a copy of a corpus.

1. Copy the inputs into a scratch folder (the fix writes there, never into the input).
2. Detect with every policy set at once (one batched CLI run per BATCH_SIZE objects),
   timed: the whole engine, and the time spent inside the CLI alone.
3. `fix --write --unsafe-fixes --engine kyverno` on the copy: fixes proposed,
   accepted and manual, per policy rule.
4. Detect again on the fixed copy: Kyverno's failures before and after per
   set, and every (object, rule) that fails after but not before (new failures).
5. The CLI run once per object on a few objects, for what batching saves.

Each ``--policies`` folder is one set in the report; a rule belongs to the set
whose folder holds its policy file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..contracts import Detection
from ..engines import kyverno
from ..fix.apply import run_fix, write_in_place
from ..manifests.loader import load_paths


def bench_policy(paths: Sequence[str], policy_folders: Sequence[str], checks, runner_options, settings, console: Console, sample: int = 10) -> dict:
    policies = kyverno.load_policies(policy_folders)
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-bench-policy-") as scratch:
        copies = _copy_inputs(paths, Path(scratch))
        before, timing = _timed_detect(copies, policy_folders)
        run = run_fix(copies, checks, runner_options, settings)
        write_in_place(run, copies)
        after = kyverno.detect_with_kyverno(copies, policy_folders)
        per_object = _one_object_per_run(copies, policies, sample)
        report = {
            "objects": before.objects,
            "files": before.files,
            "sets": _per_set(policies, before.detections, after.detections),
            "rules": _per_rule(policies, before.detections, after.detections, run),
            "timing": timing | per_object,
            "fix": {"changed_files": len(run.new_texts), "fixed_findings": run.fixed_findings, "problems": run.problems[:20]},
        }
    _print(report, console)
    return report


def _copy_inputs(paths: Sequence[str], scratch: Path) -> list[str]:
    copies = []
    for index, path in enumerate(paths):
        target = scratch / str(index) / Path(os.path.abspath(path)).name
        target.parent.mkdir(parents=True)
        if os.path.isdir(path):
            shutil.copytree(path, target, symlinks=True)
        else:
            shutil.copyfile(path, target)
        copies.append(str(target))
    return copies


def _timed_detect(paths: list[str], policy_folders: Sequence[str]):
    """The engine's first (cold) run, and how much of it the CLI itself took."""
    cli_before, runs_before = kyverno.STATS.cli_seconds, kyverno.STATS.runs
    start = time.perf_counter()
    result = kyverno.detect_with_kyverno(paths, policy_folders)
    engine = time.perf_counter() - start
    cli = kyverno.STATS.cli_seconds - cli_before
    objects = max(result.objects, 1)
    return result, {
        "engine_s": round(engine, 2),
        "cli_s": round(cli, 2),
        "cli_runs": kyverno.STATS.runs - runs_before,
        "batch_size": kyverno.BATCH_SIZE,
        "engine_ms_per_object": round(1000 * engine / objects, 2),
        "cli_ms_per_object": round(1000 * cli / objects, 2),
    }


def _one_object_per_run(paths: list[str], policies, sample: int) -> dict:
    """The CLI on ``sample`` objects, one run each (what an unbatched engine would pay per object)."""
    objects = [o.data for o in load_paths(paths).objects if o.pod_spec is not None][:sample]
    if not objects:
        return {}
    binary = kyverno.require_kyverno()
    start = time.perf_counter()
    for obj in objects:
        kyverno.run_cli(binary, policies, [obj])
    return {"unbatched_sample": len(objects), "unbatched_cli_ms_per_object": round(1000 * (time.perf_counter() - start) / len(objects), 1)}


def _location(d: Detection) -> tuple:
    return (d.manifest_path, d.document_index, d.list_index, d.policy_id)


def _set_of(policies, policy_id: str) -> str:
    policy = policy_id.removeprefix(kyverno.PREFIX).split("/", 1)[0]
    path = os.path.abspath(policies.files.get(policy, ""))
    for folder in policies.folders:
        root = os.path.abspath(folder)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.basename(root.rstrip(os.sep))
    return "?"


def _per_set(policies, before: list[Detection], after: list[Detection]) -> dict:
    sets: dict[str, dict] = {}
    was = {_location(d) for d in before}
    for name in [os.path.basename(os.path.abspath(f).rstrip(os.sep)) for f in policies.folders]:
        b = [d for d in before if _set_of(policies, d.policy_id) == name]
        a = [d for d in after if _set_of(policies, d.policy_id) == name]
        new = sorted({_location(d) for d in a} - was)
        sets[name] = {
            "failures_before": len(b),
            "failures_after": len(a),
            "drop_pct": round(100 * (len(b) - len(a)) / len(b), 1) if b else None,
            "new_failures": len(new),
            "new_examples": [f"{p}#{doc}: {rule}" for p, doc, _, rule in new[:10]],
        }
    return sets


def _per_rule(policies, before: list[Detection], after: list[Detection], run) -> list[dict]:
    found, left = Counter(d.policy_id for d in before), Counter(d.policy_id for d in after)
    proposed, manual, accepted, applied = Counter(), Counter(), Counter(), Counter()
    for p in run.patches:
        (manual if p.is_manual else proposed)[p.policy_id] += 1
    for v in run.verdicts:
        accepted[v.policy_id] += v.accepted
    fixed_ids = {i for edits in run.edits.values() for e in edits if e.path in run.new_texts for i in e.fixed}
    for d in run.detected.detections:
        applied[d.policy_id] += d.id in fixed_ids
    reasons: dict[str, Counter] = defaultdict(Counter)
    for p in run.patches:
        if p.is_manual:
            reasons[p.policy_id][p.explanation.split(";")[0][:140]] += 1
    rows = []
    for policy_id in sorted(found | left, key=lambda i: (-found[i], i)):
        rows.append(
            {
                "set": _set_of(policies, policy_id),
                "rule": policy_id,
                "findings": found[policy_id],
                "proposed": proposed[policy_id],
                "accepted": accepted[policy_id],
                "manual": manual[policy_id],
                "applied": applied[policy_id],
                "after": left[policy_id],
                "top_manual_reason": reasons[policy_id].most_common(1)[0][0] if reasons[policy_id] else "",
            }
        )
    return rows


def _print(report: dict, console: Console) -> None:
    table = Table(title=f"Kyverno policies on {report['objects']} objects ({report['files']} files)")
    for column in ("set", "rule", "findings", "proposed", "accepted", "manual", "applied", "after"):
        table.add_column(column, justify="left" if column in ("set", "rule") else "right")
    for row in report["rules"]:
        table.add_row(row["set"], row["rule"].removeprefix(kyverno.PREFIX), *(str(row[k]) for k in ("findings", "proposed", "accepted", "manual", "applied", "after")))
    console.print(table)
    sets = Table(title="Kyverno failures before and after `fix --write --unsafe-fixes` (on a copy)")
    for column in ("set", "before", "after", "drop", "new failures"):
        sets.add_column(column, justify="left" if column == "set" else "right")
    for name, row in report["sets"].items():
        drop = f"{row['drop_pct']}%" if row["drop_pct"] is not None else "-"
        sets.add_row(name, str(row["failures_before"]), str(row["failures_after"]), drop, str(row["new_failures"]))
    console.print(sets)
    t = report["timing"]
    console.print(
        f"time per object: engine {t['engine_ms_per_object']} ms (CLI alone {t['cli_ms_per_object']} ms, "
        f"{t['cli_runs']} CLI runs of up to {t['batch_size']} objects); one CLI run per object: "
        f"{t.get('unbatched_cli_ms_per_object', '-')} ms (sample of {t.get('unbatched_sample', 0)})"
    )
