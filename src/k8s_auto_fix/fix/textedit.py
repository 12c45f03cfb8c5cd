"""A fast path for writing fixes back: edit the text where the patch points.

Most fixes add a key to a block mapping, append to a block sequence, replace
a scalar or remove a key. For those, the node positions PyYAML's C parser
reports are enough to splice the change into the text, with the new block
rendered by ruamel.yaml in the file's own indentation. Everything else (flow
collections, block scalars, move/copy, unusual layouts) returns None and
goes through the full ruamel round trip instead.

The document is parsed once per round, not once per operation: a round
splices every operation that does not depend on another one of the same
round (a file with hundreds of containers is one or two rounds).

Whatever the fast path writes is checked: the new text must parse to exactly
the patched data, or it is thrown away.
"""

from __future__ import annotations

import bisect
import io
from typing import NamedTuple

import jsonpatch
import yaml

from ..patch import parse_pointer

_LOADER = yaml.CSafeLoader


class Splice(NamedTuple):
    """Replace text[start:end] with ``new`` (start == end: an insertion)."""

    start: int
    end: int
    new: str
    depth: int = 0  # length of the operation's path: orders insertions at one place


def apply_ops_fast(text: str, ops: list[dict], rt_yaml) -> str | None:
    try:
        expected = jsonpatch.apply_patch(yaml.load(text, Loader=_LOADER), ops)
    except Exception:  # the slow path reports what is wrong
        return None
    pending = [(op, parse_pointer(op.get("path", ""))) for op in ops]
    while pending:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError:  # a splice that cannot be read back: the round trip does it instead
            return None
        round_ops, pending = _independent(pending)
        splices, taken = [], _Taken()
        for i, (op, parts) in enumerate(round_ops):
            splice = _splice_for(text, root, op, parts, rt_yaml)
            if splice is None:
                return None
            if taken.overlaps(splice):
                pending = round_ops[i:] + pending  # next round, against the text as it will be
                break
            splices.append(splice._replace(depth=len(parts)))
            taken.add(splices[-1])
        text = _apply_splices(text, splices)
    try:
        return text if yaml.load(text, Loader=_LOADER) == expected else None
    except yaml.YAMLError:
        return None


def _independent(pending: list[tuple[dict, list[str]]]):
    """The operations that can be spliced against one parse, in order, and the rest.

    An operation waits for the next round when its path and that of an earlier
    operation (taken or waiting) are one inside the other: it may edit what
    the earlier one adds. Two keys added to one mapping do not wait (they go in
    at the same place, in order); a list whose items shift (an item added or
    removed) makes every later operation under that list wait. Paths are kept
    in sets (each earlier path, each of their prefixes, each shifting list), so
    the cost is linear in the number of operations, not quadratic."""
    taken, waiting = [], []
    earlier: set[tuple[str, ...]] = set()
    above_earlier: set[tuple[str, ...]] = set()  # every prefix of an earlier path
    shifting: set[tuple[str, ...]] = set()
    for op, parts in pending:
        path = tuple(parts)
        prefixes = [path[:n] for n in range(len(path) + 1)]
        related = path in above_earlier or any(p in earlier for p in prefixes)
        under_shift = any(p in shifting for p in prefixes)
        (waiting if related or under_shift else taken).append((op, parts))
        earlier.add(path)
        above_earlier.update(prefixes)
        if _shifts_items(op, parts):
            shifting.add(path[:-1])
    return taken, waiting


def _shifts_items(op: dict, parts: list[str]) -> bool:
    return bool(parts) and (parts[-1] == "-" or parts[-1].isdigit()) and op.get("op") in ("add", "remove")


def _prefix(short: list[str], long: list[str]) -> bool:
    return len(short) <= len(long) and long[: len(short)] == short


def _overlap(a: Splice, b: Splice) -> bool:
    if a.start == a.end and b.start == b.end:
        return False  # two insertions at one place: kept in operation order
    return a.start < b.end and b.start < a.end or a.start == a.end and b.start <= a.start <= b.end or b.start == b.end and a.start <= b.start <= a.end


def _apply_splices(text: str, splices: list[Splice]) -> str:
    """The text with every splice made, in one pass over it (splices never
    overlap). Insertions at one place end up as one after the other would have
    put them: the deeper one first (it belongs to the inner block, which ends
    there too), then in operation order."""
    ordered = sorted(enumerate(splices), key=lambda item: (item[1].start, -item[1].depth, item[0]))
    pieces, cursor = [], 0
    for _, splice in ordered:
        pieces += [text[cursor : splice.start], splice.new]
        cursor = max(cursor, splice.end)
    return "".join(pieces) + text[cursor:]


class _Taken:
    """The splices of one round, by position, for the overlap test: a new splice
    is compared with its neighbours only (the splices taken never overlap)."""

    def __init__(self):
        self.starts: list[int] = []
        self.splices: list[Splice] = []

    def overlaps(self, splice: Splice) -> bool:
        index = bisect.bisect_left(self.starts, splice.start)
        candidates = self.splices[max(0, index - 1) : index]
        for other in self.splices[index:]:
            if other.start > splice.end:
                break
            candidates.append(other)
        return any(_overlap(splice, other) for other in candidates)

    def add(self, splice: Splice) -> None:
        index = bisect.bisect_right(self.starts, splice.start)
        self.starts.insert(index, splice.start)
        self.splices.insert(index, splice)


def _find(node, parts: list[str]):
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            return None
        if node is None:
            return None
    return node


