"""Label selectors with Kubernetes semantics, and their Go printouts.

Messages of cross-object checks quote selectors the way kube-linter (Go)
prints them, so findings read the same from both engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class SelectorError(ValueError):
    pass


def go_map(mapping: dict) -> str:
    """Go's %v of a map[string]string: map[k1:v1 k2:v2], keys sorted."""
    return "map[" + " ".join(f"{k}:{_go_value(mapping[k])}" for k in sorted(mapping, key=str)) + "]"


def _go_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def labels_string(labels: dict) -> str:
    """labels.Set.String(): k=v pairs sorted by key, joined by commas."""
    return ",".join(f"{k}={_go_value(labels[k])}" for k in sorted(labels, key=str))


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist (Equals for matchLabels)
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = _go_value(labels.get(self.key))
        if self.operator in ("In", "Equals"):
            return present and value in self.values
        if self.operator == "NotIn":
            return not present or value not in self.values
        if self.operator == "Exists":
            return present
        return not present  # DoesNotExist

    def __str__(self) -> str:
        if self.operator == "Equals":
            return f"{self.key}={self.values[0]}"
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class Selector:
    """A parsed selector; ``None`` requirements means "matches nothing"."""

    requirements: tuple[Requirement, ...] | None

    def matches(self, labels: dict) -> bool:
        if self.requirements is None:
            return False
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in sorted(self.requirements or (), key=lambda r: r.key))


def from_match_labels(match_labels: dict | None) -> Selector:
    """A plain map selector (Service.spec.selector): equality on every key."""
    if match_labels is None:
        return Selector(None)
    return Selector(tuple(_equals(k, v) for k, v in match_labels.items()))


def from_label_selector(selector: object) -> Selector:
    """metav1.LabelSelector: nil matches nothing, {} matches everything."""
    if selector is None:
        return Selector(None)
    if not isinstance(selector, dict):
        raise SelectorError(f"selector is not a mapping: {selector!r}")
    requirements = [_equals(k, v) for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        requirements.append(_expression(expression))
    return Selector(tuple(requirements))


def _equals(key: object, value: object) -> Requirement:
    key, value = str(key), _go_value(value)
    _validate_key(key)
    if not _LABEL_VALUE.match(value) or len(value) > 63:
        raise SelectorError(f"values[0][{key}]: Invalid value: {value!r}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")
    return Requirement(key, "Equals", (value,))


def _expression(expression: object) -> Requirement:
    if not isinstance(expression, dict):
        raise SelectorError(f"invalid matchExpressions entry: {expression!r}")
    key, operator = str(expression.get("key", "")), str(expression.get("operator", ""))
    values = tuple(_go_value(v) for v in expression.get("values") or [])
    _validate_key(key)
    if operator in ("In", "NotIn"):
        if not values:
            raise SelectorError("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty")
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            raise SelectorError("values: Invalid value: for 'exists', 'doesnotexist' operators, values set must be empty")
    else:
        raise SelectorError(f"{operator!r} is not a valid label selector operator")
    return Requirement(key, operator, values)


def _validate_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name) or (prefix and len(prefix) > 253):
        raise SelectorError(f"key: Invalid value: {key!r}: name part must consist of alphanumeric characters, '-', '_' or '.'")
