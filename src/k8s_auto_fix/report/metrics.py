"""Metrics of the fix stage: acceptance per check, rejections per gate, patch size."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence

from ..checks.aliases import normalise
from ..checks.fixes import fix_of
from ..contracts import Applicability, Detection, PatchRecord, Verdict
from ..verify.gates import GATE_NAMES


def fix_metrics(patches: Sequence[PatchRecord], verdicts: Sequence[Verdict], detections: Sequence[Detection] = ()) -> dict:
    """Acceptance per check, what each gate turned away per check (rejected
    patches, and fixes made manual before verification), and the auto-fix rate:
    accepted fixes over the findings of checks that have a mechanical fix."""
    per_check: dict[str, Counter] = defaultdict(Counter)
    rejections: dict[str, Counter] = defaultdict(Counter)  # gate -> check -> count
    reasons: dict[str, list[str]] = defaultdict(list)
    for d in detections:
        per_check[d.policy_id]["findings"] += 1
    for verdict in verdicts:
        row = per_check[verdict.policy_id]
        row["verified"] += 1
        row["accepted"] += verdict.accepted
        if verdict.accepted:
            continue
        rejections[first_failed_gate(verdict)][verdict.policy_id] += 1
        if verdict.errors and len(reasons[verdict.policy_id]) < 3:
            reasons[verdict.policy_id].append(verdict.errors[0])
    for patch in patches:
        if patch.is_manual:
            per_check[patch.policy_id]["manual"] += 1
        if patch.refused_by:
            rejections[patch.refused_by][patch.policy_id] += 1
            if len(reasons[patch.policy_id]) < 3:
                reasons[patch.policy_id].append(f"{patch.refused_by}: {patch.explanation}")
    accepted = sum(v.accepted for v in verdicts)
    fixable = sum(1 for d in detections if has_mechanical_fix(d.policy_id))
    ops = [v.patch_ops for v in verdicts if v.patch_ops]
    return {
        "patches": len(patches),
        "verified": len(verdicts),
        "accepted": accepted,
        "acceptance_rate": round(accepted / len(verdicts), 5) if verdicts else None,
        "findings_with_fix": fixable,
        "auto_fix_rate": round(accepted / fixable, 5) if fixable else None,
        "manual": sum(1 for p in patches if p.is_manual),
        "median_patch_ops": statistics.median(ops) if ops else 0,
        "per_check": {check: dict(counts) for check, counts in sorted(per_check.items())},
        "rejections": {gate: dict(counts) for gate, counts in rejections.items()},
        "rejection_examples": dict(reasons),
    }


def has_mechanical_fix(check_id: str) -> bool:
    fix = fix_of(check_id)
    return fix is not None and fix.applicability is not Applicability.MANUAL


def first_failed_gate(verdict: Verdict) -> str:
    return verdict.first_failed_gate() or "unknown"


def pipeline_metrics(detections: Sequence, patches: Sequence[PatchRecord], verdicts: Sequence[Verdict]) -> dict:
    """metrics.json: the seed's KPIs, a per-check table, and model usage."""
    fix = fix_metrics(patches, verdicts)
    failed = Counter(first_failed_gate(v) for v in verdicts if not v.accepted)
    per_check: dict[str, Counter] = defaultdict(Counter)
    for d in detections:
        per_check[normalise(d.policy_id)]["detections"] += 1
    for check, row in fix["per_check"].items():
        per_check[normalise(check)].update(row)
    usage = Counter()
    for p in patches:
        for key, value in (p.usage or {}).items():
            if isinstance(value, (int, float)):
                usage[key] += value
    return {
        "detections": len(detections),
        "patches": fix["patches"],
        "verified": fix["verified"],
        "accepted": fix["accepted"],
        "auto_fix_rate": round(fix["accepted"] / len(detections), 5) if detections else None,
        "acceptance_rate": fix["acceptance_rate"],
        "median_patch_ops": fix["median_patch_ops"],
        "manual": fix["manual"],
        **{f"failed_{gate}": failed.get(gate, 0) for gate in GATE_NAMES},
        "per_check": {check: dict(row) for check, row in sorted(per_check.items())},
        "model_usage": {k: round(v, 3) if isinstance(v, float) else v for k, v in usage.items()} or None,
    }