def _content_end(node) -> int | None:
    """Index just after the node's last character of content (None: not simple)."""
    if isinstance(node, yaml.ScalarNode):
        return None if node.style in ("|", ">") else node.end_mark.index
    if node.flow_style or not node.value:
        return node.end_mark.index if node.flow_style else None
    last = node.value[-1]
    return _content_end(last[1] if isinstance(node, yaml.MappingNode) else last)


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _render(rt_yaml, value) -> list[str]:
    out = io.StringIO()
    rt_yaml.dump(value, out)
    lines = out.getvalue().rstrip("\n").split("\n")
    return [] if lines == ["{}"] or lines == ["[]"] else lines


def _scalar(value) -> str | None:
    if isinstance(value, (dict, list)):
        return None
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).split("\n")[0]


def _splice_for(text: str, root, op: dict, parts: list[str], rt_yaml) -> Splice | None:
    kind = op.get("op")
    if kind not in ("add", "replace", "remove") or not parts:
        return None
    parent = _find(root, parts[:-1])
    last = parts[-1]
    if kind == "add" and isinstance(parent, (yaml.MappingNode, yaml.SequenceNode)) and parent.flow_style and not parent.value:
        # `resources: {}` gains its first key: the `{}` becomes a block.
        new = {last: op.get("value")} if isinstance(parent, yaml.MappingNode) else [op.get("value")]
        return _replace_value(text, _key_of(root, parts[:-1]), parent, new, rt_yaml)
    if parent is None or getattr(parent, "flow_style", True) or isinstance(parent, yaml.ScalarNode):
        return None
    if isinstance(parent, yaml.MappingNode):
        return _in_mapping(text, parent, kind, last, op.get("value"), rt_yaml)
    return _in_sequence(text, parent, kind, last, op.get("value"), rt_yaml)


def _key_of(root, parts: list[str]):
    """The key node naming the node at ``parts`` (None when it is a list item or the root)."""
    if not parts:
        return None
    holder = _find(root, parts[:-1])
    if not isinstance(holder, yaml.MappingNode):
        return None
    return next((k for k, _ in holder.value if isinstance(k, yaml.ScalarNode) and k.value == parts[-1]), None)


def _replace_value(text: str, key_node, value_node, value, rt_yaml) -> Splice | None:
    """A key's value replaced by a block map or list, in the file's style: only
    the lines of that value change (a flow ``{}`` on the key's line becomes a block below it)."""
    if key_node is None or not isinstance(value, (dict, list)) or not value:
        return None
    lines = _render(rt_yaml, {key_node.value: value})
    if len(lines) < 2 or lines[0] != f"{key_node.value}:":
        return None  # rendered on one line, or the key needs quoting: leave it to the round trip
    column = key_node.start_mark.column
    block = "\n".join(" " * column + line for line in lines[1:])
    if isinstance(value_node, yaml.ScalarNode) or value_node.flow_style:
        start, end = value_node.start_mark.index, value_node.end_mark.index
        if "\n" in text[key_node.end_mark.index : start]:
            return None  # a value on a line of its own: unusual, leave it to the round trip
        return Splice(key_node.end_mark.index, end, ":\n" + block)
    end = _content_end(value_node)
    if end is None:
        return None
    return Splice(key_node.end_mark.index, _line_end(text, end), ":\n" + block)


def _in_mapping(text: str, parent, kind: str, key: str, value, rt_yaml) -> Splice | None:
    pair = next(((k, v) for k, v in parent.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
    if pair is not None:
        key_node, value_node = pair
        if kind == "remove":
            start = _line_start(text, key_node.start_mark.index)
            end = _content_end(value_node)
            if text[start : key_node.start_mark.index].strip() or end is None:
                return None  # the key shares its line with a "- " or another key
            return Splice(start, _line_end(text, end) + 1, "")
        if isinstance(value, (dict, list)):
            return _replace_value(text, key_node, value_node, value, rt_yaml)
        rendered = _scalar(value)
        if rendered is None or not isinstance(value_node, yaml.ScalarNode) or value_node.style in ("|", ">"):
            return None
        return Splice(value_node.start_mark.index, value_node.end_mark.index, rendered)
    if kind != "add" or not parent.value:
        return None
    end = _content_end(parent)
    first_key = parent.value[0][0]
    if end is None or text[_line_start(text, first_key.start_mark.index) : first_key.start_mark.index].strip(" -"):
        return None  # a complex key (`? ...`) or another token before the keys: not a plain block
    column = first_key.start_mark.column
    lines = _render(rt_yaml, {key: value})
    if not lines:
        return None
    insert_at = _line_end(text, end)
    return Splice(insert_at, insert_at, "\n" + "\n".join(" " * column + line for line in lines))


def _in_sequence(text: str, parent, kind: str, index: str, value, rt_yaml) -> Splice | None:
    if not parent.value:
        return None
    dash = parent.start_mark.column
    if kind == "add" and index == "-":
        end = _content_end(parent)
        lines = _render(rt_yaml, value) if isinstance(value, (dict, list)) else [_scalar(value)]
        if end is None or not lines or lines[0] is None:
            return None
        item = [" " * dash + "- " + lines[0]] + [" " * (dash + 2) + line for line in lines[1:]]
        insert_at = _line_end(text, end)
        return Splice(insert_at, insert_at, "\n" + "\n".join(item))
    if kind == "remove" and index.isdigit() and int(index) < len(parent.value):
        item = parent.value[int(index)]
        start = _line_start(text, item.start_mark.index)
        end = _content_end(item)
        if end is None or text[start : item.start_mark.index].strip() != "-":
            return None
        return Splice(start, _line_end(text, end) + 1, "")
    return None
