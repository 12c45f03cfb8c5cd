"""verify: every patch through the gates of DESIGN.md section 6.

1. apply      the patch applies (RFC 6902, `jsonpatch`), its paths exist, it changes something
2. policy     the targeted finding is gone from the patched object
3. regression the whole check suite finds nothing on it that it did not find before
4. schema     strict schema validation finds no error the original did not have
5. safety     no invariant of ``safety.py`` is broken
6. rescan     (optional) the real kube-linter agrees the finding is gone

A patch is accepted only when every gate that ran passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import jsonpatch
import jsonpointer
import yaml

from ..checks import REGISTRY, Check
from ..contracts import Detection, PatchRecord, Verdict, object_digest
from ..engines.builtin import check_object
from ..manifests.context import Application
from ..manifests.objects import K8sObject
from ..manifests.store import ObjectStore
from . import safety
from .schema import DEFAULT_KUBE_VERSION, SchemaValidator

FindingKey = tuple[str, str | None, str]  # check, container, message
_VALIDATORS: dict[tuple, SchemaValidator] = {}
# What a patch that does not fit its object raises while being applied.
PATCH_ERRORS = (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError, IndexError)


@dataclass(frozen=True)
class VerifyOptions:
    schema: str = "offline"  # offline | kubectl-validate | server
    kube_version: str = DEFAULT_KUBE_VERSION
    crd_paths: tuple[str, ...] = ()
    rescan: str | None = None  # "kube-linter"
    include_errors: bool = True
    include_yaml: bool = False  # patched_yaml: the patched object as YAML (large on big inputs)


@dataclass
class VerifyResult:
    verdicts: list[Verdict] = field(default_factory=list)
    manual: int = 0  # patches with nothing to verify (manual fixes)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    """A patch applied in memory, waiting for the batch gates (schema modes, rescan)."""

    verdict: Verdict
    record: PatchRecord
    detection: Detection
    before: K8sObject
    after: K8sObject
    created: K8sObject | None
    errors: list[str]


class Verifier:
    def __init__(self, checks: Sequence[Check], options: VerifyOptions = VerifyOptions(), store: ObjectStore | None = None):
        self.checks = list(checks)
        self.options = options
        self.store = store or ObjectStore()
        self._schema: SchemaValidator | None = None
        self._record_of: dict[int, PatchRecord] = {}
        self._cache: dict[tuple, object] = {}  # per original object: its findings, its schema errors

    # --- public --------------------------------------------------------------

    def verify(self, patches: Iterable[PatchRecord], detections: Iterable[Detection]) -> VerifyResult:
        by_id = {d.id: d for d in detections}
        result = VerifyResult()
        candidates: list[_Candidate] = []
        patches = list(patches)
        position = {id(record): i for i, record in enumerate(patches)}
        for record in patches:
            if not record.patch and record.creates is None:
                result.manual += 1
                continue
            detection = by_id.get(record.id)
            if detection is None:
                result.verdicts.append(self._rejected(record, [f"no detection with id {record.id}"]))
                continue
            candidate = self._apply(record, detection)
            if isinstance(candidate, Verdict):
                result.verdicts.append(candidate)
            else:
                candidates.append(candidate)
        self._schema_gate(candidates)
        if self.options.rescan:
            from .external import rescan_with_kube_linter

            rescan_with_kube_linter(candidates)
        result.verdicts.extend(self._finish(c) for c in candidates)
        result.verdicts.sort(key=lambda v: position[id(self._record_of[id(v)])])
        return result

    # --- gates ---------------------------------------------------------------

    def _apply(self, record: PatchRecord, detection: Detection) -> _Candidate | Verdict:
        before = self.store.object(detection.manifest_path, detection.document_index, detection.list_index)
        if before is None:
            return self._rejected(record, [f"{detection.manifest_path}: the object is no longer in the file"])
        if record.object_digest and record.object_digest != self._digest(before):
            return self._rejected(record, [f"{detection.manifest_path}: the object changed since the patch was proposed"])
        verdict = self._new_verdict(record)
        try:
            patched = apply_patch(before.data, record.patch)
        except PATCH_ERRORS as err:
            return self._rejected(record, [f"apply: {err}"], verdict)
        if patched == before.data and record.creates is None:
            return self._rejected(record, ["apply: the patch changes nothing"], verdict)
        verdict.ok_apply = True
        after = K8sObject(before.path, before.document_index, before.line, patched, before.list_index)
        created = K8sObject(before.path, -1, 0, record.creates) if record.creates else None
        app = self.store.application(detection.application, detection.manifest_path)
        errors = self.judge(verdict, before, after, created, detection, app, record.patch)
        return _Candidate(verdict, record, detection, before, after, created, errors)

    def judge(
        self,
        verdict: Verdict,
        before: K8sObject,
        after: K8sObject,
        created: K8sObject | None,
        detection: Detection,
        app: Application,
        ops: list[dict],
        schema: bool = False,
    ) -> list[str]:
        """The policy, regression and safety gates (and the offline schema
        gate when ``schema``) for one change; fills ``verdict``, returns reasons."""
        errors: list[str] = []
        check = REGISTRY.get(detection.policy_id)
        checks = [*self.checks, *([check] if check and check not in self.checks else [])]
        context = self._with(app, before, after, created)
        # A patch inside one container leaves the others as they were (they
        # are the very same objects): only its containers are checked again.
        scope = None if created is not None else touched_containers(before, ops, detection.container)
        findings_after = self._findings(_only_containers(after, scope), context, checks)
        if scope is None:
            findings_before = self._before(before, app, checks)
        else:
            findings_before = self._findings(_only_containers(before, scope), app, checks)
        verdict.ok_policy = check is not None and (detection.policy_id, detection.container, detection.violation_text) not in findings_after
        if not verdict.ok_policy:
            errors.append(f"policy: {detection.policy_id} still fires: {detection.violation_text}")
        new = findings_after - findings_before
        if created is not None:
            new |= self._findings(created, context, self.checks)
        verdict.ok_regression = not new
        errors += [f"regression: {c}: {m}" for c, _, m in sorted(new, key=str)]
        broken = safety.violations(before, after, [detection.policy_id])
        verdict.ok_safety = not broken
        errors += [f"safety: {b}" for b in broken]
        if schema:
            new_schema = self.new_schema_errors(before, after, created, ops)
            verdict.ok_schema = not new_schema
            errors += [f"schema: {e}" for e in new_schema]
        return errors

    def judge_combined(
        self,
        before: K8sObject,
        after: K8sObject,
        created: list[K8sObject],
        detections: Sequence[Detection],
        app: Application,
        ops: list[dict],
    ) -> list[str]:
        """The gates for several fixes of one object applied together: every
        targeted finding gone, nothing new, no new schema error, no broken invariant."""
        targeted = {d.policy_id: REGISTRY[d.policy_id] for d in detections}
        checks = [*self.checks, *(c for c in targeted.values() if c not in self.checks)]
        context = app.with_extra(created) if created else app
        findings = self._findings(after, context, checks)
        errors = [f"policy: {d.policy_id} still fires: {d.violation_text}" for d in detections if (d.policy_id, d.container, d.violation_text) in findings]
        new = findings - self._before(before, app, checks)
        for obj in created:
            new |= self._findings(obj, context, self.checks)
        errors += [f"regression: {c}: {m}" for c, _, m in sorted(new, key=str)]
        errors += [f"safety: {b}" for b in safety.violations(before, after, {d.policy_id for d in detections})]
        errors += [f"schema: {e}" for e in self._validator().new_errors(before.data, after.data, ops)]
        for obj in created:
            errors += [f"schema: {e}" for e in self._validator().errors(obj.data)]
        return errors

    def new_schema_errors(self, before: K8sObject, after: K8sObject, created: K8sObject | None, ops: list[dict]) -> list[str]:
        new = self._validator().new_errors(before.data, after.data, ops)
        return new + (self._validator().errors(created.data) if created is not None else [])

    def _schema_gate(self, candidates: list[_Candidate]) -> None:
        if self.options.schema == "offline":
            for c in candidates:
                new = self.new_schema_errors(c.before, c.after, c.created, c.record.patch)
                c.verdict.ok_schema = not new
                c.errors += [f"schema: {e}" for e in new]
        else:
            from .external import schema_gate

            schema_gate(candidates, self.options, self._crds())

    def _finish(self, c: _Candidate) -> Verdict:
        v = c.verdict
        v.accepted = v.ok_apply and v.ok_policy and v.ok_regression and v.ok_schema and v.ok_safety and v.ok_rescan is not False
        if self.options.include_yaml:
            v.patched_yaml = yaml.dump(c.after.data, Dumper=yaml.CSafeDumper, sort_keys=False)
        if self.options.include_errors:
            v.errors = c.errors
        return v

    # --- helpers -------------------------------------------------------------

    def _validator(self) -> SchemaValidator:
        if self._schema is None:
            crds = self._crds()
            key = (self.options.kube_version, tuple(sorted(object_digest(c) for c in crds)))
            if key not in _VALIDATORS:  # one per process and CRD set: their compiled schemas are reused
                _VALIDATORS[key] = SchemaValidator(self.options.kube_version, crds)
            self._schema = _VALIDATORS[key]
        return self._schema

    def _digest(self, obj: K8sObject) -> str:
        return self._memo("digest", obj, lambda: object_digest(obj.data))

    def _crds(self) -> list[dict]:
        """CRDs given with --crds, and those in every file read so far."""
        objects = [o for path in self.options.crd_paths for o in _objects_under(self.store, path)]
        objects += self.store.loaded_objects()
        return [o.data for o in objects if o.kind == "CustomResourceDefinition"]

    def _new_verdict(self, record: PatchRecord) -> Verdict:
        verdict = Verdict(id=record.id, policy_id=record.policy_id, accepted=False, applicability=record.applicability, patch_ops=len(record.patch))
        self._record_of[id(verdict)] = record  # verdicts come out in the order of their patches
        return verdict

    def _memo(self, kind: str, obj: K8sObject, compute, *extra):
        """Per-object memo. The object is kept with its value, so its id
        cannot be reused by another object while the entry exists."""
        key = (kind, id(obj), *extra)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not obj:
            hit = self._cache[key] = (obj, compute())
        return hit[1]

    def _before(self, obj: K8sObject, app: Application, checks: Sequence[Check]) -> set[FindingKey]:
        return self._memo("findings", obj, lambda: self._findings(obj, app, checks), tuple(c.id for c in checks))

    def findings_about(self, obj: K8sObject, app: Application, check: Check, container: str | None) -> set[FindingKey]:
        """One check's findings, on one container only when the finding names one."""
        scope = {(c.group, c.index) for c in obj.containers if c.name == container} if container is not None else None
        return self._findings(_only_containers(obj, scope), app, [check])

    @staticmethod
    def _findings(obj: K8sObject, app: Application, checks: Sequence[Check]) -> set[FindingKey]:
        return {(f.check.id, f.violation.container, f.violation.message) for f in check_object(obj, app, checks)}

    @staticmethod
    def _with(app: Application, before: K8sObject, after: K8sObject, created: K8sObject | None) -> Application:
        """The application as the patch leaves it (only rebuilt when an object is created)."""
        if created is None:
            return app
        # The patched object itself only matters as the subject of the checks,
        # so the application just gains the created object.
        return app.with_extra([created])

    def _rejected(self, record: PatchRecord, errors: list[str], verdict: Verdict | None = None) -> Verdict:
        verdict = verdict or self._new_verdict(record)
        verdict.accepted = False
        if self.options.include_errors:
            verdict.errors = errors
        return verdict


