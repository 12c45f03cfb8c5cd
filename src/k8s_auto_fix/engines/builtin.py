"""The built-in engine: runs the check registry over applications."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..checks.registry import Check, Violation
from ..manifests.context import Application
from ..manifests.objects import K8sObject

IGNORE_ALL = "kube-linter.io/ignore-all"
IGNORE_CHECK_PREFIX = "ignore-check.kube-linter.io/"


@dataclass(frozen=True)
class Finding:
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
