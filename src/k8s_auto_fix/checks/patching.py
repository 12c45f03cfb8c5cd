"""Building minimal RFC 6902 operations against plain object data.

Paths are JSON Pointer segments from the object root. Missing parents are
created by adding the nested value at the first missing level (one
operation, not one per level); ``/`` and ``~`` in keys are escaped (RFC 6901).
"""

from __future__ import annotations

from typing import Any

from ..patch import Op, Segments, apply_patch, pointer


class CannotPatch(Exception):
    """The object's shape does not allow the edit (a string where a map is expected)."""


def get(data: Any, segments: Segments, default: Any = None) -> Any:
    node = data
    for segment in segments:
        if isinstance(node, dict):
            node = node.get(segment)
        elif isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
            node = node[segment]
        else:
            return default
        if node is None:
            return default
    return node


def set_value(data: Any, segments: Segments, value: Any) -> list[Op]:
    """Operations that make ``segments`` hold ``value`` (none if it already does)."""
    node = data
    for depth, segment in enumerate(segments[:-1]):
        child = _child(node, segment)
        if child is None:
            nested = value
            for key in reversed(segments[depth + 1 :]):
                nested = {key: nested}
            return [{"op": "add", "path": pointer(*segments[: depth + 1]), "value": nested}]
        if not isinstance(child, (dict, list)):
            raise CannotPatch(f"{pointer(*segments[: depth + 1])} is not a map")
        node = child
    last = segments[-1]
    if not isinstance(node, dict):
        raise CannotPatch(f"{pointer(*segments[:-1])} is not a map")
    if last in node and node[last] == value and type(node[last]) is type(value):
        return []
    op = "replace" if node.get(last) is not None else "add"
    return [{"op": op, "path": pointer(*segments), "value": value}]


def append(data: Any, segments: Segments, item: Any) -> list[Op]:
    """Append ``item`` to the list at ``segments``, creating the list if missing."""
    existing = get(data, segments)
    if existing is None:
        return set_value(data, segments, [item])
    if not isinstance(existing, list):
        raise CannotPatch(f"{pointer(*segments)} is not a list")
    return [{"op": "add", "path": pointer(*segments) + "/-", "value": item}]


def remove(segments: Segments) -> Op:
    return {"op": "remove", "path": pointer(*segments)}


def remove_indices(segments: Segments, indices: list[int], length: int | None = None) -> list[Op]:
    """Remove list items; highest index first, so earlier removals keep later
    paths valid. Removing every item (``length`` known) removes the list."""
    if length is not None and indices and set(indices) >= set(range(length)):
        return [remove(segments)]
    return [remove((*segments, i)) for i in sorted(set(indices), reverse=True)]


def _child(node: Any, segment: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(segment)
    if isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
        return node[segment]
    return None


class Ops:
    """Operations built one after another, each against the data as the earlier
    ones leave it, so that two values under one missing parent both land."""

    def __init__(self, data: Any):
        self.data = data
        self.ops: list[Op] = []

    def set(self, segments: Segments, value: Any) -> Ops:
        return self._add(set_value(self.data, segments, value))

    def append(self, segments: Segments, item: Any) -> Ops:
        return self._add(append(self.data, segments, item))

    def extend(self, ops: list[Op]) -> Ops:
        return self._add(ops)

    def _add(self, ops: list[Op]) -> Ops:
        if ops:
            self.ops += ops
            self.data = apply_patch(self.data, ops)
        return self
