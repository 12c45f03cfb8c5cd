"""YAML read the way Kubernetes tools read it.

kubectl, the API server's clients and kube-linter turn YAML into JSON with
sigs.k8s.io/yaml, which resolves plain scalars by go-yaml v2's rules, not by
PyYAML's. The differences matter for what an object *is*:

- ``y``, ``Y``, ``n``, ``N`` are booleans (``value: N`` is ``false``, which
  no string field accepts);
- ``1e3``, ``08`` and ``1.`` are numbers; ``0o17`` is octal;
- ``1:20`` (sexagesimal), dates and ``=`` stay strings;
- map keys become strings (``80:`` is the key ``"80"``, ``on:`` is ``"true"``).

``KubeLoader`` is PyYAML's C loader with those rules, so every stage sees
the object the cluster would see.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import yaml

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MERGE = "tag:yaml.org,2002:merge"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"

_WORDS: dict[str, tuple[str, object]] = {
    **{w: (BOOL, True) for w in ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")},
    **{w: (BOOL, False) for w in ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")},
    **{w: (NULL, None) for w in ("", "~", "null", "Null", "NULL")},
    **{w: (FLOAT, math.nan) for w in (".nan", ".NaN", ".NAN")},
    **{w: (FLOAT, math.inf) for w in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{w: (FLOAT, -math.inf) for w in ("-.inf", "-.Inf", "-.INF")},
    "<<": (MERGE, "<<"),
}
# Go's strconv.ParseInt(s, 0, 64) after go-yaml drops every "_".
_GO_INT = re.compile(r"([-+]?)(0[bB][01]+|0[oO][0-7]+|0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")  # go-yaml's yamlStyleFloat
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?\Z")
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


@lru_cache(maxsize=4096)
def resolve_plain(text: str) -> tuple[str, object]:
    """(tag, value) of a plain (unquoted) scalar, as go-yaml v2 resolves it."""
    if text in _WORDS:
        return _WORDS[text]
    first = text[0]
    if first == ".":
        return (FLOAT, float(text)) if _DOT_FLOAT.match(text) else (STR, text)
    if first.isdigit() or first in "+-":
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return INT, number
        if _GO_FLOAT.match(plain) and math.isfinite(value := float(plain)):
            return FLOAT, value
    return STR, text


def _go_int(plain: str) -> int | None:
    match = _GO_INT.match(plain)
    if not match:
        return None
    sign, body = match.groups()
    if len(body) > 1 and body[0] == "0" and body[1] in "01234567":
        value = int(body, 8)
    else:
        value = int(body, 0) if body[:2].lower() in ("0b", "0o", "0x") else int(body)
    value = -value if sign == "-" else value
    if _INT64[0] <= value <= _INT64[1] or (not sign and value <= _UINT64_MAX):
        return value
    return None


def json_key(key: object) -> str:
    """A map key as sigs.k8s.io/yaml writes it into JSON."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return {math.inf: ".inf", -math.inf: "-.inf"}.get(key, ".nan" if math.isnan(key) else f"{key:g}")
    raise ValueError(f"a map key must be a string, a number or a boolean, not {type(key).__name__}")


def _construct_scalar(loader: yaml.Loader, node: yaml.ScalarNode) -> object:
    return resolve_plain(node.value)[1]


class KubeLoader(yaml.CSafeLoader):
    """PyYAML's C loader resolving plain scalars as go-yaml v2 does."""

    # Called by the C composer for every node: kept as short as it can be.
    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode:
            return resolve_plain(value)[0] if implicit[0] else STR
        return MAP if kind is yaml.MappingNode else SEQ

    def descend_resolver(self, current_node, current_index):
        pass  # no path resolvers

    def ascend_resolver(self):
        pass

    def construct_mapping(self, node, deep=False):
        # Keys as JSON has them (also on the merge-key path, which PyYAML builds).
        return {json_key(key): value for key, value in super().construct_mapping(node, deep).items()}


for _tag in (INT, FLOAT, BOOL, NULL):
    KubeLoader.add_constructor(_tag, _construct_scalar)


def load(text: str) -> object:
    """One document, read as kubectl would read it."""
    return yaml.load(text, Loader=KubeLoader)