def touched_containers(obj: K8sObject, ops: list[dict], target: str | None) -> set[tuple[str, int]] | None:
    """The containers a patch changes, when it changes nothing but containers
    (plus the finding's own container); None when it touches anything else."""
    base = obj.pod_spec_pointer
    if base is None:
        return None
    touched: set[tuple[str, int]] = set()
    for op in ops:
        for path in (op.get("path"), op.get("from")):
            if path is None:
                continue
            parts = str(path)[len(base) + 1 :].split("/") if str(path).startswith(base + "/") else []
            if len(parts) < 3 or parts[0] not in ("containers", "initContainers", "ephemeralContainers") or not parts[1].isdigit():
                return None
            touched.add((parts[0], int(parts[1])))
    touched |= {(c.group, c.index) for c in obj.containers if c.name == target}
    return touched


def _only_containers(obj: K8sObject, scope: set[tuple[str, int]] | None) -> K8sObject:
    if scope is None:
        return obj
    view = K8sObject(obj.path, obj.document_index, obj.line, obj.data, obj.list_index)
    view.__dict__["containers"] = [c for c in obj.containers if (c.group, c.index) in scope]
    return view


def apply_patch(data: dict, ops: list[dict]) -> dict:
    """RFC 6902 (the `jsonpatch` library) on a copy of ``data`` that shares
    every subtree the patch does not touch: only the containers on the paths
    of the operations are copied, so the cost follows the patch, not the object."""
    root = dict(data)
    for op in ops:
        for path in (op.get("path"), op.get("from")):
            if isinstance(path, str):
                _copy_along(root, jsonpointer.JsonPointer(path).parts)
    return jsonpatch.JsonPatch(ops).apply(root, in_place=True)


