"""The rules proposer: ask each finding's check for its fix."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import groupby

from ..checks.fixes import FixOptions, fix_of, propose_fix
from ..checks.registry import Proposal, Violation
from ..contracts import Applicability, Detection, PatchRecord, Source, Verdict, object_digest
from ..manifests.context import Application
from ..manifests.objects import K8sObject
from ..manifests.store import ObjectStore, store_for_findings
from ..patch import PATCH_ERRORS, apply_patch
from ..runner import RunnerOptions, executor_session, map_ordered, parallelism, pieces
from ..verify.gates.runnability import RUNNABILITY
from ..verify.judging import Change, Judging, VerifyOptions


@dataclass
class ProposeResult:
    patches: list[PatchRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    without_fix: Counter = field(default_factory=Counter)  # check -> findings it cannot fix


def patch_record(
    detection: Detection, obj: K8sObject, proposal: Proposal | None, digest: str, source: Source = Source.RULES, refused_by: str | None = None
) -> PatchRecord:
    """A proposal as the patches contract records it (a finding that no longer
    fires on its object is recorded as a manual fix with nothing to do)."""
    if proposal is None:
        return PatchRecord(id=detection.id, policy_id=detection.policy_id, applicability=Applicability.MANUAL, explanation="the finding no longer fires")
    if proposal.is_manual:
        return PatchRecord(
            id=detection.id, policy_id=detection.policy_id, applicability=Applicability.MANUAL, explanation=proposal.explanation, refused_by=refused_by
        )
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
    detections: Iterable[Detection],
    options: FixOptions,
    store: ObjectStore | None = None,
    violations: Mapping[str, Violation] | None = None,
    runnability: bool = True,
) -> ProposeResult:
    """A fix for every finding a check can fix. A fix the runnability gate
    refuses is recorded as manual, with the gate's reason (``runnability``
    False leaves that to a verification that follows: see ``as_manual``).
    ``violations`` (detection id -> violation) spares running a check again
    where detect just ran it."""
    store = store or ObjectStore()
    judging = Judging([], VerifyOptions(image_facts=options.facts), store)
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
        app = store.application_of(detection)
        proposal = propose_fix(detection.key, obj, app, options, violation)
        refusals = unrunnable(proposal, detection, obj, app, judging) if runnability else []
        if refusals:
            proposal = Proposal.manual("; ".join(refusals))
        result.patches.append(patch_record(detection, obj, proposal, digests[id(obj)][1], refused_by=RUNNABILITY.name if refusals else None))
    return result


def propose_distributed(detections: list[Detection], options: FixOptions, runner: RunnerOptions) -> ProposeResult:
    """``propose_rules`` on the runner's executor (Ray tasks): the detections,
    grouped by application, cut into one slice per CPU (each slice loads the
    applications it needs once), each proposed on its own (a fix depends only on
    its finding's object and application), put back in order: the same patches."""
    order = sorted(range(len(detections)), key=lambda i: (detections[i].application_key, i))
    result = ProposeResult()
    with executor_session(runner):
        size = max(1, -(-len(order) // parallelism(runner)))
        slices = [order[start : start + size] for start in range(0, len(order), size)]
        parts = list(map_ordered(_propose_group, (options, uuid.uuid4().hex), ([detections[i] for i in s] for s in slices), runner))
    for part in parts:
        result.warnings += part.warnings
        result.without_fix.update(part.without_fix)
        result.patches += part.patches
    rank = {d.id: n for n, d in enumerate(detections)}
    result.patches.sort(key=lambda p: rank[p.id])
    return result


def propose_stream(detections: Iterable[Detection], options: FixOptions, runner: RunnerOptions) -> Iterator[ProposeResult]:
    """``propose_rules`` over a stream of detections, one application at a time
    (consecutive detections of one application, as detect's JSON Lines hold
    them; a large one in pieces), on every worker: each result as it is done,
    in input order."""
    with executor_session(runner):
        workers = parallelism(runner)
        groups = (piece for _, group in groupby(detections, key=lambda d: d.application_key) for piece in pieces(list(group), workers))
        yield from map_ordered(_propose_group, (options, uuid.uuid4().hex), groups, runner)


def _propose_group(shared: tuple[FixOptions, str], detections: list[Detection]) -> ProposeResult:
    options, pass_id = shared
    return propose_rules(detections, options, store_for_findings(detections, pass_id))


def as_manual(record: PatchRecord, verdict: Verdict) -> PatchRecord:
    """A patch the runnability gate rejected, as the manual fix it is, with the gate's reasons."""
    reasons = "; ".join(r.message for r in verdict.reasons or [] if r.gate == RUNNABILITY.name)
    return record.model_copy(update={"patch": [], "creates": None, "applicability": Applicability.MANUAL, "explanation": reasons, "refused_by": RUNNABILITY.name})


def unrunnable(proposal: Proposal | None, detection: Detection, obj: K8sObject, app: Application, judging: Judging) -> list[str]:
    """Why the proposal would stop the workload, by the runnability gate (empty: it would not)."""
    if proposal is None or proposal.is_manual:
        return []
    try:
        after = obj.with_data(apply_patch(obj.data, proposal.ops))
    except PATCH_ERRORS:
        return []  # the apply gate reports it
    created = [K8sObject(obj.path, -1, 0, proposal.creates)] if proposal.creates else []
    return [r.message for r in RUNNABILITY.judge(Change(obj, after, created, [detection], app, proposal.ops), judging)]
