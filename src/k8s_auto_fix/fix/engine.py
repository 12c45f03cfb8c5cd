"""The fix engine: detect -> propose -> verify, then every chosen fix of an
object applied one after the other.

It runs per application inside detect's workers (the objects are already
loaded there). Each fix of an object is proposed again against the object as
the previous fixes left it, so list indices and missing parents are always
right, and the accumulated change is judged by the same gates as a single
patch before it is kept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..checks import REGISTRY, Check
from ..checks.patching import CannotPatch
from ..checks.registry import FixContext
from ..config import FixDefaults
from ..contracts import Applicability, Detection, Verdict
from ..detect import DETECTIONS
from ..manifests.context import Application
from ..manifests.loader import LoadResult
from ..manifests.objects import K8sObject
from ..manifests.store import ObjectStore
from ..propose.rules import propose_rules
from ..verify.verifier import PATCH_ERRORS, Verifier, VerifyOptions, apply_patch


@dataclass
class ObjectEdit:
    """Everything done to one object: operations in order, objects to create."""

    path: str
    document_index: int
    list_index: int | None
    api_version: str
    kind: str
    namespace: str
    name: str
    ops: list[dict] = field(default_factory=list)
    creates: list[dict] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)  # detection ids


@dataclass
class FixOutcome:
    """What the engine returns for one application (plain data: it crosses processes)."""

    patches: list[dict] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    edits: list[ObjectEdit] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # file -> its fixed text, when it changed
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FixSettings:
    settings: FixDefaults
    image_pins: dict[str, str]
    allowed: frozenset[Applicability]
    verify: VerifyOptions
    checks: tuple[Check, ...]
    select: frozenset[str] | None = None  # only fix these checks
    ignore: frozenset[str] = frozenset()
    render: bool = True  # produce the fixed file texts (off: verification only)

    @classmethod
    def build(cls, config, image_pins, unsafe_fixes: bool, kube_version: str, crds, select, ignore) -> FixSettings:
        """Settings from a run config and the fix command's options."""
        from ..checks.selection import select_checks

        allowed = {Applicability.SAFE, Applicability.REVIEW} if unsafe_fixes else {Applicability.SAFE}
        return cls(
            settings=config.fixes,
            image_pins=image_pins,
            allowed=frozenset(allowed),
            verify=VerifyOptions(kube_version=kube_version, crd_paths=tuple(str(p) for p in crds or ()), include_yaml=False),
            checks=tuple(select_checks()),
            select=frozenset(select) if select else None,
            ignore=frozenset(ignore or ()),
        )

    def wants(self, check_id: str) -> bool:
        return (self.select is None or check_id in self.select) and check_id not in self.ignore


class FixEngine:
    """Callable as detect's ``post`` hook: (application, detection rows) -> FixOutcome."""

    def __init__(self, settings: FixSettings):
        self.settings = settings

    def __call__(self, app: Application, rows: list[dict]) -> FixOutcome:
        detections = [d for d in DETECTIONS.validate_python(rows) if self.settings.wants(d.policy_id)]
        store = _store_for(app)
        proposed = propose_rules(detections, self.settings.settings, self.settings.image_pins, store)
        verifier = Verifier(self.settings.checks, self.settings.verify, store)
        verdicts = verifier.verify(proposed.patches, detections).verdicts
        outcome = FixOutcome(
            patches=[p.model_dump(mode="json") for p in proposed.patches],
            verdicts=[v.model_dump(mode="json") for v in verdicts],
        )
        chosen = {v.id for v in verdicts if v.accepted and v.applicability in self.settings.allowed}
        by_object: dict[tuple, list[Detection]] = defaultdict(list)
        for d in detections:
            if d.id in chosen:
                by_object[(d.manifest_path, d.document_index, d.list_index)].append(d)
        for (path, index, list_index), found in by_object.items():
            obj = store.object(path, index, list_index)
            edit = self._combine(obj, app, found, verifier)
            if edit.ops or edit.creates:
                outcome.edits.append(edit)
        if self.settings.render:
            render(outcome)  # here, in the worker, where it runs in parallel
        return outcome

    def _combine(self, original: K8sObject, app: Application, detections: list[Detection], verifier: Verifier) -> ObjectEdit:
        """All chosen fixes of one object, each proposed on the object as the
        previous ones left it; the result is judged once as a whole, and only
        if that fails are the fixes judged (and kept) one by one."""
        ordered = sorted(detections, key=lambda d: (d.policy_id, d.container or "", d.violation_text))
        edit = self._apply_in_order(original, app, ordered, verifier, judge_each=False)
        created = [K8sObject(original.path, -1, 0, c) for c in edit.creates]
        fixed = [d for d in ordered if d.id in edit.fixed]
        final = K8sObject(original.path, original.document_index, original.line, apply_patch(original.data, edit.ops), original.list_index)
        if verifier.judge_combined(original, final, created, fixed, app, edit.ops):
            edit = self._apply_in_order(original, app, ordered, verifier, judge_each=True)
        return edit

    def _apply_in_order(
        self, original: K8sObject, app: Application, detections: list[Detection], verifier: Verifier, judge_each: bool
    ) -> ObjectEdit:
        edit = ObjectEdit(
            original.path, original.document_index, original.list_index,
            original.api_version, original.kind, original.namespace, original.name,
        )
        current = original
        for detection in detections:
            key = (detection.policy_id, detection.container, detection.violation_text)
            check = REGISTRY[detection.policy_id]
            if key not in verifier.findings_about(current, app, check, detection.container):
                edit.fixed.append(detection.id)  # an earlier fix took care of it
                continue
            ctx = FixContext(
                current, app, current.container_named(detection.container), detection.violation_text,
                self.settings.settings, self.settings.image_pins,
            )
            try:
                proposal = check.fix.build(ctx)
                patched = apply_patch(current.data, proposal.ops) if proposal else None
            except (CannotPatch, *PATCH_ERRORS):  # a fix that no longer fits is skipped, never forced
                continue
            if proposal is None or (not proposal.ops and proposal.creates is None):
                continue
            after = K8sObject(original.path, original.document_index, original.line, patched, original.list_index)
            if judge_each:
                # Judged against the previous step: the invariants only ever
                # tighten, so each step passing means the whole change passes.
                created = K8sObject(original.path, -1, 0, proposal.creates) if proposal.creates else None
                if verifier.judge(Verdict(id=detection.id, accepted=False), current, after, created, detection, app, proposal.ops, schema=True):
                    continue
            current = after
            edit.ops += proposal.ops
            if proposal.creates:
                edit.creates.append(proposal.creates)
            edit.fixed.append(detection.id)
        return edit


def render(outcome: FixOutcome) -> None:
    """The fixed text of every file the outcome edits (files that cannot be
    rewritten are reported and left alone)."""
    from .roundtrip import render_file

    paths = sorted({e.path for e in outcome.edits})
    for path in paths:
        text, problem = render_file(path, [e for e in outcome.edits if e.path == path])
        if problem:
            outcome.problems.append(problem)
        elif text is not None:
            outcome.texts[path] = text


def _store_for(app: Application) -> ObjectStore:
    files: dict[str, LoadResult] = {}
    for obj in app.objects:
        files.setdefault(obj.path, LoadResult(files=[obj.path])).objects.append(obj)
    store = ObjectStore()
    store.preload(files, {app.key: app.objects})
    return store
