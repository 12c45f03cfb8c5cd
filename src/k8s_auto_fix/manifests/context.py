"""Which objects form one application.

Cross-object checks (a Service without pods, a missing ServiceAccount, a PDB
that selects nothing) are only as right as the set of objects they see.
kube-linter's rule is the default: the manifest files directly inside one
folder form one application (subfolders are applications of their own), and
a Helm chart (a folder with ``Chart.yaml``) is one application with all its
subfolders. ``file`` makes every file its own application, for corpora of
unrelated snippets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from .objects import K8sObject


class ContextMode(str, Enum):
    DIR = "dir"
    FILE = "file"


@dataclass
class Application:
    """The objects one cross-object check may look at together."""

    key: str
    objects: list[K8sObject] = field(default_factory=list)

    @cached_property
    def _pods_by_namespace(self) -> dict[str, list[K8sObject]]:
        found: dict[str, list[K8sObject]] = {}
        for obj in self.objects:
            if obj.pod_spec is not None:
                found.setdefault(obj.namespace, []).append(obj)
        return found

    def pod_owners(self, namespace: str) -> list[K8sObject]:
        """Objects that run pods in ``namespace`` (exact match: "" is not "default")."""
        return self._pods_by_namespace.get(namespace, [])

    def pod_owners_with_label(self, namespace: str, key: str, value: str) -> list[K8sObject]:
        """Pod owners in ``namespace`` whose pods carry the label ``key=value``."""
        return self._pods_by_label.get((namespace, key, value), [])

    @cached_property
    def _pods_by_label(self) -> dict[tuple[str, str, str], list[K8sObject]]:
        index: dict[tuple[str, str, str], list[K8sObject]] = {}
        for namespace, owners in self._pods_by_namespace.items():
            for owner in owners:
                for key, value in owner.pod_labels.items():
                    index.setdefault((namespace, str(key), str(value)), []).append(owner)
        return index

    @cached_property
    def _by_type(self) -> dict[tuple, list[K8sObject]]:
        index: dict[tuple, list[K8sObject]] = {}
        for obj in self.objects:
            index.setdefault((obj.api_version, obj.kind), []).append(obj)
            index.setdefault((obj.api_version, obj.kind, obj.namespace), []).append(obj)
        return index

    def find(self, api_version: str, kind: str, namespace: str | None = None) -> list[K8sObject]:
        """Objects of one exact apiVersion and kind, optionally in one namespace."""
        key = (api_version, kind) if namespace is None else (api_version, kind, namespace)
        return self._by_type.get(key, [])

    def with_extra(self, extra: list[K8sObject]) -> Application:
        """This application plus objects a fix creates, sharing its indexes."""
        return _Extended(self, extra)


class _Extended(Application):
    """An application seen with a few more objects (nothing is re-indexed)."""

    def __init__(self, base: Application, extra: list[K8sObject]):
        super().__init__(base.key, base.objects + extra)
        self._base, self._extra = base, extra

    def find(self, api_version: str, kind: str, namespace: str | None = None) -> list[K8sObject]:
        added = [o for o in self._extra if o.api_version == api_version and o.kind == kind and namespace in (None, o.namespace)]
        return self._base.find(api_version, kind, namespace) + added

    def pod_owners(self, namespace: str) -> list[K8sObject]:
        return self._base.pod_owners(namespace) + [o for o in self._extra if o.pod_spec is not None and o.namespace == namespace]

    def pod_owners_with_label(self, namespace: str, key: str, value: str) -> list[K8sObject]:
        added = [o for o in self.pod_owners(namespace) if o in self._extra and str(o.pod_labels.get(key)) == value]
        return self._base.pod_owners_with_label(namespace, key, value) + added


def application_key(path: str, mode: ContextMode, chart_roots: dict[str, str | None] | None = None) -> str:
    if mode is ContextMode.FILE or path == "-" or os.path.isdir(path):
        return path  # a file of its own, stdin, or a kustomization folder
    folder = os.path.dirname(path) or "."
    root = _chart_root(folder, chart_roots if chart_roots is not None else {})
    return root or folder


def _chart_root(folder: str, cache: dict[str, str | None]) -> str | None:
    """The nearest enclosing folder holding a Chart.yaml, if any."""
    if folder in cache:
        return cache[folder]
    if os.path.isfile(os.path.join(folder, "Chart.yaml")):
        root: str | None = folder
    else:
        parent = os.path.dirname(folder)
        root = _chart_root(parent, cache) if parent and parent != folder else None
    cache[folder] = root
    return root


def group_applications(objects: Iterable[K8sObject], mode: ContextMode) -> list[Application]:
    apps: dict[str, Application] = {}
    chart_roots: dict[str, str | None] = {}
    for obj in objects:
        key = application_key(obj.path, mode, chart_roots)
        apps.setdefault(key, Application(key)).objects.append(obj)
    return list(apps.values())
