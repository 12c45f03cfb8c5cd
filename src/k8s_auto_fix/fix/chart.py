"""Fixes of the objects a Helm chart renders, as the chart's user can apply them.

A template is Go text around YAML: rewriting it safely is not possible in
general, so the verified patches of rendered objects leave the chart alone
and come out in two forms:

- a values override (``--emit-values FILE``) for the fields the chart
  exposes. Whether a values key reaches a field is found by rendering: the
  chart is rendered with a probe value at each candidate key, and a key is
  kept only where its probe appears at the field. The file is then checked
  by rendering once more with it.
- a Kustomize post-renderer (``--emit-post-renderer DIR``): ``DIR/post-render``
  reads `helm template`/`helm install` output on stdin and writes it back with
  the verified patches applied (``kubectl kustomize``, or ``kustomize build``).
"""

from __future__ import annotations

import copy
import difflib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from ..contracts import write_text_atomic
from ..manifests import helm
from ..patch import MISSING, parse_pointer, pointer, resolve
from .engine import ChartFix

# Generic path segments no values key is named after.
_GENERIC = frozenset({"spec", "template", "metadata", "jobTemplate"})


class ChartFixError(Exception):
    pass


def by_chart(fixes: list[ChartFix]) -> dict[str, list[ChartFix]]:
    found: dict[str, list[ChartFix]] = {}
    for fix in fixes:
        found.setdefault(fix.chart, []).append(fix)
    return found


def fixed_count(fixes: list[ChartFix]) -> int:
    return sum(len(f.edit.fixed) for f in fixes)


# --- --diff: the rendered objects before and after ------------------------------------


def rendered_diff(fixes: list[ChartFix]) -> str:
    """A unified diff of each rendered object (its template is not changed)."""
    chunks = []
    for fix in sorted(fixes, key=lambda f: (f.edit.path, f.edit.document_index)):
        ref = fix.edit.ref
        relative = os.path.relpath(fix.edit.path)
        name = f"{relative if not relative.startswith('..') else fix.edit.path.lstrip('/')} (rendered {ref.kind}/{ref.name})"
        before = yaml.safe_dump(fix.before, sort_keys=False).splitlines(True)
        after = yaml.safe_dump(fix.after, sort_keys=False).splitlines(True)
        for obj in fix.edit.creates:
            after += ["---\n", *yaml.safe_dump(obj, sort_keys=False).splitlines(True)]
        chunks += difflib.unified_diff(before, after, f"a/{name}", f"b/{name}")
    return "".join(chunks)


# --- --emit-post-renderer ----------------------------------------------------------

POST_RENDER = """#!/bin/sh
# Helm post-renderer written by k8s-auto-fix: the verified fixes of {chart}
# applied to the rendered manifests, as JSON 6902 patches (kustomization.yaml).
#   helm template {release} CHART --post-renderer {script}
# The patches target the objects by kind and name as rendered with the release
# name "{release}" and the values given to `k8s-auto-fix fix`: use the same ones.
# Helm 3 does not pass hooks (tests, pre/post-install jobs) to a post-renderer.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$here/kustomization.yaml" "$here/created" "$work/"
cat > "$work/rendered.yaml"
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "$work"
else
  kustomize build "$work"
fi
"""


def is_hook(fix: ChartFix) -> bool:
    """A Helm hook (tests, jobs run before or after install): Helm 3 never
    passes hooks to a post-renderer, so only the chart can fix them."""
    return "helm.sh/hook" in ((fix.before.get("metadata") or {}).get("annotations") or {})


