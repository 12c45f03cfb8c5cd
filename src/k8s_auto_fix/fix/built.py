"""Fixes of the objects a kustomization builds, written where a person keeps them.

A built object is the resource file's object with the kustomization's
patches on top. A fix is written into the resource file when it means the
same there: every operation finds in the resource's own object what it
finds in the built one (the map it adds a key to, the list it appends to,
the value it replaces). Otherwise (the overlay changes what the fix
touches, or kustomize generated the object) the fix becomes a JSON 6902 patch
of its own, listed in the kustomization's ``patches``.
"""

from __future__ import annotations

import io
import os

import yaml

from ..contracts import ObjectEdit
from ..manifests.kustomize import kustomization_file
from ..manifests.loader import load_file
from ..manifests.objects import K8sObject
from ..patch import MISSING, PATCH_ERRORS, apply_patch, parse_pointer, resolve
from .roundtrip import _yaml
from .textedit import apply_ops_fast


def place_built_edits(edits: list[ObjectEdit], objects: dict[tuple, K8sObject]) -> tuple[list[ObjectEdit], dict[str, str], list[str]]:
    """Edits of built objects retargeted to their resource files where they mean
    the same there; the others as patch files and kustomization changes (new texts)."""
    kept, patches, problems = [], {}, []
    for edit in edits:
        built = objects.get(edit.location)
        if built is None or built.built_by is None:
            kept.append(edit)
            continue
        resource = _resource_object(built) if built.document_index >= 0 else None
        if resource is not None and _same_meaning(resource.data, built.data, edit.ops):
            kept.append(edit.model_copy(update={"ref": resource.ref}))
        elif edit.ops:
            patches.setdefault(built.built_by, []).append((edit, built, resource))
        else:
            kept.append(edit)  # only creates objects: they go next to the resource
    texts = {}
    for folder, entries in patches.items():
        try:
            texts |= _as_patches(folder, entries)
        except (OSError, ValueError, yaml.YAMLError) as err:
            problems.append(f"{folder}: the fixes could not be added as patches: {err}")
            continue
        kustomization = kustomization_file(folder)
        for edit, _, _ in entries:  # counted as fixed where the patch is listed
            kept.append(ObjectEdit(path=kustomization, document_index=-1, ref=edit.ref, fixed=edit.fixed))
    return kept, texts, problems


def _resource_object(built: K8sObject) -> K8sObject | None:
    for obj in load_file(built.path).objects:
        if obj.document_index == built.document_index and obj.list_index == built.list_index:
            return obj
    return None


def _same_meaning(resource: dict, built: dict, ops: list[dict]) -> bool:
    """Whether each operation finds the same thing in both objects, as the earlier ones leave them."""
    for op in ops:
        parts = parse_pointer(op.get("path", ""))
        if op.get("op") not in ("add", "replace", "remove") or not parts:
            return False
        parent_r, parent_b = resolve(resource, parts[:-1]), resolve(built, parts[:-1])
        if (parent_r is MISSING) != (parent_b is MISSING) or type(parent_r) is not type(parent_b):
            return False
        if op["op"] == "add" and isinstance(parent_b, dict) and (parts[-1] in parent_b or parts[-1] in parent_r):
            return False
        if op["op"] == "add" and isinstance(parent_b, list) and parts[-1] != "-":
            return False
        if op["op"] in ("replace", "remove") and resolve(resource, parts) != resolve(built, parts):
            return False
        try:
            resource, built = apply_patch(resource, [op]), apply_patch(built, [op])
        except PATCH_ERRORS:
            return False
    return True




def _as_patches(folder: str, entries) -> dict[str, str]:
    """One patch file per object, and the kustomization listing them."""
    kustomization = kustomization_file(folder)
    with open(kustomization, encoding="utf-8") as handle:
        text = handle.read()
    data = yaml.safe_load(text) or {}
    texts, new = {}, []
    for edit, built, resource in entries:
        ref = (resource or built).ref
        name = f"k8s-auto-fix-{ref.kind.lower()}-{ref.name}.yaml"
        target = {"kind": ref.kind, "name": ref.name} | ({"namespace": ref.namespace} if ref.namespace else {})
        group = ref.api_version.rpartition("/")[0]
        target = ({"group": group} if group else {}) | {"version": ref.api_version.rpartition("/")[2]} | target
        texts[os.path.join(folder, name)] = "# Written by k8s-auto-fix: verified fixes of the object this kustomization builds.\n" + yaml.safe_dump(edit.ops, sort_keys=False)
        if not any(isinstance(p, dict) and p.get("path") == name for p in data.get("patches") or []):
            new.append({"path": name, "target": target})
    if new:
        ops = [{"op": "add", "path": "/patches/-", "value": p} for p in new] if isinstance(data.get("patches"), list) else [{"op": "add", "path": "/patches", "value": new}]
        updated = apply_ops_fast(text, ops, _yaml(text))
        if updated is None:
            out = io.StringIO()
            _yaml(text).dump(apply_patch(data, ops), out)
            updated = out.getvalue()
        texts[kustomization] = updated
    return texts
