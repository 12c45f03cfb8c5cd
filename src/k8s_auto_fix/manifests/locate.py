"""Where a field of an object is written: line and column in its file.

The loader keeps no node positions (most objects never need one); an object
with findings has its own YAML text composed once more, on demand, and each
finding's JSON Pointer is walked down the node graph. A field that is not
written (``securityContext`` missing) is placed at its nearest written parent:
the container's ``- name:`` line, the pod spec's ``spec:`` line, and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import yaml

from ..patch import pointer

if TYPE_CHECKING:
    from .objects import K8sObject

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _PositionLoader(_BASE_LOADER):
    """Composes without resolving scalar types (positions need none): a third
    faster than the safe loader, whose resolver runs in Python per scalar."""

    def resolve(self, kind, value, implicit):
        return "!"


class Location(NamedTuple):
    line: int  # 1-based, in the object's file
    column: int | None  # 1-based
    pointer: str  # JSON Pointer of the offending field (it may not be written)
    found: bool  # the field itself is written (else: its nearest written parent)


class Documents:
    """The last document composed, kept for the next object: the items of a
    `kind: List` share one document, and composing it once per item would
    make locating quadratic in the List's length."""

    def __init__(self):
        self._key: tuple | None = None
        self._node: yaml.Node | None = None

    def node(self, obj: K8sObject) -> yaml.Node | None:
        key = (obj.path, obj.document_index, len(obj.source))
        if key != self._key:
            self._key, self._node = key, _compose(obj.source)
        return self._node


class Locator:
    """Locates fields of one object; composes its YAML on the first request."""

    def __init__(self, obj: K8sObject, documents: Documents | None = None):
        self.obj = obj
        self._documents = documents or Documents()
        self._root: yaml.Node | None = None
        self._composed = False

    def root(self) -> yaml.Node | None:
        """The object's own node (the item's, in a `kind: List`)."""
        if not self._composed:
            self._composed = True
            # A chart's object is the rendered text, while its file is the
            # template: rendered positions say nothing about the template's
            # lines, so it stays at the line helm.py found for it.
            node = self._documents.node(self.obj) if self.obj.source and not self.obj.chart else None
            self._root = _item(node, self.obj.list_index) if node is not None and self.obj.list_index is not None else node
        return self._root

    def locate(self, path: tuple[str | int, ...]) -> Location:
        obj = self.obj
        root = self.root()
        if root is None:  # no text to go back to (built by kustomize, rendered by Helm, a patched copy)
            return Location(obj.line, None, pointer(*path), not path)
        # The object's own line is known; the node's line inside the composed
        # text gives the offset (a List item's text is the whole List document).
        offset = obj.line - 1 - root.start_mark.line
        key, node, walked = None, root, 0
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            key, node = child
            walked += 1
        if key is None and walked:
            # At a list item (a container, a volume): its ``name:`` says
            # which one, wherever the item writes it.
            named = _child(node, "name")
            key = named[0] if named else None
        mark = (key or node).start_mark
        return Location(offset + mark.line + 1, mark.column + 1, pointer(*path), walked == len(path))


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_PositionLoader)
    except yaml.YAMLError:
        return None


def _item(node: yaml.Node, index: int) -> yaml.Node | None:
    """Item ``index`` of a `kind: List` document."""
    items = _child(node, "items")
    found = _child(items[1], index) if items else None
    return found[1] if found else None


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    """The (key node, value node) of ``part`` under ``node``; None when not written.
    A key given twice counts by its last occurrence (as kubectl reads it); a key
    brought in by a merge (``<<: *base``) is found where the anchor wrote it."""
    if isinstance(node, yaml.MappingNode):
        wanted = str(part)
        merged = []
        for key, value in reversed(node.value):
            if isinstance(key, yaml.ScalarNode) and key.value == "<<" and not key.style:  # a merge key (plain, not "<<")
                merged.append(value)
            elif isinstance(key, yaml.ScalarNode) and key.value == wanted:
                return key, value
        for value in merged:
            for source in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                found = _child(source, part)
                if found:
                    return found
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None
