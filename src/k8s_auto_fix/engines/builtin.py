"""The built-in engine: runs the check registry over applications."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import yaml

from ..checks.registry import Check, Violation
from ..contracts import Detection, DetectResult, Engine, detection_id
from ..manifests.context import Application
from ..manifests.locate import Documents, Location, Locator
from ..manifests.objects import K8sObject
from ..manifests.profiles import profile_of
from ..patch import pointer
from ..runner import RunnerOptions, for_each_application, stream_applications

IGNORE_ALL = "kube-linter.io/ignore-all"
IGNORE_CHECK_PREFIX = "ignore-check.kube-linter.io/"


class Finding(NamedTuple):
    check: Check
    obj: K8sObject
    violation: Violation


def ignored_checks(obj: K8sObject) -> tuple[bool, set[str]]:
    """kube-linter's annotations: ignore everything, or named checks."""
    annotations = obj.annotations
    if not annotations:
        return False, set()
    ignore_all = IGNORE_ALL in annotations
    named = {key[len(IGNORE_CHECK_PREFIX) :] for key in annotations if key.startswith(IGNORE_CHECK_PREFIX)}
    return ignore_all, named


def check_object(obj: K8sObject, app: Application, checks: Iterable[Check]) -> Iterator[Finding]:
    """Run checks on one object, with its application as the context."""
    ignore_all, ignored = ignored_checks(obj)
    if ignore_all:
        return
    for check in checks:
        if check.id not in ignored:
            for violation in check.detect(obj, app):
                yield Finding(check, obj, violation)


def run_checks(app: Application, checks: Iterable[Check]) -> Iterator[Finding]:
    checks = list(checks)
    for obj in app.objects:
        yield from check_object(obj, app, checks)


def to_detection(finding: Finding, app: Application, embed_yaml: bool = False, locator: Locator | None = None) -> Detection:
    """A finding in the detections contract (fields trusted: no validation).
    Without a locator, it is placed at its object's line (no column)."""
    obj, check, violation = finding.obj, finding.check, finding.violation
    profile = profile_of(obj, app)
    where = locator.locate(violation.path) if locator else Location(obj.line, None, pointer(*violation.path), False)
    return Detection.model_construct(
        id=detection_id(obj.path, obj.ref, check.id, violation.container, violation.message),
        manifest_path=obj.path,
        manifest_yaml=yaml.dump(obj.full_data, Dumper=yaml.CSafeDumper, sort_keys=False) if embed_yaml else None,
        policy_id=check.id,
        violation_text=violation.message,
        object=obj.ref,
        document_index=obj.document_index,
        list_index=obj.list_index,
        line=where.line,
        column=where.column,
        json_pointer=where.pointer,
        object_line=obj.line,
        severity=check.severity,
        container=violation.container,
        engine=Engine.BUILTIN,
        application=app.key,
        profile=sorted(p.value for p in profile) if obj.pod_spec is not None else None,
    )


def detect_application(app: Application, checks: Iterable[Check], embed_yaml: bool = False, locate: bool = True) -> list[tuple[Detection, Violation]]:
    """Every finding in the application, as a detection with the violation behind it.
    Field positions (``locate``) are looked up per object, and only for objects with findings."""
    checks = list(checks)
    found = []
    documents = Documents()
    for obj in app.objects:
        findings = list(check_object(obj, app, checks))
        if findings:
            locator = Locator(obj, documents) if locate else None
            found += [(to_detection(f, app, embed_yaml, locator), f.violation) for f in findings]
    return found


class DetectWork:
    """The built-in engine as per-application work (see runner.py): per-object
    checks on every slice, cross-object checks once on the whole application."""

    def __init__(self, checks: Sequence[Check], embed_yaml: bool = False, locate: bool = True):
        self.checks = list(checks)
        self.locate = locate  # positions of the fields (fix prints none: it skips them)
        self.local = [c for c in self.checks if not c.cross_object]
        self.cross = [c for c in self.checks if c.cross_object]
        self.embed_yaml = embed_yaml

    def found(self, app: Application, scope: str = "whole") -> list[tuple[Detection, Violation]]:
        """The findings of ``scope``: every check, the per-object ones (a slice), or the cross-object ones (the join)."""
        checks = {"whole": self.checks, "part": self.local, "joined": self.cross}[scope]
        return detect_application(app, checks, self.embed_yaml, self.locate)

    def whole(self, app: Application) -> list[Detection]:
        return [d for d, _ in self.found(app)]

    def part(self, app: Application) -> list[Detection]:
        return [d for d, _ in self.found(app, "part")]

    def joined(self, app: Application, parts: list[list[Detection]]) -> list[Detection]:
        return with_whole_profiles([d for part in parts for d in part], app) + [d for d, _ in self.found(app, "joined")]


def with_whole_profiles(detections: list[Detection], app: Application) -> list[Detection]:
    """Slices' detections with the profiles their whole application gives their
    objects: a profile looks across objects (a RoleBinding naming the pod's
    account, a Service selecting it), which a slice may not hold."""
    objects = {(o.path, o.document_index, o.list_index): o for o in app.objects}
    profiles: dict[int, list[str]] = {}
    fixed = []
    for d in detections:
        obj = objects.get((d.manifest_path, d.document_index, d.list_index))
        if d.profile is not None and obj is not None:
            if id(obj) not in profiles:
                profiles[id(obj)] = sorted(p.value for p in profile_of(obj, app))
            if profiles[id(obj)] != d.profile:
                d = d.model_copy(update={"profile": profiles[id(obj)]})
        fixed.append(d)
    return fixed


def detection_order(d: Detection):
    return (d.manifest_path, d.document_index, d.list_index or 0, d.policy_id, d.container or "", d.violation_text)


def detect_builtin(paths: Sequence[str], checks: Sequence[Check], options: RunnerOptions, embed_yaml: bool = False) -> DetectResult:
    outcome = for_each_application(paths, options, DetectWork(checks, embed_yaml))
    detections = sorted((d for found in outcome.results for d in found), key=detection_order)
    return DetectResult.model_construct(detections=detections, problems=outcome.problems, files=outcome.files, objects=outcome.objects)


def stream_builtin(paths: Sequence[str], checks: Sequence[Check], options: RunnerOptions, embed_yaml: bool = False):
    """The built-in engine as a stream: (the paths that could not be listed, and
    per application in input order its outcome, detections in their usual order)."""
    problems, stream = stream_applications(paths, options, DetectWork(checks, embed_yaml))

    def ordered():
        for item in stream:
            if item.result is not None:
                item.result = sorted(item.result, key=detection_order)
            yield item

    return problems, ordered()
