"""verify: every patch through the gates of the registry (gates/__init__.py).

A patch is applied to its object in memory, which makes a ``Change``; one
judging loop runs every gate over a batch of changes (gates that run an
external tool see the whole batch at once) and records each gate's result and
reasons. A patch is accepted only when every gate that ran passed. The fix
engine judges its combined changes with the same loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import yaml

from ..checks import Check
from ..contracts import Detection, PatchRecord, Reason, SchemaMode, Verdict
from ..manifests.objects import K8sObject
from ..manifests.store import ObjectStore, store_for_findings
from ..runner import RunnerOptions, executor_session, map_ordered, parallelism, pieces
from .gates import GATES
from .gates.apply import APPLY, mistyped
from .judging import Change, Judging, VerifyOptions

Judgement = tuple[dict[str, bool | None], list[Reason]]  # gate -> passed (None: not run), and why not


@dataclass
class VerifyResult:
    verdicts: list[Verdict] = field(default_factory=list)
    manual: int = 0  # patches with nothing to verify (manual fixes)


class Verifier:
    def __init__(self, checks: Sequence[Check], options: VerifyOptions = VerifyOptions(), store: ObjectStore | None = None):
        self.judging = Judging(list(checks), options, store or ObjectStore())

    @property
    def options(self) -> VerifyOptions:
        return self.judging.options

    @property
    def store(self) -> ObjectStore:
        return self.judging.store

    def verify(self, patches: Iterable[PatchRecord], detections: Iterable[Detection]) -> VerifyResult:
        by_id = {d.id: d for d in detections}
        result = VerifyResult()
        slots: list[tuple[PatchRecord, Change | Reason]] = []
        for record in patches:
            if record.is_manual:
                result.manual += 1
                continue
            detection = by_id.get(record.id)
            if detection is None:
                slots.append((record, APPLY.reason(f"no detection with id {record.id}")))
            else:
                slots.append((record, self.change_for(record, detection)))
        changes = [c for _, c in slots if isinstance(c, Change)]
        judged = iter(self.judge(changes))
        for record, change in slots:
            if isinstance(change, Change):
                gates, reasons = next(judged)
            else:
                gates, reasons = {g.name: (False if g is APPLY else None) for g in GATES}, [change]
            result.verdicts.append(self._verdict(record, change, gates, reasons))
        return result

    def change_for(self, record: PatchRecord, detection: Detection) -> Change | Reason:
        """The patch applied to its object, or why that cannot be done."""
        before = self.store.object(detection.manifest_path, detection.document_index, detection.list_index)
        if before is None:
            return APPLY.reason(f"{detection.manifest_path}: the object is no longer in the file")
        if record.object_digest and record.object_digest != self.judging.digest(before):
            return APPLY.reason(f"{detection.manifest_path}: the object changed since the patch was proposed")
        after = APPLY.apply(before, record.patch)
        if isinstance(after, Reason):
            return after
        if record.creates is not None:
            problem = mistyped(record.creates)
            if problem:
                return APPLY.reason(f"the object the patch creates is mistyped: {problem}")
        created = [K8sObject(before.path, -1, 0, record.creates)] if record.creates else []
        return Change(before, after, created, [detection], self.store.application_of(detection), record.patch)

    def judge(self, changes: Sequence[Change]) -> list[Judgement]:
        """Every gate over every change, in the registry's order. A change the
        apply gate refuses is not judged further (its other gates are None)."""
        results: list[Judgement] = [({}, []) for _ in changes]
        live = list(range(len(changes)))
        for gate in GATES:
            ran = gate.runs(self.options) and live
            found = gate.judge_all([changes[i] for i in live], self.judging) if ran else []
            for i, reasons in zip(live, found):
                results[i][0][gate.name] = not reasons
                results[i][1].extend(reasons)
            for i in range(len(changes)):
                results[i][0].setdefault(gate.name, None)
            if gate is APPLY:
                live = [i for i in live if results[i][0][gate.name]]
        for change in changes:
            self.judging.forget(change)
        return results

    def judge_one(self, change: Change) -> Judgement:
        return self.judge([change])[0]

    def _verdict(self, record: PatchRecord, change: Change | Reason, gates: dict, reasons: list[Reason]) -> Verdict:
        verdict = Verdict(
            id=record.id,
            policy_id=record.policy_id,
            accepted=passed(gates),
            gates=gates,
            applicability=record.applicability,
            patch_ops=len(record.patch),
            reasons=reasons if self.options.include_errors else None,
        )
        if self.options.include_yaml and isinstance(change, Change):
            verdict.patched_yaml = yaml.dump(change.after.data, Dumper=yaml.CSafeDumper, sort_keys=False)
        return verdict


def passed(gates: dict[str, bool | None]) -> bool:
    """Every gate that ran passed."""
    return all(ok is not False for ok in gates.values())


# --- every core -------------------------------------------------------------------------

_pool_state: tuple | None = None


def verify_parallel(
    checks: Sequence[Check], options: VerifyOptions, patches: list[PatchRecord], detections: list[Detection], jobs: int = 0, runner: RunnerOptions | None = None
) -> VerifyResult:
    """Verify on every core: patches are cut into slices (a large application's
    patches over several slices), each worker loads the applications its slice
    needs. Verdicts come back in the order of the patches. With a Ray runner
    the slices are Ray tasks."""
    import multiprocessing
    import os

    on_ray = runner is not None and runner.executor == "ray"
    jobs = jobs or (runner.jobs if runner else 0) or os.cpu_count() or 1
    external = options.schema is not SchemaMode.OFFLINE or options.rescan  # external tools run once, on the whole batch
    if on_ray and options.policies:
        external = True  # policy engines (Kyverno, the VAP server) run where the driver has them, not on every node
    if external or (not on_ray and (jobs < 2 or len(patches) < 200)) or not patches:
        return Verifier(checks, options).verify(patches, detections)
    by_id = {d.id: d for d in detections}
    order = sorted(range(len(patches)), key=lambda i: ((by_id.get(patches[i].id) or detections[0]).application or "", i))
    if on_ray:
        with executor_session(runner):
            size = -(-len(order) // parallelism(runner))  # one slice per CPU: a big application is loaded at most once each
            slices = [order[start : start + size] for start in range(0, len(order), size)]
            items = [([patches[i] for i in indices], [by_id[patches[i].id] for i in indices if patches[i].id in by_id]) for indices in slices]
            parts = []
            for indices, part in zip(slices, map_ordered(_verify_group, (checks, options, uuid.uuid4().hex), items, runner)):
                parts.append((list(zip([i for i in indices if not patches[i].is_manual], part.verdicts)), part.manual))
    else:
        size = -(-len(order) // jobs)  # one slice per worker: a big application is loaded at most once each
        slices = [order[start : start + size] for start in range(0, len(order), size)]
        global _pool_state
        _pool_state = (checks, options, patches, by_id)
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                parts = pool.map(_verify_slice, slices, chunksize=1)
        finally:
            _pool_state = None
    result = VerifyResult()
    verdicts: list[tuple[int, Verdict]] = []
    for found, manual in parts:
        result.manual += manual
        verdicts += found
    result.verdicts = [v for _, v in sorted(verdicts, key=lambda pair: pair[0])]
    return result


def _verify_slice(indices: list[int]) -> tuple[list[tuple[int, Verdict]], int]:
    checks, options, patches, by_id = _pool_state
    records = [patches[i] for i in indices]
    result = Verifier(checks, options).verify(records, [by_id[r.id] for r in records if r.id in by_id])
    # verify() keeps the order of its input: pair the verdicts back with their patches.
    with_verdict = [i for i in indices if not patches[i].is_manual]
    return list(zip(with_verdict, result.verdicts)), result.manual


def _verify_group(shared: tuple, item: tuple) -> VerifyResult:
    checks, options, pass_id = shared
    patches, detections = item
    return Verifier(checks, options, store_for_findings(detections, pass_id)).verify(patches, detections)


def verify_stream(
    checks: Sequence[Check], options: VerifyOptions, patches: Iterable[PatchRecord], detections: Iterable[Detection], runner: RunnerOptions
) -> Iterator[VerifyResult]:
    """Verify streams of patches and detections, one application at a time (a
    large one in pieces), as propose and detect write them in JSON Lines
    (patches in the order of their detections), on every worker: each piece's
    verdicts as they are done, in order."""
    with executor_session(runner):
        workers = parallelism(runner)
        groups = (list(group) for _, group in groupby(detections, key=lambda d: d.application_key))
        items = (piece for mine, group in _aligned(patches, groups) for piece in _pieces_with_detections(mine, group, workers))
        yield from map_ordered(_verify_group, (checks, options, uuid.uuid4().hex), items, runner)


def _pieces_with_detections(patches: list[PatchRecord], detections: list[Detection], workers: int) -> Iterator[tuple[list[PatchRecord], list[Detection]]]:
    """An application's patches in pieces, each with the detections it patches (a patch is judged with its own detection)."""
    by_id = {d.id: d for d in detections}
    for piece in pieces(patches, workers):
        yield piece, [by_id[p.id] for p in piece if p.id in by_id]


class PatchOrderError(Exception):
    pass


def _aligned(patches: Iterable[PatchRecord], groups: Iterable[list[Detection]]) -> Iterator[tuple[list[PatchRecord], list[Detection]]]:
    """Each application's patches with its detections (a merge of two ordered streams: nothing is held but one application)."""
    remaining = iter(patches)
    head = next(remaining, None)
    for group in groups:
        ids = {d.id for d in group}
        mine = []
        while head is not None and head.id in ids:
            mine.append(head)
            head = next(remaining, None)
        if mine:
            yield mine, group
    if head is not None:
        raise PatchOrderError(
            f"the patch for {head.id} ({head.policy_id}) is not in the order of the detections, or its detection is missing; "
            "streamed verification needs the patches in the order propose writes them (or give both files as JSON arrays)"
        )
