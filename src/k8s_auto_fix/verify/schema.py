"""The schema gate: strict, offline validation against the Kubernetes OpenAPI schemas.

Schemas come from the `kubernetes-validate` package (its "strict" variants,
where an unknown field is an error). Each kind's schema is compiled once into
Python code with fastjsonschema and cached on disk, so later runs import it.
Custom resources are validated against the CRDs found in the input (and
``--crds``), made strict the same way. ``kubectl-validate`` and a server-side
dry run are the other two modes (see ``external.py``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import fastjsonschema

from ..defaults import DEFAULT_KUBE_VERSION
from ..manifests.names import name_errors
from ..manifests.schemas import builtin_schema, definitions, release_for
from ..patch import op_paths, parse_pointer

Validate = Callable[[dict], None]


def _cache_dir() -> Path:
    base = os.environ.get("K8S_AUTO_FIX_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "k8s-auto-fix")
    return Path(base) / "schemas"


# Per process: digest -> validator, the ones used last (a fleet's CRDs are many; the built-in kinds stay, in use).
_COMPILED: OrderedDict[str, Validate] = OrderedDict()
COMPILED_KEPT = 512


def compile_cached(schema: dict, fast_fail: bool = True) -> Validate:
    """fastjsonschema code for ``schema``, generated once and kept on disk.

    ``fast_fail`` stops at the first error (fast, for the common valid case);
    without it every error is collected (to tell new errors from old ones)."""
    text = json.dumps(schema, sort_keys=True)
    digest = hashlib.sha256(f"{fastjsonschema.VERSION}\0{fast_fail}\0{text}".encode()).hexdigest()[:24]
    if digest in _COMPILED:
        _COMPILED.move_to_end(digest)
        return _COMPILED[digest]
    path = _cache_dir() / f"v_{digest}.py"
    if not path.is_file():
        code = fastjsonschema.compile_to_code(
            schema, use_default=False, use_formats=False, detailed_exceptions=False, fast_fail=fast_fail
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(code, encoding="utf-8")
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"k8s_auto_fix_schema_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _COMPILED[digest] = module.validate
    if len(_COMPILED) > COMPILED_KEPT:
        _COMPILED.popitem(last=False)
    return module.validate


class SchemaValidator:
    """Strict validation of objects; ``errors(obj)`` is empty when valid."""

    def __init__(self, kube_version: str = DEFAULT_KUBE_VERSION, crds: Iterable[dict] = ()):
        self.kube_version = release_for(kube_version)
        self._validators: dict[tuple, object] = {}  # compiled validators and kind schemas
        self._crd_schemas: dict[tuple[str, str], dict] = {}
        for crd in crds:
            self.add_crd(crd)

    @property
    def _definitions(self) -> dict:
        return definitions(self.kube_version)

    def add_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            schema = ((version or {}).get("schema") or {}).get("openAPIV3Schema")
            if group and kind and isinstance(schema, dict):
                self._crd_schemas[(f"{group}/{version.get('name')}", kind)] = schema

    def errors(self, obj: dict) -> list[str]:
        """Every schema error of ``obj`` (sorted); empty when it is valid."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        quick = self._validator(api_version, kind, fast_fail=True)
        if quick is None:
            return [f"no schema for {api_version} {kind} in Kubernetes {self.kube_version} or in the CRDs given"]
        names = name_errors(obj)
        try:
            quick(obj)
            return names
        except fastjsonschema.JsonSchemaValueException:
            pass
        try:
            self._validator(api_version, kind, fast_fail=False)(obj)
        except fastjsonschema.JsonSchemaValuesException as err:
            return names + sorted({e.message for e in err.errors})
        except fastjsonschema.JsonSchemaValueException as err:
            return names + [err.message]
        return names

    def new_errors(self, before: dict, after: dict, ops: list[dict]) -> list[str]:
        """Schema errors in ``after`` that ``before`` did not have, looking only
        at the subtrees the patch touched: each operation's parent, widened to
        the nearest enclosing schema definition (a Container, a PodSpec, ...).
        The rest of the object is shared with ``before`` and so unchanged."""
        api_version, kind = str(after.get("apiVersion", "")), str(after.get("kind", ""))
        top = self._top_schema(api_version, kind)
        if top is None or (api_version, kind) != (before.get("apiVersion"), before.get("kind")):
            return self._diff(self.errors(before), self.errors(after))
        if before.get("metadata") is not after.get("metadata"):
            new_names = self._diff(name_errors(before), name_errors(after))
        else:
            new_names = []
        roots: set[tuple] = set()
        for op in ops:
            for path in op_paths(op):
                parts = _parts(path)
                if op.get("op") in ("add", "replace", "copy", "move") and path == op.get("path"):
                    # The new value and what holds it: its own definition when
                    # the key is known, else the parent's (an unknown field).
                    if parts and parts[-1] == "-":
                        parent = _get(after, parts[:-1])
                        parts[-1] = len(parent) - 1 if isinstance(parent, list) else 0
                    roots.add(self._definition_root(top, parts))
                else:
                    roots.add(self._definition_root(top, parts[:-1]))
        new: list[str] = new_names
        for depth_parts, definition in sorted(roots, key=lambda r: len(r[0])):
            if any(depth_parts[: len(other)] == other for other, _ in roots if len(other) < len(depth_parts)):
                continue  # inside another subtree that is validated whole
            if definition is None:
                return self._diff(self.errors(before), self.errors(after))
            prefix = "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in depth_parts)
            old, value = _get(before, depth_parts), _get(after, depth_parts)
            if value is _MISSING:
                continue
            new += self._diff(
                self._definition_errors(api_version, kind, definition, old, prefix) if old is not _MISSING else [],
                self._definition_errors(api_version, kind, definition, value, prefix),
            )
        return new

    @staticmethod
    def _diff(before: list[str], after: list[str]) -> list[str]:
        return [e for e in after if e not in before]

    def _definition_root(self, top: dict, parts: list) -> tuple[tuple, str | None]:
        """The deepest prefix of ``parts`` that is typed by a named definition."""
        node, best = top, ((), None)
        for depth in range(len(parts) + 1):
            while isinstance(node, dict) and "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                best = (tuple(parts[:depth]), name)
                node = self._definitions.get(name, {})
            if depth == len(parts) or not isinstance(node, dict):
                break
            part = parts[depth]
            if isinstance(node.get("properties"), dict) and part in node["properties"]:
                node = node["properties"][part]
            elif isinstance(part, int) and isinstance(node.get("items"), dict):
                node = node["items"]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                break
        return best

    def _definition_errors(self, api_version: str, kind: str, definition: str, value, prefix: str) -> list[str]:
        for fast_fail in (True, False):
            key = ("def", definition, fast_fail)
            if key not in self._validators:
                needed = self._reachable({definition})
                self._validators[key] = compile_cached({"$ref": f"#/definitions/{definition}", "definitions": needed}, fast_fail)
            try:
                self._validators[key](value, name_prefix=prefix)
                return []
            except fastjsonschema.JsonSchemaValuesException as err:
                return sorted({e.message for e in err.errors})
            except fastjsonschema.JsonSchemaValueException as err:
                if not fast_fail:
                    return [err.message]
        return []

    def _builtin_schema(self, api_version: str, kind: str) -> tuple[dict, bool] | None:
        return builtin_schema(self.kube_version, api_version, kind)

    def _top_schema(self, api_version: str, kind: str) -> dict | None:
        """The kind's own schema (built-in kinds only; CRDs are validated whole)."""
        key = ("top", api_version, kind)
        if key not in self._validators:
            found = None if (api_version, kind) in self._crd_schemas else self._builtin_schema(api_version, kind)
            self._validators[key] = _rewrite_refs(found[0]) if found else None
        return self._validators[key]

    def _validator(self, api_version: str, kind: str, fast_fail: bool) -> Validate | None:
        key = (api_version, kind, fast_fail)
        if key not in self._validators:
            self._validators[key] = self._build(api_version, kind, fast_fail)
        return self._validators[key]

    def _build(self, api_version: str, kind: str, fast_fail: bool) -> Validate | None:
        if (api_version, kind) in self._crd_schemas:
            return compile_cached(crd_schema(self._crd_schemas[(api_version, kind)]), fast_fail)
        found = self._builtin_schema(api_version, kind)
        if found is None:
            return None
        schema, successor = found
        # A successor's schema pins apiVersion/kind to its own: accept the original's.
        return compile_cached(self._standalone(schema, relax_identity=successor), fast_fail)

    def _reachable(self, names: set[str]) -> dict[str, dict]:
        """The named definitions and every definition they refer to, refs rewritten."""
        needed: dict[str, dict] = {}
        pending = set(names)
        while pending:
            name = pending.pop()
            if name not in needed:
                needed[name] = _rewrite_refs(self._definitions[name])
                pending |= _refs(self._definitions[name]) - needed.keys()
        return needed

    def _standalone(self, schema: dict, relax_identity: bool) -> dict:
        """The kind's schema with every definition it reaches inlined."""
        top = _rewrite_refs(schema)
        top.pop("$schema", None)
        if relax_identity:
            props = dict(top.get("properties", {}))
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            top["properties"] = props
        top["definitions"] = self._reachable(_refs(schema))
        return top