def emit_post_renderer(fixes: list[ChartFix], folder: Path) -> tuple[Path, list[ChartFix]]:
    """DIR/post-render and its kustomization: the script's path, and the
    fixes it cannot apply (of hooks)."""
    charts = by_chart(fixes)
    if len(charts) > 1:
        raise ChartFixError(f"--emit-post-renderer takes one chart at a time, not {len(charts)}: {', '.join(sorted(charts))}")
    chart = next(iter(charts), "")
    resources, patches, created = ["rendered.yaml"], [], {}
    hooks = [f for f in fixes if is_hook(f)]
    for fix in sorted((f for f in fixes if not is_hook(f)), key=lambda f: (f.edit.path, f.edit.document_index)):
        ref = fix.edit.ref
        if fix.edit.ops:
            group, _, version = ref.api_version.rpartition("/")
            target = {"group": group, "version": version, "kind": ref.kind, "name": ref.name} | ({"namespace": ref.namespace} if ref.namespace else {})
            patches.append({"target": target, "patch": yaml.safe_dump(fix.edit.ops, sort_keys=False)})
        for obj in fix.edit.creates:
            meta = obj.get("metadata") or {}
            created[f"created/{str(obj.get('kind')).lower()}-{meta.get('namespace') or ''}-{meta.get('name')}.yaml"] = obj
    (folder / "created").mkdir(parents=True, exist_ok=True)
    for relative, obj in sorted(created.items()):
        write_text_atomic(folder / relative, yaml.safe_dump(obj, sort_keys=False))
        resources.append(relative)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources, "patches": patches}
    header = f"# Written by k8s-auto-fix: verified fixes of the objects {chart} renders; post-render feeds it the rendered manifests.\n"
    write_text_atomic(folder / "kustomization.yaml", header + yaml.safe_dump(kustomization, sort_keys=False))
    script = folder / "post-render"
    write_text_atomic(script, POST_RENDER.format(chart=chart, release=helm.current().release, script=script))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script, hooks


# --- --emit-values -----------------------------------------------------------------


def emit_values(fixes: list[ChartFix], target: Path) -> tuple[int, int, list[str]]:
    """A values override for the changed fields the chart exposes, found by
    probing, checked by rendering with it. Returns (fields covered, fields
    changed, the fields not exposed)."""
    charts = by_chart(fixes)
    if len(charts) > 1:
        raise ChartFixError(f"--emit-values takes one chart at a time, not {len(charts)}: {', '.join(sorted(charts))}")
    if not charts:
        write_text_atomic(target, "# Written by k8s-auto-fix: no verified fix to express as values.\n{}\n")
        return 0, 0, []
    chart = next(iter(charts))
    leaves = [(fix, leaf, value) for fix in fixes for leaf, value in changed_leaves(fix)]
    chart_values = _chart_values(chart)
    override: dict = {}
    missing = []
    for fix, leaf, value in leaves:
        key = _exposing_key(chart, chart_values, fix, leaf, value)
        if key is None:
            missing.append(f"{fix.edit.ref.kind}/{fix.edit.ref.name} {leaf}")
        else:
            _set(override, key, value)
    text = "# Written by k8s-auto-fix: values that make the chart render its verified fixes.\n"
    text += f"# helm template {helm.current().release} {chart} --values {target.name}\n"
    text += yaml.safe_dump(override, sort_keys=False) if override else "{}\n"
    if override:
        _check_override(chart, fixes, override, leaves, missing)
    write_text_atomic(target, text)
    return len(leaves) - len(missing), len(leaves), missing


def changed_leaves(fix: ChartFix) -> Iterator[tuple[str, object]]:
    """(pointer, value) of each field the fix sets: maps are split into their
    fields, a list is one field (values replace lists whole)."""
    seen: set[str] = set()
    for op in fix.edit.ops:
        if op.get("op") not in ("add", "replace"):
            continue
        parts = parse_pointer(op["path"])
        if parts and (parts[-1] == "-" or parts[-1].isdigit()):
            parts = parts[:-1]
        for leaf in _leaf_pointers(parts, resolve(fix.after, parts)):
            if leaf not in seen:
                seen.add(leaf)
                yield leaf, resolve(fix.after, parse_pointer(leaf))


def _leaf_pointers(parts: list[str], value) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaf_pointers([*parts, str(key)], item)
    else:
        yield pointer(*parts)


