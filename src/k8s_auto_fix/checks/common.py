"""Helpers shared by check templates: Go-compatible quoting, regex params,
object kinds, and running a rule per container or per pod spec."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from ..manifests.context import Application
from ..manifests.objects import Container, K8sObject
from .registry import DetectFn, Kinds, Violation

WORKLOADS = Kinds(
    ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob", "DeploymentConfig")
)
SERVICE = Kinds(("Service",), "v1")


_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f]*')


def go_quote(value: object) -> str:
    """Go's %q for a string: double-quoted with backslash escapes."""
    text = str(value)
    if _PLAIN.fullmatch(text):  # the common case needs no escaping
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=False)


def go_quote_list(values: Iterable[object]) -> str:
    """Go's %q for a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


_REPEATED_ANCHOR = re.compile(r"(?<!\\)([\^$])(?=[*+?{])")


@lru_cache(maxsize=None)
def go_regex(pattern: str) -> re.Pattern:
    """Compile a Go (RE2) pattern. RE2 lets an anchor be repeated (``^*$``,
    which then matches every string); Python needs it grouped first."""
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(_REPEATED_ANCHOR.sub(r"(?:\1)", pattern))


def string_matcher(pattern: str) -> Callable[[str], bool]:
    """kube-linter's string matcher: "" matches all, "!x" negates, else an
    unanchored regex search (Go's MatchString)."""
    if pattern == "":
        return lambda _value: True
    if pattern.startswith("!"):
        inner = string_matcher(pattern[1:])
        return lambda value: not inner(value)
    regex = go_regex(pattern)
    return lambda value: regex.search(value) is not None


class Hit(NamedTuple):
    """What a per-container or pod-level rule found: the message, the field
    (segments below the container or the pod spec) and its offending value."""

    message: str
    at: tuple[str | int, ...] = ()
    value: Any = None


ContainerRule = Callable[[Container, K8sObject], Iterable["str | Hit"]]


def per_container(rule: ContainerRule, groups: tuple[str, ...] | None = None) -> DetectFn:
    """Run ``rule`` on each container (init, regular, ephemeral, in that order)."""

    def detect(obj: K8sObject, app: Application) -> Iterator[Violation]:
        if not obj.is_deployment_like:
            return
        containers = obj.containers if groups is None else obj.containers_of(*groups)
        for container in containers:
            for hit in rule(container, obj):
                if isinstance(hit, Hit):
                    yield Violation(hit.message, container.name, (*container.segments, *hit.at), hit.value)
                else:
                    yield Violation(hit, container.name, container.segments)

    return detect


def pod_level(rule: Callable[[dict, K8sObject], Iterable["str | Hit"]]) -> DetectFn:
    """Run ``rule`` on the pod spec of a workload."""

    def detect(obj: K8sObject, app: Application) -> Iterator[Violation]:
        if not obj.is_deployment_like:
            return
        base = obj.pod_spec_segments
        for hit in rule(obj.pod_spec, obj):
            if isinstance(hit, Hit):
                yield Violation(hit.message, None, (*base, *hit.at), hit.value)
            else:
                yield Violation(hit, None, base)

    return detect


def as_dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list:
    return value if isinstance(value, list) else []