_MISSING = object()


def _parts(path: str) -> list:
    """JSON Pointer -> keys and list indices ("-" stays a string)."""
    return [int(p) if p.isdigit() else p for p in parse_pointer(path)]


def _get(data, parts):
    node = data
    for part in parts:
        if isinstance(node, dict) and (part in node or str(part) in node):
            node = node[part] if part in node else node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return _MISSING
    return node


_REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def _ref_name(ref: object) -> str | None:
    if isinstance(ref, str):
        for prefix in _REF_PREFIXES:
            if ref.startswith(prefix):
                return ref[len(prefix) :]
    return None


def _refs(node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = _ref_name(item.get("$ref"))
            if name:
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _rewrite_refs(node):
    if isinstance(node, dict):
        # "$id" is dropped too: fastjsonschema names the validator after it.
        return {
            k: ("#/definitions/" + _ref_name(v) if k == "$ref" and _ref_name(v) else _rewrite_refs(v))
            for k, v in node.items()
            if k != "$id"
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def crd_schema(openapi: dict) -> dict:
    """A CRD's structural schema, strict (unknown fields are errors unless the
    CRD preserves them), with apiVersion/kind/metadata allowed at the top."""

    def strict(node):
        if isinstance(node, list):
            return [strict(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
        if node.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out

    top = strict(openapi)
    props = dict(top.get("properties", {}))
    props.update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
    top["properties"] = props
    return top