def _copy_along(root: dict, parts: list[str]) -> None:
    node = root
    for part in parts[:-1]:
        if isinstance(node, dict) and isinstance(node.get(part), (dict, list)):
            node[part] = _shallow(node[part])
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node) and isinstance(node[int(part)], (dict, list)):
            node[int(part)] = _shallow(node[int(part)])
            node = node[int(part)]
        else:
            return


def _shallow(value):
    return dict(value) if isinstance(value, dict) else list(value)


def _objects_under(store: ObjectStore, path: str) -> list[K8sObject]:
    from ..manifests.loader import iter_manifest_files

    return [o for f, problem in iter_manifest_files([path]) if not problem for o in store.file(f).objects]


_pool_state: tuple | None = None


def verify_parallel(
    checks: Sequence[Check], options: VerifyOptions, patches: list[PatchRecord], detections: list[Detection], jobs: int = 0
) -> VerifyResult:
    """Verify on every core: patches are cut into slices (a large application's
    patches over several slices), each worker loads the applications its slice
    needs. Verdicts come back in the order of the patches."""
    import multiprocessing
    import os

    jobs = jobs or os.cpu_count() or 1
    if jobs < 2 or len(patches) < 200:
        return Verifier(checks, options).verify(patches, detections)
    by_id = {d.id: d for d in detections}
    order = sorted(range(len(patches)), key=lambda i: ((by_id.get(patches[i].id) or detections[0]).application or "", i))
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
    for indices, (rows, manual) in zip(slices, parts):
        result.manual += manual
        verdicts += [(i, Verdict.model_validate(row)) for i, row in rows]
    result.verdicts = [v for _, v in sorted(verdicts, key=lambda pair: pair[0])]
    return result


def _verify_slice(indices: list[int]) -> tuple[list[tuple[int, dict]], int]:
    checks, options, patches, by_id = _pool_state
    records = [patches[i] for i in indices]
    found = [by_id[r.id] for r in records if r.id in by_id]
    verifier = Verifier(checks, options)
    result = verifier.verify(records, found)
    # verify() keeps the order of its input: pair the verdicts back with their patches.
    with_verdict = [i for i in indices if patches[i].patch or patches[i].creates is not None]
    return [(i, v.model_dump(mode="json")) for i, v in zip(with_verdict, result.verdicts)], result.manual
