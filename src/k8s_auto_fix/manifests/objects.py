"""The object model every check works on.

A ``K8sObject`` is one Kubernetes object as it was found (file, document,
line) plus the views checks need: identity, the pod template of any workload
kind, every container with its JSON Pointer, and the effective security
settings of a container. Checks never locate pod templates themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import yaml

from ..contracts import ObjectRef
from ..patch import pointer
from .yaml_compat import KubeLoader

# Where the pod spec lives, per workload kind (JSON Pointer segments).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "DeploymentConfig": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# The API versions in which each workload kind exists (what kube-linter's
# client-go scheme decodes). A `DaemonSet` in `apps/v1beta1` or a `CronJob` in
# `batch/v2alpha1` never existed or was removed: it has no pod template.
# `extensions/v1beta1` workloads have pods (a Service may select them) but are
# not "deployment-like": container checks skip them, as kube-linter does, and
# no-extensions-v1beta flags them instead.
WORKLOAD_API_VERSIONS: dict[str, frozenset[str]] = {
    "Pod": frozenset({"v1"}),
    "ReplicationController": frozenset({"v1"}),
    "Deployment": frozenset({"apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"}),
    "StatefulSet": frozenset({"apps/v1", "apps/v1beta1", "apps/v1beta2"}),
    "DaemonSet": frozenset({"apps/v1", "apps/v1beta2", "extensions/v1beta1"}),
    "ReplicaSet": frozenset({"apps/v1", "apps/v1beta2", "extensions/v1beta1"}),
    "DeploymentConfig": frozenset({"apps.openshift.io/v1"}),
    "Job": frozenset({"batch/v1"}),
    "CronJob": frozenset({"batch/v1", "batch/v1beta1"}),
}
CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")
# Pod-level securityContext fields that a container-level one overrides.
INHERITED_SECURITY_FIELDS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "seccompProfile",
    "windowsOptions",
    "appArmorProfile",
)


@dataclass(frozen=True)
class Container:
    """One container of a pod spec and where it is in the object."""

    group: str  # containers, initContainers or ephemeralContainers
    index: int
    spec: dict
    segments: tuple  # JSON Pointer segments of the container in its object
    pod_spec: dict

    @cached_property
    def pointer(self) -> str:
        return pointer(*self.segments)

    @cached_property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def security_context(self) -> dict:
        return _as_dict(self.spec.get("securityContext"))

    def effective_security(self, field_name: str) -> Any:
        """A container setting if present, else the pod's (when inheritable)."""
        value = self.security_context.get(field_name)
        if value is None and field_name in INHERITED_SECURITY_FIELDS:
            value = _as_dict(self.pod_spec.get("securityContext")).get(field_name)
        return value


