"""Would kube-linter, kubectl and the API server be able to read this object?

They decode a built-in kind into its Go struct. Two things can go wrong, and
kube-linter treats them differently:

- a JSON type error (``value: false`` where a string belongs, ``replicas:
  "3"``): the object cannot be loaded at all. kube-linter skips it with a
  warning; the API server refuses it. We report it as an error and do not
  lint it.
- a value its own type cannot parse (``cpu: ${CPU_LIMIT}`` is no quantity, a
  time that is no RFC 3339 time, Secret data that is not base64): the typed
  decode fails, and kube-linter falls back to a generic object. Checks that
  read the pod template see none; checks of metadata still run. We mark the
  object ``unstructured`` and do the same.

The types come from the Kubernetes OpenAPI schemas that the schema gate uses
(kubernetes-validate); unknown fields are ignored, as the decoder ignores them.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from ..defaults import DEFAULT_KUBE_VERSION
from .schemas import SchemaSetupError, builtin_schema, definitions, release_for

# A compiled type: ("string"|"integer"|"number"|"boolean"|"quantity"|"intorstring"|"time"|"bytes"|"any",)
# or ("object", {field: type}) or ("map", type) or ("array", type).
Type = tuple

_QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?\Z")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_NAMED = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": ("quantity",),
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": ("intorstring",),
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": ("time",),
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": ("time",),
}


class DecodeFailure(NamedTuple):
    fatal: bool  # a JSON type error (not loaded) rather than a value its type cannot parse
    path: tuple  # where, from the object's root
    message: str


def decode_failure(data: dict, kube_version: str = DEFAULT_KUBE_VERSION) -> DecodeFailure | None:
    """The first reason ``data`` does not decode into its Go type, if any.
    A value error wins over a type error, as in Go's decoder (it stops at
    the first field whose own decoding fails; type errors are only kept)."""
    kind_type = _kind_type(str(data.get("apiVersion", "")), str(data.get("kind", "")), kube_version)
    if kind_type is None:
        return None  # a kind kube-linter reads as a generic object anyway
    found: list[DecodeFailure] = []
    _walk(data, kind_type, [], found)
    if not found:
        return None
    value_errors = [f for f in found if not f.fatal]
    return value_errors[0] if value_errors else found[0]


def _walk(value: Any, expected: Type, where: list, found: list[DecodeFailure]) -> None:
    """``where`` is the path so far, extended and restored in place (copied only on a failure)."""
    if value is None or len(found) > 20:
        return
    kind = expected[0]
    if kind == "object" or kind == "map":
        if not isinstance(value, dict):
            found.append(_type_error(value, "an object" if kind == "object" else "a map", where))
            return
        fields = expected[1]
        for key, child in value.items():
            child_type = fields.get(key) if kind == "object" else fields
            if child_type is not None and child is not None and child_type[0] != "any":
                where.append(key)
                _walk(child, child_type, where, found)
                where.pop()
    elif kind == "array":
        if not isinstance(value, list):
            found.append(_type_error(value, "a list", where))
            return
        item_type = expected[1]
        if item_type[0] != "any":
            for index, child in enumerate(value):
                where.append(index)
                _walk(child, item_type, where, found)
                where.pop()
    elif kind == "string":
        if not isinstance(value, str):
            found.append(_type_error(value, "a string", where))
    else:
        problem = _scalar_problem(value, expected)
        if problem:
            found.append(DecodeFailure(problem[0], tuple(where), problem[1]))


def _scalar_problem(value: Any, expected: Type) -> tuple[bool, str] | None:
    kind = expected[0]
    if kind == "any":
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else (True, _what(value) + " where true or false belongs")
    if kind == "number":
        return None if _is_number(value) else (True, _what(value) + " where a number belongs")
    if kind == "integer":
        if not _is_integer(value):
            return True, _what(value) + " where an integer belongs"
        low, high = _INT_RANGES.get(expected[1] if len(expected) > 1 else "", _INT_RANGES["int64"])
        return None if low <= value <= high else (True, f"{value} is out of range for {expected[1]}")
    if kind == "intorstring":
        return None if isinstance(value, str) or _is_integer(value) else (True, _what(value) + " where an integer or a string belongs")
    if kind == "quantity":
        text = value if isinstance(value, str) else None if isinstance(value, bool) else str(value) if _is_number(value) else None
        return None if text is not None and _QUANTITY.match(text.strip()) else (False, f"{_shown(value)} is not a quantity (like 500m or 1Gi)")
    if kind == "time":
        if not isinstance(value, str):
            return True, _what(value) + " where a time belongs"
        return None if _is_rfc3339(value) else (False, f"{_shown(value)} is not an RFC 3339 time")
    if kind == "bytes":
        if not isinstance(value, str):
            return True, _what(value) + " where base64 text belongs"
        try:
            base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)  # Go skips line ends
            return None
        except (binascii.Error, ValueError):
            return False, f"{_shown(value)} is not base64 (use stringData for plain text)"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    # A float with no fraction is written as an integer in JSON (``08`` reads as 8.0).
    return _is_number(value) and (isinstance(value, int) or value.is_integer())


def _is_rfc3339(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return "T" in text.upper()
    except ValueError:
        return False


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if _is_number(value):
        return f"a number ({value:g})" if isinstance(value, float) else f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_shown(value)})"
    return "a list" if isinstance(value, list) else "a map"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_error(value: Any, wanted: str, where: list) -> DecodeFailure:
    return DecodeFailure(True, tuple(where), f"{_what(value)} where {wanted} belongs")


# --- types from the OpenAPI schemas --------------------------------------------------


# Kinds kube-linter's decoder (client-go's scheme) does not know: read untyped, whatever they hold.
_UNTYPED_GROUPS = frozenset({"apiextensions.k8s.io", "apiregistration.k8s.io"})


@lru_cache(maxsize=None)
def _kind_type(api_version: str, kind: str, kube_version: str) -> Type | None:
    if api_version.rpartition("/")[0] in _UNTYPED_GROUPS:
        return None
    try:
        release = release_for(kube_version)
    except SchemaSetupError:
        return None
    found = builtin_schema(release, api_version, kind)
    return _compiler(release).compile(found[0]) if found else None


@lru_cache(maxsize=None)
def _compiler(release: str) -> _Compiler:
    return _Compiler(definitions(release))


class _Compiler:
    def __init__(self, definitions: dict):
        self.definitions = definitions
        self.done: dict[str, Type] = {}

    def compile(self, schema: dict) -> Type:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self.named(ref.rsplit("/", 1)[-1])
        types = schema.get("type")
        types = [t for t in (types if isinstance(types, list) else [types]) if t and t != "null"]
        kind = types[0] if len(types) == 1 else None
        if kind == "object" or (kind is None and "properties" in schema):
            fields = schema.get("properties")
            extra = schema.get("additionalProperties")
            if isinstance(fields, dict) and fields:
                return ("object", {name: self.compile(sub) for name, sub in fields.items()})
            if isinstance(extra, dict):
                return ("map", self.compile(extra))
            return ("any",)
        if kind == "array":
            items = schema.get("items")
            return ("array", self.compile(items) if isinstance(items, dict) else ("any",))
        if kind == "string":
            return ("bytes",) if schema.get("format") == "byte" else ("string",)
        if kind == "integer":
            return ("integer", schema.get("format", "int64"))
        if kind in ("number", "boolean"):
            return (kind,)
        return ("any",)

    def named(self, name: str) -> Type:
        if name in _NAMED:
            return _NAMED[name]
        if name not in self.done:
            # A recursive definition (JSONSchemaProps) refers to itself: accept anything there.
            self.done[name] = ("any",)
            self.done[name] = self.compile(self.definitions.get(name, {}))
        return self.done[name]
