"""The Kubernetes OpenAPI schemas of each release, as kubernetes-validate ships
them (its "strict" variants: an unknown field is an error). Read here, used by
the schema gate (``verify/schema.py``) and by the decode check (``decoding.py``)."""

from __future__ import annotations

import importlib.resources
import json
import re
from functools import lru_cache
from pathlib import Path

# Removed API versions have no schema in the shipped releases; they are
# validated against the version that replaced them with the same shape.
SUCCESSORS = {
    ("batch/v1beta1", "CronJob"): "batch/v1",
    ("policy/v1beta1", "PodDisruptionBudget"): "policy/v1",
    ("autoscaling/v2beta1", "HorizontalPodAutoscaler"): "autoscaling/v2",
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "autoscaling/v2",
    ("apps/v1beta1", "Deployment"): "apps/v1",
    ("apps/v1beta2", "Deployment"): "apps/v1",
    ("apps/v1beta1", "StatefulSet"): "apps/v1",
    ("apps/v1beta2", "StatefulSet"): "apps/v1",
    ("apps/v1beta2", "DaemonSet"): "apps/v1",
    ("apps/v1beta2", "ReplicaSet"): "apps/v1",
}


class SchemaSetupError(Exception):
    pass


def _schema_root() -> Path:
    return Path(str(importlib.resources.files("kubernetes_validate"))) / "kubernetes-json-schema"


@lru_cache(maxsize=None)
def available_versions() -> list[str]:
    found = {m.group(1) for p in _schema_root().iterdir() if (m := re.match(r"v(\d+\.\d+)\.\d+-local-strict$", p.name))}
    return sorted(found, key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.lstrip("v").split(".")[:2])


@lru_cache(maxsize=None)
def release_for(kube_version: str) -> str:
    """The newest release with schemas that is not newer than ``kube_version``."""
    versions = available_versions()
    usable = [v for v in versions if version_key(v) <= version_key(kube_version)]
    if not usable:
        raise SchemaSetupError(f"no schemas for Kubernetes {kube_version}; available: {versions[0]} to {versions[-1]}")
    return usable[-1]


@lru_cache(maxsize=None)
def version_dir(release: str) -> Path:
    return next(_schema_root().glob(f"v{release}.*-local-strict"))


@lru_cache(maxsize=None)
def definitions(release: str) -> dict:
    return json.loads((version_dir(release) / "_definitions.json").read_text())["$defs"]


def schema_file_name(api_version: str, kind: str) -> str | None:
    """kubernetes-validate's file name (rbac.authorization.k8s.io/v1 -> rbac-v1);
    None for groups that are not Kubernetes' own (a CRD's batch.example.com/v1
    must not pick up batch/v1's schema)."""
    group = api_version.rpartition("/")[0]
    if group and "." in group and not group.endswith(".k8s.io"):
        return None
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{api}.json"


@lru_cache(maxsize=None)
def builtin_schema(release: str, api_version: str, kind: str) -> tuple[dict, bool] | None:
    """(the kind's schema, whether it is its successor's), read once; None for
    a kind Kubernetes does not have (a custom resource)."""
    folder = version_dir(release)
    for candidate in (api_version, SUCCESSORS.get((api_version, kind))):
        name = schema_file_name(candidate, kind) if candidate else None
        if name and (folder / name).is_file():
            return json.loads((folder / name).read_text()), candidate != api_version
    return None
