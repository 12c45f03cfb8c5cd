"""The rules proposer: ask each finding's check for its fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..checks import REGISTRY
from ..checks.patching import CannotPatch
from ..checks.registry import FixContext
from ..config import FixDefaults
from ..contracts import Applicability, Detection, PatchRecord, object_digest
from ..manifests.store import ObjectStore


@dataclass
class ProposeResult:
    patches: list[PatchRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    without_fix: dict[str, int] = field(default_factory=dict)  # check -> findings it cannot fix


def _digest(obj, memo: dict[int, tuple]) -> str:
    if id(obj) not in memo:
        memo[id(obj)] = (obj, object_digest(obj.data))  # the object pins its id
    return memo[id(obj)][1]


def propose_rules(
    detections: Iterable[Detection],
    settings: FixDefaults,
    image_pins: dict[str, str] | None = None,
    store: ObjectStore | None = None,
) -> ProposeResult:
    store = store or ObjectStore()
    result = ProposeResult()
    digests: dict[int, tuple] = {}
    for detection in detections:
        check = REGISTRY.get(detection.policy_id)
        if check is None or check.fix is None:
            result.without_fix[detection.policy_id] = result.without_fix.get(detection.policy_id, 0) + 1
            continue
        obj = store.object(detection.manifest_path, detection.document_index, detection.list_index)
        ref = detection.object
        if obj is None or (obj.kind, obj.name, obj.namespace) != (ref.kind, ref.name, ref.namespace):
            result.warnings.append(f"{detection.manifest_path}: {ref.kind}/{ref.name} is no longer where detect found it; skipped")
            continue
        ctx = FixContext(
            obj=obj,
            app=store.application(detection.application, detection.manifest_path),
            container=obj.container_named(detection.container),
            message=detection.violation_text,
            settings=settings,
            image_pins=image_pins or {},
        )
        if detection.container is not None and ctx.container is None:
            result.warnings.append(f"{detection.manifest_path}: container {detection.container!r} not found; skipped")
            continue
        try:
            proposal = check.fix.build(ctx)
        except CannotPatch as err:
            proposal = None
            explanation = f"cannot patch: {err}"
        else:
            explanation = ""
        if proposal is None:
            record = PatchRecord(id=detection.id, policy_id=check.id, applicability=Applicability.MANUAL, explanation=explanation or "nothing to change")
        else:
            record = PatchRecord(
                id=detection.id,
                policy_id=check.id,
                source="rules",
                patch=proposal.ops,
                applicability=proposal.applicability or check.fix.applicability,
                explanation=proposal.explanation or check.fix.reason,
                creates=proposal.creates,
                object_digest=_digest(obj, digests),
            )
        result.patches.append(record)
    return result
