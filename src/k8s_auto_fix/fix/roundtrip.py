"""Writing fixes back so the edit looks like a person made it.

A file is split into its documents at the ``---`` lines; a document without
edits keeps its exact text. An edited document goes through ruamel.yaml's
round-trip mode (comments, key order, quoting and flow style kept), in the
file's own indentation, and the patch operations are applied to that tree in
order. Objects a fix creates are appended as new documents.
"""

from __future__ import annotations

import difflib
import io
import re
from collections import Counter
from collections.abc import Sequence

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..contracts import ObjectEdit
from ..manifests.source import SourceError, read_source
from ..patch import parse_pointer
from .textedit import apply_ops_fast

_DOC_MARKER = re.compile(r"^---(?:[ \t].*)?$", re.M)


class RoundTripError(Exception):
    pass


def split_documents(text: str) -> list[str]:
    """The file as chunks, each starting at a document marker (the first may not)."""
    starts = [m.start() for m in _DOC_MARKER.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]


def _has_content(chunk: str) -> bool:
    body = _DOC_MARKER.sub("", chunk, count=1) if _DOC_MARKER.match(chunk) else chunk
    return any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines())


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, sequence dash offset) most used in the file."""
    mapping: Counter = Counter()
    offsets: Counter = Counter()
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for line, following in zip(lines, lines[1:]):
        stripped = line.rstrip()
        if not stripped.endswith(":") or stripped.lstrip().startswith("- "):
            continue
        indent, next_indent = len(line) - len(line.lstrip()), len(following) - len(following.lstrip())
        if following.lstrip().startswith("- "):
            offsets[next_indent - indent] += 1
        elif next_indent > indent:
            mapping[next_indent - indent] += 1
    return (mapping.most_common(1)[0][0] if mapping else 2), (offsets.most_common(1)[0][0] if offsets else 0)


_EXPLICIT_NULL = re.compile(r":[ \t]+(null|Null|NULL|~)[ \t]*(?:#.*)?$", re.M)


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    indent, offset = guess_indent(text)
    yaml.indent(mapping=indent, sequence=offset + 2, offset=offset)
    spelled = _EXPLICIT_NULL.search(text)
    if spelled:  # the file writes its nulls out: keep them written (ruamel would leave `key:` empty)
        word = spelled.group(1)
        yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", word))
    return yaml


def apply_edits(text: str, edits: Sequence[ObjectEdit]) -> str:
    """The file's new text with every edit applied."""
    chunks = split_documents(text)
    content = [i for i, chunk in enumerate(chunks) if _has_content(chunk)]
    yaml = _yaml(text)
    by_doc: dict[int, list[ObjectEdit]] = {}
    for edit in edits:
        by_doc.setdefault(edit.document_index, []).append(edit)
    for document_index, doc_edits in by_doc.items():
        if document_index >= len(content):
            raise RoundTripError(f"document {document_index} not found")
        position = content[document_index]
        chunk = chunks[position]
        marker = ""
        match = _DOC_MARKER.match(chunk)
        if match:
            marker, chunk = chunk[: match.end() + 1], chunk[match.end() + 1 :]
        _check_identity(pyyaml.load(chunk, Loader=pyyaml.CSafeLoader), doc_edits, document_index)
        ops = [_prefixed(op, edit) for edit in doc_edits for op in edit.ops]
        _refuse_shared_targets(chunk, ops, document_index)
        fast = apply_ops_fast(chunk, ops, yaml)
        if fast is not None:
            chunks[position] = marker + fast
            continue
        tree = yaml.load(chunk)
        for edit in doc_edits:
            target = tree if edit.list_index is None else tree["items"][edit.list_index]
            for op in edit.ops:
                apply_op(target, op)
        out = io.StringIO()
        yaml.dump(tree, out)
        _refuse_reformatting(chunk, out.getvalue(), ops, document_index)
        chunks[position] = marker + out.getvalue()
    new_text = "".join(chunks)
    created = [obj for edit in edits for obj in edit.creates]
    for obj in _unique(created):
        if not new_text.endswith("\n"):
            new_text += "\n"
        out = io.StringIO()
        yaml.dump(obj, out)
        new_text += "---\n" + out.getvalue()
    return new_text


