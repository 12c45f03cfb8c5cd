"""Helpers shared by check templates: Go-compatible quoting, regex params, scopes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from ..manifests.context import Application
from ..manifests.objects import Container, K8sObject
from .registry import DetectFn, Violation

WORKLOADS = "workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, DeploymentConfig)"


def go_quote(value: object) -> str:
    """Go's %q for a string: double-quoted with backslash escapes."""
    return json.dumps(str(value), ensure_ascii=False)


def go_quote_list(values: Iterable[object]) -> str:
    """Go's %q for a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def string_matcher(pattern: str) -> Callable[[str], bool]:
    """kube-linter's string matcher: "" matches all, "!x" negates, else an
    unanchored regex search (Go's MatchString)."""
    if pattern == "":
        return lambda _value: True
    if pattern.startswith("!"):
        inner = string_matcher(pattern[1:])
        return lambda value: not inner(value)
    regex = _compiled(pattern)
    return lambda value: regex.search(value) is not None


def is_deployment_like(obj: K8sObject) -> bool:
    """kube-linter's DeploymentLike scope with a pod template we can read."""
    return obj.pod_spec is not None


ContainerRule = Callable[[Container, K8sObject], Iterable[str]]


def per_container(rule: ContainerRule, groups: tuple[str, ...] | None = None) -> DetectFn:
    """Run ``rule`` on each container (init, regular, ephemeral, in that order)."""

    def detect(obj: K8sObject, app: Application) -> Iterator[Violation]:
        if obj.pod_spec is None:
            return
        containers = obj.containers if groups is None else obj.containers_of(*groups)
        for container in containers:
            for message in rule(container, obj):
                yield Violation(message, container.name)

    return detect


def pod_level(rule: Callable[[dict, K8sObject], Iterable[str]]) -> DetectFn:
    """Run ``rule`` on the pod spec of a workload."""

    def detect(obj: K8sObject, app: Application) -> Iterator[Violation]:
        spec = obj.pod_spec
        if spec is None:
            return
        for message in rule(spec, obj):
            yield Violation(message)

    return detect


def as_dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list:
    return value if isinstance(value, list) else []
