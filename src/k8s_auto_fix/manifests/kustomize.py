"""Kustomizations as input: linted as `kustomize build` produces them.

A folder with a kustomization file is one application. Its objects are the
built ones (what the cluster gets, with every patch applied), each pointing
back at the resource file it came from through kustomize's origin
annotations, so findings name the file a person edits. The files a
kustomization uses (its resources, patches, and the bases it builds on) are
not linted on their own: a patch file is a partial object, and a base is
linted as the overlay uses it. A kustomization that another one in the input
builds on is linted through that one only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import yaml

from ..contracts import Problem
from .objects import K8sObject
from .yaml_compat import KubeLoader

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
ORIGIN = "config.kubernetes.io/origin"


def kustomization_file(folder: str) -> str | None:
    return next((os.path.join(folder, n) for n in KUSTOMIZATIONS if os.path.isfile(os.path.join(folder, n))), None)


def _read(kustomization: str) -> dict:
    try:
        with open(kustomization, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=yaml.CSafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class KustomizeTree:
    """What the kustomizations under some folders use: the files that are not
    objects of their own, and the kustomizations other ones build on."""

    files: dict[str, str] = field(default_factory=dict)  # used file -> the kustomization using it
    bases: set[str] = field(default_factory=set)  # folders another kustomization builds on

    def add(self, folder: str, seen: set[str] | None = None) -> None:
        seen = seen if seen is not None else set()
        folder = os.path.normpath(os.path.abspath(folder))
        kustomization = kustomization_file(folder)
        if kustomization is None or folder in seen:
            return
        seen.add(folder)
        data = _read(kustomization)
        listed = [p for key in ("resources", "bases", "components") for p in data.get(key) or [] if isinstance(p, str)]
        listed += [p for p in data.get("patchesStrategicMerge") or [] if isinstance(p, str) and "\n" not in p]
        listed += [e["path"] for key in ("patches", "patchesJson6902") for e in data.get(key) or [] if isinstance(e, dict) and isinstance(e.get("path"), str)]
        for entry in listed:
            target = os.path.normpath(os.path.join(folder, entry))
            if os.path.isdir(target):
                self.bases.add(target)
                self.add(target, seen)
            else:
                self.files.setdefault(target, kustomization)


def build(folder: str) -> tuple[list[K8sObject], list[Problem]]:
    """The objects `kubectl kustomize` builds from ``folder``, each at its origin
    (the resource file and document it came from) when kustomize knows it."""
    kubectl = shutil.which("kubectl") or shutil.which("kustomize")
    if kubectl is None:
        return [], [Problem(folder, "kustomization: neither kubectl nor kustomize is on PATH to build it")]
    given, folder = folder, os.path.abspath(folder)
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-kustomize-") as scratch:
        # A kustomization of our own around the user's, for origin annotations
        # (the user's file is not touched).
        relative = os.path.relpath(folder, scratch)
        with open(os.path.join(scratch, "kustomization.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump({"resources": [relative], "buildMetadata": ["originAnnotations"]}, handle)
        command = [kubectl, "kustomize", scratch, "--load-restrictor", "LoadRestrictionsNone"] if os.path.basename(kubectl) == "kubectl" else [kubectl, "build", scratch, "--load-restrictor", "LoadRestrictionsNone"]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return [], [Problem(folder, f"kustomize build failed: {message[-300:]}")]
        objects = [_at_origin(doc, scratch, folder) for doc in yaml.load_all(proc.stdout, Loader=KubeLoader) if isinstance(doc, dict)]
    if not os.path.isabs(given):  # paths as the user gave them
        for obj in objects:
            obj.path, obj.built_by = os.path.relpath(obj.path), given
    return objects, []


def _at_origin(data: dict, scratch: str, folder: str) -> K8sObject:
    annotations = (data.get("metadata") or {}).get("annotations") or {}
    origin = yaml.safe_load(annotations.pop(ORIGIN, "") or "") or {}
    if not annotations and isinstance(data.get("metadata"), dict):
        data["metadata"].pop("annotations", None)
    path = origin.get("path") if isinstance(origin, dict) else None
    source = os.path.normpath(os.path.join(scratch, path)) if path else None
    index, line = _document_of(source, data) if source else (None, None)
    if source is None or index is None:
        # Made by a generator, or not found again in its file: it belongs to the kustomization.
        return K8sObject(kustomization_file(folder) or folder, -1, 1, data, built_by=folder)
    return K8sObject(source, index, line, data, built_by=folder)


def _document_of(path: str, built: dict) -> tuple[int | None, int | None]:
    """The document of ``path`` a built object came from: the only one of its
    kind, or the one whose name the built name contains (name prefixes and suffixes)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return None, None
    loader = yaml.CSafeLoader(text)
    candidates = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            if isinstance(data, dict) and data.get("kind") == built.get("kind"):
                candidates.append((index, node.start_mark.line + 1, str((data.get("metadata") or {}).get("name") or "")))
            index += 1
    except yaml.YAMLError:
        return None, None
    finally:
        loader.dispose()
    name = str((built.get("metadata") or {}).get("name") or "")
    matching = [c for c in candidates if c[2] and c[2] in name] or (candidates if len(candidates) == 1 else [])
    return (matching[0][0], matching[0][1]) if len(matching) == 1 else (None, None)