def apply_edits_json(text: str, edits: Sequence[ObjectEdit]) -> str:
    """A JSON manifest stays JSON: key order kept, re-indented like the original
    (JSON has no comments to keep); created objects cannot be appended."""
    import json

    import jsonpatch

    data = json.loads(text)
    for edit in edits:
        if edit.creates:
            raise RoundTripError("a JSON file holds one object: create the new object in a file of its own")
        target = data if edit.list_index is None else data["items"][edit.list_index]
        jsonpatch.apply_patch(target, edit.ops, in_place=True)
    second = text.splitlines()[1] if len(text.splitlines()) > 1 else ""
    indent = (len(second) - len(second.lstrip(" "))) or None
    return json.dumps(data, indent=indent, ensure_ascii=False) + ("\n" if text.endswith("\n") else "")


def _check_identity(data, edits: Sequence[ObjectEdit], document_index: int) -> None:
    """Never edit a document we did not recognise as the object."""
    for edit in edits:
        target = data if edit.list_index is None else ((data or {}).get("items") or [None] * (edit.list_index + 1))[edit.list_index]
        meta = (target.get("metadata") or {}) if isinstance(target, dict) else {}
        if not isinstance(target, dict) or (target.get("kind"), str(meta.get("name") or meta.get("generateName") or "")) != (edit.ref.kind, edit.ref.name):
            raise RoundTripError(f"document {document_index} is not {edit.ref.kind}/{edit.ref.name} as expected; file left as it is")


def _prefixed(op: dict, edit: ObjectEdit) -> dict:
    """An op of a List item, as an op on the whole List document."""
    if edit.list_index is None:
        return op
    prefix = f"/items/{edit.list_index}"
    return {**op, **{k: prefix + op[k] for k in ("path", "from") if k in op}}


def render_files(edits: Sequence[ObjectEdit]) -> tuple[dict[str, str], list[str]]:
    """The fixed text of every file the edits touch (changed files only), and
    the files that cannot be rewritten (reported and left alone)."""
    texts, problems = {}, []
    edits = [e for e in edits if e.ops or e.creates]
    for path in sorted({e.path for e in edits}):
        text, problem = render_file(path, [e for e in edits if e.path == path])
        if problem:
            problems.append(problem)
        elif text is not None:
            texts[path] = text
    return texts, problems


def render_file(path: str, edits: Sequence[ObjectEdit]) -> tuple[str | None, str | None]:
    """(new text or None if unchanged, problem or None) for one file. A file
    with Windows line ends keeps them."""
    try:
        original = read_source(path)[0]
        crlf = original.count("\r\n") * 2 > original.count("\n")
        text = original.replace("\r\n", "\n") if crlf else original
        updated = apply_edits_json(text, edits) if path.endswith(".json") else apply_edits(text, edits)
        if crlf:
            updated = updated.replace("\r\n", "\n").replace("\n", "\r\n")
    except (OSError, SourceError, RoundTripError) as err:
        return None, f"{path}: not rewritten: {err}"
    except Exception as err:  # ruamel's own errors: report the file, keep going
        return None, f"{path}: not rewritten: {type(err).__name__}: {err}"
    return (updated if updated != original else None), None


