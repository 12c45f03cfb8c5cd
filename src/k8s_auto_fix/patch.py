"""RFC 6902 JSON Patch and RFC 6901 JSON Pointer, the one place both are handled.

Checks build operations with ``pointer``; verify, the model guards and fix
apply them with ``apply_patch``; the write-back walks them with
``parse_pointer``.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

Segments = tuple[str | int, ...]
Op = dict[str, Any]

# What a patch that does not fit its object raises while being applied.
PATCH_ERRORS = (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError, IndexError)


def escape_pointer(token: str) -> str:
    """RFC 6901: ``~`` becomes ``~0`` and ``/`` becomes ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer(*segments: str | int) -> str:
    return "".join("/" + escape_pointer(str(s)) for s in segments)


def parse_pointer(path: str) -> list[str]:
    """A JSON Pointer as its unescaped tokens ("" is the root: no tokens)."""
    if not path:
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


MISSING = object()  # what resolve() finds where nothing is written (a written null is None)


def resolve(data, parts: list[str]):
    """The value at the unescaped pointer tokens ``parts``, or MISSING."""
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return MISSING
    return data


def op_paths(op: Op) -> list[str]:
    """The pointers an operation reads or writes (``path``, and ``from`` for move/copy)."""
    return [p for p in (op.get("path"), op.get("from")) if isinstance(p, str)]


def apply_patch(data: dict, ops: list[Op]) -> dict:
    """RFC 6902 (the `jsonpatch` library) on a copy of ``data`` that shares
    every subtree the patch does not touch: only the containers on the paths
    of the operations are copied, so the cost follows the patch, not the object."""
    root = dict(data)
    for op in ops:
        for path in op_paths(op):
            _copy_along(root, parse_pointer(path))
    return jsonpatch.JsonPatch(ops).apply(root, in_place=True)


def _copy_along(root: dict, parts: list[str]) -> None:
    node: Any = root
    for part in parts[:-1]:
        if isinstance(node, dict) and isinstance(node.get(part), (dict, list)):
            node[part] = _shallow(node[part])
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node) and isinstance(node[int(part)], (dict, list)):
            node[int(part)] = _shallow(node[int(part)])
            node = node[int(part)]
        else:
            return


def _shallow(value):
    return dict(value) if isinstance(value, dict) else list(value)