@dataclass(eq=False)
class K8sObject:
    path: str
    document_index: int
    line: int
    data: dict
    list_index: int | None = None  # position inside a `kind: List`
    # The YAML shares nodes through anchors and aliases (&ports ... *ports):
    # the same map or list stands at several places of ``data``.
    shares_nodes: bool = False
    # Built by a kustomization (its folder): the object as kustomize makes it,
    # at the place in ``path`` it comes from.
    built_by: str | None = None
    # Rendered by a Helm chart (its folder; ``built_by`` too): ``path`` is the
    # template file, and the template is never rewritten.
    chart: str | None = None
    # Keys the YAML gives twice (the last value is in ``data``), as (pointer, line).
    duplicate_keys: tuple = ()
    # An unrendered Helm template (``{{ }}`` in its name): linted, never rewritten.
    template: bool = False
    # Its typed decode fails on a value (a quantity like ${CPU}): kube-linter
    # reads it as a generic object, whose pod template no check can see.
    unstructured: bool = False
    # The text of the YAML document it was read from (a `kind: List`'s whole
    # document for its items), for checks about how it is written.
    source: str = ""
    # ``data`` lacks the body, kept in ``source`` only: a CRD's spec (see the loader).
    skimmed: bool = False

    def __post_init__(self) -> None:
        # Read on every check of every object: computed once, kept as attributes.
        data = self.data
        self.api_version = str(data.get("apiVersion", ""))
        self.kind = str(data.get("kind", ""))
        self.metadata = _as_dict(data.get("metadata"))
        meta = self.metadata
        self.name = str(meta.get("name") or meta.get("generateName") or "")
        self.namespace = str(meta.get("namespace") or "")
        self.labels = _as_dict(meta.get("labels"))
        self.annotations = _as_dict(meta.get("annotations"))
        self.group = self.api_version.rpartition("/")[0]

    @cached_property
    def ref(self) -> ObjectRef:
        return ObjectRef(
            api_version=self.api_version,
            kind=self.kind,
            namespace=self.namespace,
            name=self.name,
            name_is_prefix=not self.metadata.get("name") and bool(self.metadata.get("generateName")),
        )

    @cached_property
    def full_data(self) -> dict:
        """The whole object, the skimmed body included (parsed on first use)."""
        return yaml.load(self.source, Loader=KubeLoader) if self.skimmed else self.data

    @property
    def location(self) -> tuple[str, int, int | None]:
        """Where the object is: file, document, item of a `kind: List`."""
        return (self.path, self.document_index, self.list_index)

    def with_data(self, data: dict) -> K8sObject:
        """The same object, at the same place, with other content (a patched copy)."""
        return K8sObject(
            self.path, self.document_index, self.line, data, self.list_index, built_by=self.built_by, template=self.template, unstructured=self.unstructured,
            chart=self.chart,
        )

    @cached_property
    def shared_paths(self) -> frozenset[str]:
        """JSON Pointers of every map or list that stands at more than one place (a YAML alias)."""
        if not self.shares_nodes:
            return frozenset()
        first: dict[int, str] = {}
        shared: set[str] = set()
        stack: list[tuple[Any, str]] = [(self.data, "")]
        while stack:
            node, where = stack.pop()
            if not isinstance(node, (dict, list)):
                continue
            if id(node) in first:
                shared |= {first[id(node)], where}
                continue
            first[id(node)] = where
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((child, f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}") for key, child in items)
        return frozenset(shared)

    # --- pod template ------------------------------------------------------

    @cached_property
    def workload_kind(self) -> bool:
        """A kind and API version that runs pods (whatever its content)."""
        return self.kind in POD_SPEC_PATHS and self.api_version in WORKLOAD_API_VERSIONS[self.kind]

    @cached_property
    def pod_spec_segments(self) -> tuple[str, ...] | None:
        if not self.workload_kind or self.unstructured:
            return None
        segments = POD_SPEC_PATHS[self.kind]
        node: Any = self.data
        for segment in segments:
            node = node.get(segment) if isinstance(node, dict) else node
            if node is None:
                return segments  # not written: an empty pod, as Kubernetes (and kube-linter) read it
            if not isinstance(node, dict):
                return None
        return segments

    @cached_property
    def pod_spec(self) -> dict | None:
        """The pod template's spec; an empty one when the object leaves it out."""
        if self.pod_spec_segments is None:
            return None
        node: Any = self.data
        for segment in self.pod_spec_segments:
            node = node.get(segment)
            if node is None:
                return {}
        return node

    @property
    def deployment_like_kind(self) -> bool:
        """kube-linter's "DeploymentLike" kinds, matched by kind alone (extensions/v1beta1 ones are not)."""
        return self.workload_kind and self.group != "extensions"

    @property
    def is_deployment_like(self) -> bool:
        """A workload whose pods the container and pod checks look at."""
        return self.deployment_like_kind and self.pod_spec is not None

    @cached_property
    def pod_spec_pointer(self) -> str | None:
        segments = self.pod_spec_segments
        return pointer(*segments) if segments else None

    @cached_property
    def pod_labels(self) -> dict:
        """Labels of the pods this object runs (a Pod's own labels)."""
        if self.kind == "Pod":
            return self.labels
        segments = self.pod_spec_segments
        if not segments:
            return {}
        node: Any = self.data
        for segment in segments[:-1]:
            node = _as_dict(node.get(segment))
        return _as_dict(_as_dict(node.get("metadata")).get("labels"))

    @cached_property
    def containers(self) -> list[Container]:
        spec = self.pod_spec
        if spec is None:
            return []
        base = self.pod_spec_segments
        found = []
        for group in CONTAINER_GROUPS:
            items = spec.get(group)
            if not isinstance(items, list):
                continue
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    found.append(Container(group, index, item, (*base, group, index), spec))
        return found

    def containers_of(self, *groups: str) -> list[Container]:
        return [c for c in self.containers if c.group in groups]

    def container_named(self, name: str | None) -> Container | None:
        return next((c for c in self.containers if c.name == name), None) if name is not None else None

    def __repr__(self) -> str:
        return f"<K8sObject {self.ref} {self.path}#{self.document_index}>"


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