def _chart_values(chart: str) -> dict:
    """The chart's values with the user's files over them (what keys exist)."""
    merged: dict = {}
    for path in [os.path.join(chart, "values.yaml"), *helm.current().values]:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            _merge(merged, data)
    return merged


def _candidates(values: dict, leaf: str) -> list[tuple[str, ...]]:
    """Values keys that may reach ``leaf``: a map of the values named like one
    of the leaf's path segments (``securityContext``, ``containerSecurityContext``,
    ``resources``), continued with the rest of the leaf's path."""
    parts = parse_pointer(leaf)
    found = []
    for path in _map_paths(values):
        name = path[-1].lower() if path else ""
        for i, segment in enumerate(parts[:-1] if len(parts) > 1 else parts):
            if segment in _GENERIC or segment.isdigit() or not name.endswith(segment.lower()):
                continue
            found.append(path + tuple(parts[i + 1 :]))
    return list(dict.fromkeys(found))


def _map_paths(values: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        if isinstance(value, dict):
            yield (*prefix, str(key))
            yield from _map_paths(value, (*prefix, str(key)))


def _exposing_key(chart: str, values: dict, fix: ChartFix, leaf: str, value) -> tuple[str, ...] | None:
    """The first candidate key whose probe value appears at ``leaf`` of the rendered object."""
    candidates = [c for c in _candidates(values, leaf) if len(c) > 0]
    if not candidates:
        return None
    probes = {f"k8s-auto-fix-probe-{n}": c for n, c in enumerate(candidates)}
    # All candidates in one render where they can share a values tree, each with its own probe.
    together: dict = {}
    for probe, key in probes.items():
        if not _set(together, key, probe, only_if_free=True):
            together = {}
            break
    if together:
        seen = _rendered_value(chart, fix, leaf, together)
        if seen in probes:
            return probes[seen]
    # One render per candidate, with the fix's own value (a chart's schema may refuse a string).
    for key in candidates:
        trial: dict = {}
        _set(trial, key, value)
        if _rendered_value(chart, fix, leaf, trial) == value and resolve(fix.before, parse_pointer(leaf)) != value:
            return key
    return None


def _rendered_value(chart: str, fix: ChartFix, leaf: str, values: dict):
    rendered = _render_with(chart, values)
    if rendered is None:
        return MISSING
    obj = _same_object(rendered, fix)
    return MISSING if obj is None else resolve(obj, parse_pointer(leaf))


def _render_with(chart: str, values: dict) -> list[dict] | None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="k8s-auto-fix-values-", delete=False) as handle:
        yaml.safe_dump(values, handle)
    try:
        text = helm.template(chart, extra_values=(handle.name,))
    except helm.HelmError:
        return None
    finally:
        os.unlink(handle.name)
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def _same_object(rendered: list[dict], fix: ChartFix) -> dict | None:
    ref = fix.edit.ref
    for obj in rendered:
        meta = obj.get("metadata") or {}
        if (obj.get("kind"), meta.get("name"), meta.get("namespace") or "") == (ref.kind, ref.name, ref.namespace):
            return obj
    return None


def _check_override(chart: str, fixes: list[ChartFix], override: dict, leaves, missing: list[str]) -> None:
    """Render once with the whole override: each covered field must have its value."""
    rendered = _render_with(chart, override) or []
    for fix, leaf, value in leaves:
        obj = _same_object(rendered, fix)
        label = f"{fix.edit.ref.kind}/{fix.edit.ref.name} {leaf}"
        if label not in missing and (obj is None or resolve(obj, parse_pointer(leaf)) != value):
            missing.append(label + " (not confirmed)")




def _set(tree: dict, key: tuple[str, ...], value, only_if_free: bool = False) -> bool:
    node = tree
    for part in key[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    if only_if_free and key[-1] in node:
        return False
    node[key[-1]] = copy.deepcopy(value)
    return True


def _merge(base: dict, over: dict) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
