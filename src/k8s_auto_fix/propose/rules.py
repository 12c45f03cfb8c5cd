"""The rules proposer: ask each finding's check for its fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..checks.fixes import FixOptions, fix_of, propose_fix
from ..checks.registry import Proposal, Violation
from ..contracts import Applicability, Detection, PatchRecord, Source, object_digest
from ..manifests.objects import K8sObject
from ..manifests.store import ObjectStore


@dataclass
class ProposeResult:
    patches: list[PatchRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    without_fix: Counter = field(default_factory=Counter)  # check -> findings it cannot fix


def patch_record(detection: Detection, obj: K8sObject, proposal: Proposal | None, digest: str, source: Source = Source.RULES) -> PatchRecord:
    """A proposal as the patches contract records it (a finding that no longer
    fires on its object is recorded as a manual fix with nothing to do)."""
    if proposal is None:
        return PatchRecord(id=detection.id, policy_id=detection.policy_id, applicability=Applicability.MANUAL, explanation="the finding no longer fires")
    if proposal.is_manual:
        return PatchRecord(id=detection.id, policy_id=detection.policy_id, applicability=Applicability.MANUAL, explanation=proposal.explanation)
    return PatchRecord(
        id=detection.id,
        policy_id=detection.policy_id,
        source=source,
        patch=proposal.ops,
        applicability=proposal.applicability,
        explanation=proposal.explanation,
        creates=proposal.creates,
        object_digest=digest,
    )


def propose_rules(
    detections: Iterable[Detection], options: FixOptions, store: ObjectStore | None = None, violations: Mapping[str, Violation] | None = None
) -> ProposeResult:
    """A fix for every finding a check can fix. ``violations`` (detection id ->
    violation) spares running a check again where detect just ran it."""
    store = store or ObjectStore()
    result = ProposeResult()
    digests: dict[int, tuple[K8sObject, str]] = {}  # the object pins its id
    for detection in detections:
        if fix_of(detection.policy_id) is None:
            result.without_fix[detection.policy_id] += 1
            continue
        obj = store.object_of(detection)
        if obj is None:
            ref = detection.object
            result.warnings.append(f"{detection.manifest_path}: {ref.kind}/{ref.name} is no longer where detect found it; skipped")
            continue
        if id(obj) not in digests:
            digests[id(obj)] = (obj, object_digest(obj.data))
        violation = (violations or {}).get(detection.id)
        proposal = propose_fix(detection.key, obj, store.application_of(detection), options, violation)
        result.patches.append(patch_record(detection, obj, proposal, digests[id(obj)][1]))
    return result
