"""What the gates judge (a ``Change``) and what they share while judging (``Judging``).

A change is one object before and after a patch, the objects the patch
creates, and the findings it is meant to fix: a single proposed patch, or
every chosen fix of one object applied together. ``Judging`` holds what
several gates need and computes it once: the check findings on the object
before (memoised per object) and after (per change), and the compiled schemas.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ..checks import REGISTRY, Check
from ..contracts import Detection, Engine, SchemaMode, object_digest
from ..defaults import DEFAULT_KUBE_VERSION
from ..engines.builtin import check_object
from ..manifests.context import Application
from ..manifests.images import ImageFacts, shipped_facts
from ..manifests.loader import iter_manifest_files
from ..manifests.objects import CONTAINER_GROUPS, Container, K8sObject
from ..manifests.store import ObjectStore
from ..patch import op_paths
from .schema import SchemaValidator

FindingKey = tuple[str, str | None, str]  # check, container, message
# Per process, the validators of the CRD sets seen last (their compiled schemas are
# reused): a few, not one per application with CRDs, so memory stays flat over a fleet.
_VALIDATORS: OrderedDict[tuple, SchemaValidator] = OrderedDict()
VALIDATORS_KEPT = 4


@dataclass(frozen=True)
class VerifyOptions:
    schema: SchemaMode = SchemaMode.OFFLINE
    kube_version: str = DEFAULT_KUBE_VERSION
    crd_paths: tuple[str, ...] = ()
    rescan: tuple[Engine, ...] = ()  # engines that rescan every patched object
    policies: tuple[str, ...] = ()  # the policy folders the policy engines (kyverno) read
    include_errors: bool = True
    include_yaml: bool = False  # patched_yaml: the patched object as YAML (large on big inputs)
    image_facts: ImageFacts = field(default_factory=shipped_facts)  # what the runnability gate knows of images
    kubeconfig: str | None = None  # --schema server: the API server (default: $KUBECONFIG, ~/.kube/config)


@dataclass
class Change:
    """One change to judge."""

    before: K8sObject
    after: K8sObject
    created: list[K8sObject]
    detections: list[Detection]  # the findings the change is meant to fix
    app: Application
    ops: list[dict]

    @cached_property
    def check_ids(self) -> set[str]:
        return {d.policy_id for d in self.detections}

    @cached_property
    def changed_paths(self) -> list[str]:
        """JSON Pointers of every value the change changes, removes or adds; an added map counts as each of its leaves."""
        return list(changed_paths(self.before.data, self.after.data))

    def changes_any(self, *words: str) -> bool:
        """Whether a changed path names one of these fields."""
        return any(w in path for path in self.changed_paths for w in words)

    @cached_property
    def container_pairs(self) -> list[tuple[Container, Container]]:
        """(before, after) of every container the change touched."""
        before, after = self.before, self.after
        if before.pod_spec is None or after.pod_spec is None or before.pod_spec is after.pod_spec:
            return []
        by_place = {(c.group, c.index): c for c in after.containers}
        pairs = []
        for old in before.containers:
            new = by_place.get((old.group, old.index))
            if new is not None and (new.spec is not old.spec or new.pod_spec.get("securityContext") is not old.pod_spec.get("securityContext")):
                pairs.append((old, new))
        return pairs


@dataclass
class Judging:
    """The shared state of one verification run."""

    checks: Sequence[Check]  # the suite the regression gate runs
    options: VerifyOptions = VerifyOptions()
    store: ObjectStore = field(default_factory=ObjectStore)
    _memo: dict = field(default_factory=dict)
    _schema: SchemaValidator | None = None

    # --- findings --------------------------------------------------------------

    def suite(self, change: Change) -> list[Check]:
        """The regression suite plus the targeted checks (which may be off by default)."""
        return self._per_change("suite", change, lambda: self._suite_for(tuple(sorted(change.check_ids))))

    def _suite_for(self, check_ids: tuple[str, ...]) -> list[Check]:
        key = ("suite", check_ids)
        if key not in self._memo:
            in_suite = {c.id for c in self.checks}
            self._memo[key] = [*self.checks, *(REGISTRY[i] for i in check_ids if i in REGISTRY and i not in in_suite)]
        return self._memo[key]

    def findings_after(self, change: Change) -> set[FindingKey]:
        """Findings on the patched object, in the application as the change leaves it."""
        return self._per_change("after", change, lambda: self._findings_of(change, change.after, self.context_after(change)))

    def findings_before(self, change: Change) -> set[FindingKey]:
        scope = self.scope(change)
        if scope is None:  # the whole object: the same for every change of it
            checks = self.suite(change)
            key = ("before", id(change.before), tuple(c.id for c in checks))
            return self._memoised(key, change.before, lambda: findings(change.before, change.app, checks))
        return self._per_change("before", change, lambda: self._findings_of(change, change.before, change.app))

    def created_findings(self, change: Change) -> set[FindingKey]:
        context = self.context_after(change)
        return {f for obj in change.created for f in findings(obj, context, self.checks)}

    def _findings_of(self, change: Change, obj: K8sObject, app: Application) -> set[FindingKey]:
        return findings(only_containers(obj, self.scope(change)), app, self.suite(change))

    def scope(self, change: Change) -> set[tuple[str, int]] | None:
        """A patch inside some containers leaves the others as they were (they
        are the very same objects): only its containers are checked again."""
        if change.created or len(change.detections) != 1:
            return None
        return self._per_change("scope", change, lambda: touched_containers(change.before, change.ops, change.detections[0].container))

    @staticmethod
    def context_after(change: Change) -> Application:
        """The application as the change leaves it: the patched object itself only
        matters as the subject of the checks, so the application just gains the created objects."""
        return change.app.with_extra(change.created) if change.created else change.app

    # --- schemas ----------------------------------------------------------------

    def validator(self) -> SchemaValidator:
        if self._schema is None:
            crds = self.crds()
            key = (self.options.kube_version, tuple(sorted(object_digest(c) for c in crds)))
            if key not in _VALIDATORS:
                _VALIDATORS[key] = SchemaValidator(self.options.kube_version, crds)
                if len(_VALIDATORS) > VALIDATORS_KEPT:
                    _VALIDATORS.popitem(last=False)
            _VALIDATORS.move_to_end(key)
            self._schema = _VALIDATORS[key]
        return self._schema

    def crds(self) -> list[dict]:
        """CRDs given with --crds, and those in every file read so far."""
        objects = [o for path in self.options.crd_paths for f, problem in iter_manifest_files([path]) if not problem for o in self.store.file(f).objects]
        objects += self.store.loaded_objects()
        return [o.full_data for o in objects if o.kind == "CustomResourceDefinition"]

    # --- memo ----------------------------------------------------------------------

    def digest(self, obj: K8sObject) -> str:
        return self._memoised(("digest", id(obj)), obj, lambda: object_digest(obj.data))

    def _per_change(self, kind: str, change: Change, compute):
        return self._memoised((kind, id(change)), change, compute)

    def _memoised(self, key: tuple, owner: object, compute):
        """The owner is kept with its value, so its id cannot be reused while the entry exists."""
        hit = self._memo.get(key)
        if hit is None or hit[0] is not owner:
            hit = self._memo[key] = (owner, compute())
        return hit[1]

    def forget(self, change: Change) -> None:
        """Drop what was memoised for a change once it is judged."""
        for kind in ("after", "before", "scope", "suite"):
            self._memo.pop((kind, id(change)), None)


def findings(obj: K8sObject, app: Application, checks: Sequence[Check]) -> set[FindingKey]:
    return {(f.check.id, f.violation.container, f.violation.message) for f in check_object(obj, app, checks)}


def touched_containers(obj: K8sObject, ops: list[dict], target: str | None) -> set[tuple[str, int]] | None:
    """The containers a patch changes, when it changes nothing but containers
    (plus the finding's own container); None when it touches anything else."""
    base = obj.pod_spec_pointer
    if base is None:
        return None
    touched: set[tuple[str, int]] = set()
    for op in ops:
        for path in op_paths(op):
            parts = path[len(base) + 1 :].split("/") if path.startswith(base + "/") else []
            if len(parts) < 3 or parts[0] not in CONTAINER_GROUPS or not parts[1].isdigit():
                return None
            touched.add((parts[0], int(parts[1])))
    touched |= {(c.group, c.index) for c in obj.containers if c.name == target}
    return touched


def only_containers(obj: K8sObject, scope: set[tuple[str, int]] | None) -> K8sObject:
    """A view of ``obj`` whose container checks see only the containers in ``scope``."""
    if scope is None:
        return obj
    view = obj.with_data(obj.data)
    view.__dict__["containers"] = [c for c in obj.containers if (c.group, c.index) in scope]
    return view


def changed_paths(before: object, after: object, path: str = "") -> Iterator[str]:
    """JSON Pointers of every value ``after`` changes, removes or adds; an
    added map counts as each of its leaves."""
    if before is after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before.keys() | after.keys():
            child = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in before:
                yield from _leaf_paths(after[key], child)
            elif key not in after:
                yield child
            else:
                yield from changed_paths(before[key], after[key], child)
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            if index >= len(before):
                yield from _leaf_paths(after[index], f"{path}/{index}")
            elif index >= len(after):
                yield f"{path}/{index}"
            else:
                yield from changed_paths(before[index], after[index], f"{path}/{index}")
    elif type(before) is not type(after) or before != after:  # runAsUser 0 is not False
        yield path


def _leaf_paths(value: object, path: str) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaf_paths(child, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
    else:
        yield path