def _refuse_reformatting(original: str, updated: str, ops: list[dict], document_index: int) -> None:
    """The round trip re-renders the whole document; keep its output only if
    every line it changes lies inside a node the operations touch."""
    root = pyyaml.compose(original, Loader=pyyaml.CSafeLoader)
    spans = []
    for op in ops:
        parts = parse_pointer(op["path"])
        key, node = _node_with_key(root, parts if op["op"] != "add" else parts[:-1])
        if node is None and parts:
            key, node = _node_with_key(root, parts[:-1])
        if node is not None:
            last = node.end_mark.line - (1 if node.end_mark.column == 0 and node.end_mark.line > node.start_mark.line else 0)
            spans.append(((key or node).start_mark.line, last))
    before, after = original.splitlines(), updated.splitlines()
    # The equal head and tail are skipped: the line diff is quadratic in what is left.
    head = next((n for n, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    tail = next((n for n, (a, b) in enumerate(zip(reversed(before[head:]), reversed(after[head:]))) if a != b), min(len(before), len(after)) - head)
    middle = difflib.SequenceMatcher(None, before[head : len(before) - tail], after[head : len(after) - tail], autojunk=False)
    for tag, i1, i2, _, _ in middle.get_opcodes():
        i1, i2 = i1 + head, i2 + head
        lines = [i1] if tag == "insert" else range(i1, i2)
        if tag != "equal" and not all(any(a <= n <= b + (tag == "insert") for a, b in spans) for n in lines):
            raise RoundTripError(
                f"document {document_index}: writing this fix would also reformat line {i1 + 1}, which it does not touch; "
                "make this edit by hand"
            )


def _node_with_key(root, parts: list[str]):
    key, node = None, root
    for part in parts:
        if isinstance(node, pyyaml.MappingNode):
            key, node = next(((k, v) for k, v in node.value if isinstance(k, pyyaml.ScalarNode) and k.value == part), (None, None))
        else:
            key, node = None, _child_node(node, part)
        if node is None:
            return None, None
    return key, node


def _refuse_shared_targets(chunk: str, ops: list[dict], document_index: int) -> None:
    """An edit through a YAML anchor (``&ports`` used again as ``*ports``) would
    change every place that shares it: such a document is left as it is."""
    if "&" not in chunk or "*" not in chunk:
        return
    root = pyyaml.compose(chunk, Loader=pyyaml.CSafeLoader)
    uses: Counter = Counter()
    stack = [root]
    while stack:
        node = stack.pop()
        uses[id(node)] += 1
        if uses[id(node)] > 1:
            continue  # an alias: its children are counted once, where the anchor is
        if isinstance(node, pyyaml.MappingNode):
            stack.extend(v for pair in node.value for v in pair)
        elif isinstance(node, pyyaml.SequenceNode):
            stack.extend(node.value)
    if all(n == 1 for n in uses.values()):
        return
    for op in ops:
        node = root
        for part in parse_pointer(op.get("path", "")):
            if uses[id(node)] > 1:
                raise RoundTripError(f"document {document_index}: {op['path']} goes through a YAML anchor shared with another place; un-alias it to fix it")
            node = _child_node(node, part)
            if node is None:
                break
        if node is not None and uses[id(node)] > 1:
            raise RoundTripError(f"document {document_index}: {op['path']} is a YAML anchor shared with another place; un-alias it to fix it")


def _child_node(node, part: str):
    if isinstance(node, pyyaml.MappingNode):
        return next((v for k, v in node.value if isinstance(k, pyyaml.ScalarNode) and k.value == part), None)
    if isinstance(node, pyyaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
        return node.value[int(part)]
    return None


def _unique(objects: list[dict]) -> list[dict]:
    seen, unique = set(), []
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"), (obj.get("metadata") or {}).get("namespace"), (obj.get("metadata") or {}).get("name"))
        if key not in seen:
            seen.add(key)
            unique.append(obj)
    return unique


# --- RFC 6902 on a round-trip tree ---------------------------------------------------


def _walk(tree, parts: list[str]):
    node = tree
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _to_rt(value):
    """Plain data -> ruamel containers, so new blocks follow the file's style."""
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_rt(v)
        return out
    if isinstance(value, list):
        return CommentedSeq([_to_rt(v) for v in value])
    return value


def apply_op(tree, op: dict) -> None:
    kind, parts = op["op"], parse_pointer(op["path"])
    if kind == "test":
        return
    if kind in ("move", "copy"):
        source = parse_pointer(op["from"])
        value = _walk(tree, source)
        if kind == "move":
            _remove(tree, source)
        else:
            import copy

            value = copy.deepcopy(value)
        _add(tree, parts, value)
        return
    if kind == "remove":
        _remove(tree, parts)
    elif kind == "add":
        _add(tree, parts, _to_rt(op["value"]))
    elif kind == "replace":
        parent, last = _walk(tree, parts[:-1]), parts[-1]
        if isinstance(parent, list):
            parent[int(last)] = _to_rt(op["value"])
        else:
            parent[last] = _to_rt(op["value"])
    else:
        raise RoundTripError(f"unknown op {kind!r}")


def _add(tree, parts: list[str], value) -> None:
    parent, last = _walk(tree, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    else:
        parent[last] = value


def _remove(tree, parts: list[str]) -> None:
    parent, last = _walk(tree, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
