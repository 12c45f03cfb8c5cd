"""The fix engine: per application, detect -> propose -> verify, then every
chosen fix of an object applied one after the other, and the files rendered.

It is per-application work for the runner (runner.py), so it runs in the
worker that loaded the application. Each fix of an object is proposed again
against the object as the previous fixes left it, so list indices and
missing parents are always right, and the accumulated change is judged by
the same gates as a single patch before it is kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..checks import Check, Violation
from ..checks.fixes import FixOptions, propose_fix
from ..checks.selection import select_checks
from ..contracts import Applicability, Detection, Engine, ObjectEdit, PatchRecord, Verdict
from ..engines.builtin import DetectWork
from ..manifests.context import Application
from ..manifests.images import ImageFacts, shipped_facts
from ..manifests.objects import K8sObject
from ..manifests.store import ObjectStore
from ..patch import PATCH_ERRORS, apply_patch
from ..propose.rules import as_manual, propose_rules
from ..verify.gates.runnability import RUNNABILITY
from ..verify.judging import Change, VerifyOptions
from ..verify.verifier import Verifier, passed
from .built import place_built_edits
from .roundtrip import render_files


@dataclass(frozen=True)
class FixSettings:
    options: FixOptions
    allowed: frozenset[Applicability]
    verify: VerifyOptions
    checks: tuple[Check, ...]  # the regression suite
    render: bool = True  # produce the fixed file texts (off: verification only)
    engine: Engine = Engine.BUILTIN  # whose findings are fixed: the checks', or a policy engine's (kyverno, vap)

    @property
    def policies(self) -> tuple[str, ...]:
        """The policy folders of the policy engine whose findings are fixed (none: the checks' own)."""
        return self.verify.policies

    @classmethod
    def build(
        cls,
        config,
        image_pins,
        unsafe_fixes: bool,
        kube_version: str,
        crds,
        facts: ImageFacts | None = None,
        policies: tuple[str, ...] = (),
        engine: Engine = Engine.KYVERNO,
        kubeconfig: str | None = None,
    ) -> FixSettings:
        """Settings from a run config and the fix command's options. With
        policy folders, the policy engine's findings are fixed, and the
        engine rescans every change (no fix may make another rule fail)."""
        allowed = {Applicability.SAFE, Applicability.REVIEW} if unsafe_fixes else {Applicability.SAFE}
        facts = facts or shipped_facts()
        return cls(
            options=FixOptions(config.fixes, image_pins, facts),
            allowed=frozenset(allowed),
            verify=VerifyOptions(
                kube_version=kube_version,
                crd_paths=tuple(str(p) for p in crds or ()),
                include_yaml=False,
                image_facts=facts,
                policies=tuple(policies),
                rescan=(engine,) if policies else (),
                kubeconfig=kubeconfig,
            ),
            engine=engine if policies else Engine.BUILTIN,
            checks=tuple(select_checks()),
        )


@dataclass
class FixOutcome:
    """What the engine found and did in one application."""

    detections: list[Detection] = field(default_factory=list)
    patches: list[PatchRecord] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    edits: list[ObjectEdit] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # file -> its fixed text, when it changed
    problems: list[str] = field(default_factory=list)
    chart_fixes: list[ChartFix] = field(default_factory=list)  # fixes of objects a chart renders (never written into templates)


@dataclass
class ChartFix:
    """The verified fixes of one object a Helm chart renders: its template is
    not rewritten; fix/chart.py turns these into values or a post-renderer."""

    chart: str
    edit: ObjectEdit  # path: the template file
    before: dict
    after: dict


class FixWork:
    """The fix pipeline as per-application work (see runner.py)."""

    def __init__(self, checks: Sequence[Check], settings: FixSettings, found: dict[str, list[Detection]] | None = None):
        self.detect = DetectWork(checks, locate=False)  # nothing fix prints needs field positions
        self.settings = settings
        # Findings an engine made beforehand (a policy engine runs once on
        # every object, in batches), by file: fixed instead of the checks' own.
        self.found = found

    def findings(self, app: Application, scope: str) -> list[tuple[Detection, Violation | None]]:
        if self.found is None:
            return self.detect.found(app, scope)
        if scope == "joined":  # a policy rule judges one object: nothing is left for the join
            return []
        # In the application detect would have formed: later stages rebuild the same context.
        return [(d.model_copy(update={"application": app.key}), None) for path in sorted({o.path for o in app.objects}) for d in self.found.get(path, [])]

    def whole(self, app: Application) -> FixOutcome:
        return self.fix(app, self.findings(app, "whole"))

    def part(self, app: Application) -> FixOutcome:
        return self.fix(app, self.findings(app, "part"))

    def joined(self, app: Application, parts: list[FixOutcome]) -> FixOutcome:
        """The cross-object findings of a sliced application, fixed once every
        slice is back, and the files they touch rendered with every edit."""
        cross = self.fix(app, self.findings(app, "joined"), render=False)
        merged = FixOutcome()
        seen: set[tuple] = set()
        for outcome in [*parts, cross]:
            merged.detections += outcome.detections
            merged.patches += outcome.patches
            merged.verdicts += outcome.verdicts
            merged.texts.update(outcome.texts)
            merged.problems += outcome.problems
            merged.chart_fixes += outcome.chart_fixes
            for edit in outcome.edits:
                if edit.location in seen and edit.ops:
                    # Edits computed against the original would not fit on top of
                    # the slice's: keep only the objects they create.
                    edit = edit.model_copy(update={"ops": []})
                seen.add(edit.location)
                merged.edits.append(edit)
        touched = {e.path for e in cross.edits}
        if self.settings.render and touched:
            texts, problems = render_files([e for e in merged.edits if e.path in touched])
            merged.texts.update(texts)
            merged.problems += problems
        return merged

    def fix(self, app: Application, found: list[tuple[Detection, Violation | None]], render: bool = True) -> FixOutcome:
        detections = [d for d, _ in found]
        store = ObjectStore.of_application(app)
        # Runnability is judged once, by the verifier: what it refuses is manual.
        proposed = propose_rules(detections, self.settings.options, store, {d.id: v for d, v in found if v is not None}, runnability=False)
        verifier = Verifier(self.settings.checks, self.settings.verify, store)
        verdicts = verifier.verify(proposed.patches, detections).verdicts
        refused = {v.id: v for v in verdicts if v.first_failed_gate() == RUNNABILITY.name}
        patches = [as_manual(p, refused[p.id]) if p.id in refused else p for p in proposed.patches]
        verdicts = [v for v in verdicts if v.id not in refused]
        outcome = FixOutcome(detections=detections, patches=patches, verdicts=verdicts)
        chosen = {v.id for v in verdicts if v.accepted and v.applicability in self.settings.allowed}
        by_object: dict[tuple, list[Detection]] = defaultdict(list)
        for d in detections:
            if d.id in chosen:
                by_object[(d.manifest_path, d.document_index, d.list_index)].append(d)
        created: set[tuple] = set()
        for edit in self._combine_all(store, app, by_object, verifier):
            # An object several fixes create (one ServiceAccount that several
            # workloads name) is created once in the application.
            edit.creates = [c for c in edit.creates if _identity(c) not in created]
            created |= {_identity(c) for c in edit.creates}
            if edit.ops or edit.creates:
                outcome.edits.append(edit)
        outcome.edits = self._set_chart_fixes_aside(outcome, store)
        if any(obj.built_by and not obj.chart for obj in app.objects):
            outcome.edits, patch_texts, outcome.problems = place_built_edits(outcome.edits, {o.location: o for o in app.objects})
        else:
            patch_texts = {}
        if render and self.settings.render:
            texts, problems = render_files(outcome.edits)  # here, in the worker
            outcome.texts, outcome.problems = texts | patch_texts, outcome.problems + problems
        return outcome

    @staticmethod
    def _set_chart_fixes_aside(outcome: FixOutcome, store: ObjectStore) -> list[ObjectEdit]:
        """The edits of files; those of rendered chart objects go to ``chart_fixes``."""
        kept = []
        for edit in outcome.edits:
            obj = store.object(*edit.location)
            if obj is not None and obj.chart:
                outcome.chart_fixes.append(ChartFix(obj.chart, edit, obj.data, apply_patch(obj.data, edit.ops)))
            else:
                kept.append(edit)
        return kept

    def _combine_all(self, store: ObjectStore, app: Application, by_object: dict[tuple, list[Detection]], verifier: Verifier) -> list[ObjectEdit]:
        """All chosen fixes of each object, each proposed on the object as the
        previous ones left it. Every object's result is judged as a whole, in
        one batch (gates that run an external tool run it once); only for an
        object whose whole change fails are the fixes judged (and kept) one by one."""
        plans = []
        for location, detections in by_object.items():
            original = store.object(*location)
            ordered = sorted(detections, key=lambda d: (d.policy_id, d.container or "", d.violation_text))
            edit = self._apply_in_order(original, app, ordered, verifier, judge_each=False)
            fixed = [d for d in ordered if d.id in edit.fixed]
            created = [K8sObject(original.path, -1, 0, c) for c in edit.creates]
            whole = Change(original, original.with_data(apply_patch(original.data, edit.ops)), created, fixed, app, edit.ops)
            plans.append((original, ordered, edit, whole))
        judged = verifier.judge([whole for *_, whole in plans])
        return [
            edit if passed(gates) else self._apply_in_order(original, app, ordered, verifier, judge_each=True)
            for (original, ordered, edit, _), (gates, _) in zip(plans, judged)
        ]

    def _apply_in_order(self, original: K8sObject, app: Application, detections: list[Detection], verifier: Verifier, judge_each: bool) -> ObjectEdit:
        edit = ObjectEdit(path=original.path, document_index=original.document_index, list_index=original.list_index, ref=original.ref)
        current = original
        for detection in detections:
            proposal = propose_fix(detection.key, current, app, self.settings.options)
            if proposal is None:
                edit.fixed.append(detection.id)  # an earlier fix took care of it
                continue
            if proposal.is_manual:
                continue
            try:
                after = current.with_data(apply_patch(current.data, proposal.ops))
            except PATCH_ERRORS:  # a fix that no longer fits is skipped, never forced
                continue
            if judge_each:
                # Judged against the previous step: the invariants only ever
                # tighten, so each step passing means the whole change passes.
                created = [K8sObject(original.path, -1, 0, proposal.creates)] if proposal.creates else []
                if not passed(verifier.judge_one(Change(current, after, created, [detection], app, proposal.ops))[0]):
                    continue
            current = after
            edit.ops += proposal.ops
            if proposal.creates:
                edit.creates.append(proposal.creates)
            edit.fixed.append(detection.id)
        return edit


def prefetch_policy_results(found: dict[str, list[Detection]], settings: FixSettings) -> int:
    """The policy engine's results on the objects the fixes will most likely make, in
    batched CLI runs before the workers fork (they inherit the memo, see
    engines/kyverno.py): each finding's own fix, and each object's fixes
    applied together, one after the other in the engine's order. A guess that misses
    costs only the CLI run the worker would have made anyway. Returns how
    many objects were guessed."""
    from ..engines.kyverno import evaluate, load_policies
    from ..engines.vap import failures_of

    store = ObjectStore()
    guesses: list[dict] = []
    for path, detections in found.items():
        app = store.application(None, path)
        by_object: dict[tuple, list[Detection]] = defaultdict(list)
        for d in detections:
            by_object[(d.document_index, d.list_index)].append(d)
        for (document, item), found_here in by_object.items():
            original = store.object(path, document, item)
            if original is None:
                continue
            current = original
            for d in sorted(found_here, key=lambda d: (d.policy_id, d.container or "", d.violation_text)):
                alone = _patched(original, propose_fix(d.key, original, app, settings.options))
                current = _patched(current, propose_fix(d.key, current, app, settings.options)) or current
                if alone is not None:
                    guesses.append(alone.data)  # the patch as verified on its own
            if current is not original:
                guesses.append(current.data)  # every fix of the object together, as the engine combines them
    if settings.engine is Engine.VAP:
        failures_of(guesses, settings.policies, settings.verify.kubeconfig)
    else:
        evaluate(load_policies(settings.policies), guesses)
    return len(guesses)


def _patched(obj: K8sObject, proposal) -> K8sObject | None:
    if proposal is None or proposal.is_manual:
        return None
    try:
        return obj.with_data(apply_patch(obj.data, proposal.ops))
    except PATCH_ERRORS:
        return None


def _identity(obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace") or "", meta.get("name"))
