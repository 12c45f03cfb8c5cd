"""Files -> Kubernetes objects, with every problem reported and nothing fatal.

The hot path is PyYAML's C parser (``CSafeLoader``). Everything that can go
wrong with real-world input (binary files, bad encodings, invalid YAML,
duplicate keys, alias bombs, nesting deep enough to crash libyaml's recursive
composer, unrendered Helm templates, huge files) becomes a ``Problem`` for
that one file; the other files are still loaded.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import yaml

from ..contracts import Problem
from .decoding import decode_failure
from .helm import is_chart
from .helm import render as render_chart
from .kustomize import KUSTOMIZATIONS, KustomizeTree, kustomization_file
from .kustomize import build as build_kustomization
from .objects import K8sObject
from .source import STDIN_PATH, SourceError, decode, read_bytes
from .yaml_compat import MERGE, KubeLoader, json_key, resolve_plain

# What a folder contributes, as kube-linter walks it: YAML files (any case of
# the suffix) in every folder but version-control ones. A JSON manifest is
# read when it is named.
FOLDER_SUFFIXES = (".yaml", ".yml")
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn"})

DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024  # kube-linter skips files over 10 MiB too
# libyaml's composer recurses once per nesting level and segfaults somewhere
# past 20,000 levels; real manifests stay below 50. Anything deeper than this
# is refused before the parser sees it.
MAX_NESTING = 1000
# A document whose aliases expand to more nodes than this is an alias bomb
# ("billion laughs"); the expansion is counted on the node graph, never built.
MAX_EXPANDED_NODES = 1_000_000


@dataclass
class LoadResult:
    objects: list[K8sObject] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.objects.extend(other.objects)
        self.problems.extend(other.problems)
        self.files.extend(other.files)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


class _ManifestError(Exception):
    def __init__(self, message: str, line: int | None = None, level: str = "error"):
        super().__init__(message)
        self.line = line
        self.level = level


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_SCALAR_CONSTRUCTORS = KubeLoader.yaml_constructors


class Duplicate(NamedTuple):
    """A key given twice in one map: the last value counts (as for kubectl)."""

    pointer: str  # JSON Pointer of the key
    line: int


def _build(node: yaml.Node, loader: KubeLoader, duplicated: list[int]) -> object:
    """Node graph -> Python data, about twice as fast as PyYAML's generic
    constructor for the plain maps, lists and strings manifests are made of.
    Scalars resolve as kubectl reads them (``yaml_compat``). A key given twice
    keeps its last value, as kubectl and kube-linter read it; its line goes
    into ``duplicated`` (``_duplicate_keys`` then names them). Documents with merge keys (``<<``) or aliases take
    PyYAML's path instead."""
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _MAP:
        result: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value if key_node.tag == _STR else _map_key(key_node, loader)
            if key in result:
                duplicated.append(key_node.start_mark.line + 1)
            result[key] = _build(value_node, loader, duplicated)
        return result
    if tag == _SEQ:
        return [_build(item, loader, duplicated) for item in node.value]
    constructor = _SCALAR_CONSTRUCTORS.get(tag) if isinstance(node, yaml.ScalarNode) else None
    if constructor is None:
        raise _ManifestError(f"unsupported YAML tag {tag!r}", node.start_mark.line + 1)
    return constructor(loader, node)


def _map_key(node: yaml.Node, loader: KubeLoader) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise _ManifestError("invalid YAML: a mapping key must be a string, a number or a boolean", node.start_mark.line + 1)
    return json_key(_build(node, loader, []))


def _duplicate_keys(root: yaml.Node) -> list[Duplicate]:
    """Keys given twice, found on the node graph (for documents PyYAML builds)."""
    found: list[Duplicate] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE:
                    continue
                key = key_node.value if key_node.tag == _STR else json_key(resolve_plain(key_node.value)[1])
                here = f"{where}/{key.replace('~', '~0').replace('/', '~1')}"
                if key in keys:
                    found.append(Duplicate(here, key_node.start_mark.line + 1))
                keys.add(key)
                stack.append((value_node, here))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}/{i}") for i, item in enumerate(node.value))
    return sorted(found, key=lambda d: d.line)


# --- discovering files -------------------------------------------------------


def iter_manifest_files(paths: Iterable[str]) -> Iterator[tuple[str, Problem | None]]:
    """Yield ``(path, problem)`` for every manifest file under ``paths``.

    Folders are walked recursively in a stable (sorted) order; only files with
    a manifest suffix are taken from folders, but a file named explicitly is
    always read. A path that does not exist, and a folder that cannot be
    listed (no permission), yield a problem: an input the tool could not read
    must never pass as a clean one. A patch file a kustomization lists is not
    an object of its own: it is skipped, with a note.
    """
    for raw in paths:
        if raw == STDIN_PATH:
            yield STDIN_PATH, None
            continue
        path = Path(raw)
        if path.is_dir() and (kustomization_file(str(path)) or is_chart(str(path))):
            yield str(path), None  # a kustomization or a chart: linted as it builds or renders
        elif path.is_dir():
            found, tree, unreadable = [], KustomizeTree(), []
            for root, dirs, files in os.walk(path, onerror=unreadable.append):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
                if is_chart(root):  # rendered as a whole, subcharts included (as kube-linter does)
                    dirs[:] = []
                    found.append(root)
                    continue
                if kustomization_file(root):
                    tree.add(root)
                    found.append(root)
                found += [os.path.join(root, name) for name in sorted(files) if name.lower().endswith(FOLDER_SUFFIXES)]
            for entry in found:
                absolute = os.path.normpath(os.path.abspath(entry))
                if os.path.isdir(entry):
                    if absolute not in tree.bases:
                        yield entry, None
                elif absolute in tree.files:
                    yield entry, Problem(entry, f"used by {tree.files[absolute]}: linted as that kustomization builds it", level="note")
                elif os.path.basename(entry) not in KUSTOMIZATIONS:  # the build's own file is no object
                    yield entry, None
            for err in unreadable:
                yield str(err.filename or path), Problem(str(err.filename or path), f"cannot read this folder: {err.strerror or err}")
        elif path.is_file():
            yield str(path), None
        else:
            yield str(path), Problem(str(path), "no such file or directory")


# --- reading one file --------------------------------------------------------


def load_paths(paths: Iterable[str], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> LoadResult:
    result = LoadResult()
    for path, problem in iter_manifest_files(paths):
        if problem:
            result.problems.append(problem)
            continue
        result.extend(load_file(path, max_file_bytes))
    return result


def load_file(path: str, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> LoadResult:
    result = LoadResult(files=[path])
    if os.path.isdir(path) and is_chart(path):
        result.objects, result.problems = render_chart(path, parse_manifest_text)
        return result
    if os.path.isdir(path):
        result.objects, result.problems = build_kustomization(path)
        return result
    try:
        raw = _read_bytes(path, max_file_bytes)
        result.objects, result.problems = parse_manifest_text(path, _decode(raw))
    except _ManifestError as err:
        result.problems.append(Problem(path, str(err), err.line, err.level))
    return result


def _read_bytes(path: str, max_file_bytes: int) -> bytes:
    try:
        if path != STDIN_PATH and os.path.getsize(path) > max_file_bytes:
            raise _ManifestError(_too_big(os.path.getsize(path), max_file_bytes))
        raw = read_bytes(path, max_file_bytes)
    except OSError as err:
        raise _ManifestError(f"cannot read: {err.strerror or err}") from None
    if len(raw) > max_file_bytes:
        raise _ManifestError(_too_big(len(raw), max_file_bytes))
    return raw


def _too_big(size: int, cap: int) -> str:
    return f"file is {size:,} bytes, over the size cap of {cap:,} (raise it with --max-file-size)"


def _decode(raw: bytes) -> str:
    try:
        return decode(raw)[0]
    except SourceError as err:
        raise _ManifestError(str(err), err.line) from None


def parse_manifest_text(path: str, text: str) -> tuple[list[K8sObject], list[Problem]]:
    """Parse one file's text into objects; problems never raise."""
    if not text.strip():
        return [], [Problem(path, "empty file, nothing to lint", level="note")]
    if path.endswith(".json"):
        documents = _json_documents(text)
    else:
        _refuse_deep_nesting(text)
        skimmed = _skimmed_crd(text)
        documents = [skimmed] if skimmed else _yaml_documents(text)
    objects: list[K8sObject] = []
    problems: list[Problem] = []
    for index, document in enumerate(documents):
        _collect_objects(path, index, document, objects, problems)
    return objects, problems


class Document(NamedTuple):
    line: int
    data: object
    item_lines: list[int] | None  # the line of each item of a `kind: List`
    shares_nodes: bool  # anchors and aliases: one node at several places
    duplicates: list[Duplicate] = []
    source: str = ""  # the document's own text
    skimmed: bool = False  # ``data`` lacks the body (see _skimmed_crd)


# --- CRDs: the header parsed, the body kept as text ---------------------------------
#
# A CustomResourceDefinition's spec is its OpenAPI schema: in real corpora most
# of the bytes (64% of the shared corpus), and what libyaml spends most of its
# time on. No check reads it; the schema gate does, through
# ``K8sObject.full_data``. So a file that holds one CRD, written as a block
# mapping, has its other top-level keys parsed and its spec kept as text.

_TOP_LEVEL_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*):(?:[ \t]|$)")
_CRD_KIND = re.compile(r"^kind:[ \t]*([\"']?)CustomResourceDefinition\1[ \t]*(?:#.*)?$", re.M)
_CRD_API = re.compile(r"^apiVersion:[ \t]*[\"']?apiextensions\.k8s\.io/", re.M)
_SKIMMED = ("spec",)


def _skimmed_crd(text: str) -> Document | None:
    if "CustomResourceDefinition" not in text or not _CRD_KIND.search(text) or not _CRD_API.search(text):
        return None
    lines = text.split("\n")
    first = 1 if lines[0].rstrip() == "---" else 0
    keys: dict[str, int] = {}
    for number in range(first, len(lines)):
        line = lines[number]
        if not line or line[0] in " \t#\r":
            continue
        match = _TOP_LEVEL_KEY.match(line)
        if not match or match.group(1) in keys:
            return None  # another document, a flow mapping, a complex or repeated key: parse it all
        keys[match.group(1)] = number
    if not keys or not set(_SKIMMED) & keys.keys():
        return None
    start = min(keys.values())
    order = sorted(keys.values())
    header = list(lines)
    for key in _SKIMMED:
        if key in keys:
            begin = keys[key]
            end = next((n for n in order if n > begin), len(lines))
            header[begin:end] = [""] * (end - begin)  # blank, so every line keeps its number
    (document,) = _yaml_documents("\n".join(header)) or (None,)
    if document is None or not isinstance(document.data, dict):
        return None
    source = "\n".join(lines[start:])
    return document._replace(line=start + 1, source=source, skimmed=True)


def _json_documents(text: str) -> list[Document]:
    try:
        return [Document(1, json.loads(text), None, False, source=text)]
    except json.JSONDecodeError as err:
        raise _ManifestError(f"invalid JSON: {err.msg}", err.lineno) from None
    except RecursionError:
        raise _ManifestError(f"nesting deeper than {MAX_NESTING} levels") from None


def _yaml_documents(text: str) -> list[Document]:
    loader = KubeLoader(text)
    may_alias = _may_alias(text)
    has_merge = "<<" in text
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if may_alias:
                _refuse_alias_bomb(node)
            duplicated: list[int] = []
            data = loader.construct_document(node) if has_merge or may_alias else _build(node, loader, duplicated)
            duplicates = _duplicate_keys(node) if duplicated or has_merge or may_alias else []
            source = text[node.start_mark.index : node.end_mark.index]
            documents.append(Document(node.start_mark.line + 1, data, _list_item_lines(node, data), may_alias, duplicates, source))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise _yaml_problem(text, f"invalid YAML: {err.problem or err.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise _yaml_problem(text, f"invalid YAML: {err}", None) from None
    except _ManifestError as err:
        raise _yaml_problem(text, str(err), err.line) from None
    finally:
        loader.dispose()
    return documents


_DEEP_INDENT = re.compile(r"^[ \t]{%d,}" % MAX_NESTING, re.M)
_BLOCK_INDICATOR_CHAIN = re.compile(r"(?:[-?:][ \t]+){%d,}" % (MAX_NESTING // 5))
_FLOW_BRACKETS = re.compile(r"[\[\]{}]")
# An anchor (&name) and an alias (*name) outside quotes; only then can a
# document share nodes, and only then is the expansion counted.
_ANCHOR = re.compile(r"(?:^|[\s\[{,:])&[^\s,\[\]{}]")
_ALIAS = re.compile(r"(?:^|[\s\[{,:])\*[^\s,\[\]{}]")


def _may_alias(text: str) -> bool:
    return "&" in text and "*" in text and bool(_ANCHOR.search(text)) and bool(_ALIAS.search(text))


def _refuse_deep_nesting(text: str) -> None:
    """Refuse nesting that would overflow libyaml's recursive composer."""
    if text.count("[") + text.count("{") >= MAX_NESTING:
        depth = 0
        for match in _FLOW_BRACKETS.finditer(text):
            depth += 1 if match.group() in "[{" else -1
            if depth >= MAX_NESTING:
                line = text.count("\n", 0, match.start()) + 1
                raise _ManifestError(f"nesting deeper than {MAX_NESTING} levels", line)
    # Block nesting needs an indentation or a chain of indicators ("- - - x")
    # as long as its depth; both are ruled out by a cheap substring test first.
    suspects = []
    if " " * MAX_NESTING in text or "\t" * MAX_NESTING in text:
        suspects.append(_DEEP_INDENT)
    if "- - - - " in text or "? ? ? ? " in text or ": : : : " in text:
        suspects.append(_BLOCK_INDICATOR_CHAIN)
    for pattern in suspects:
        match = pattern.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            raise _ManifestError(f"nesting deeper than {MAX_NESTING} levels", line)


def _refuse_alias_bomb(root: yaml.Node) -> None:
    """Count the nodes the document would expand to, sharing work per node."""
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # a cycle counts once instead of recursing forever
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += expanded(k) + expanded(v)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += expanded(item)
        sizes[key] = total
        return total

    if expanded(root) > MAX_EXPANDED_NODES:
        raise _ManifestError(
            f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes (alias bomb)",
            root.start_mark.line + 1,
        )


HELM_TEMPLATE = "unrendered Helm template ({{ }}); render it with `helm template` first"


def _yaml_problem(text: str, message: str, line: int | None) -> _ManifestError:
    if "{{" in text:  # the usual reason a chart's template does not parse
        return _ManifestError(HELM_TEMPLATE, line, "warning")
    return _ManifestError(message, line)


def _list_item_lines(node: yaml.Node, data: object) -> list[int] | None:
    if not (isinstance(data, dict) and str(data.get("kind", "")).endswith("List")):
        return None
    for key, value in node.value:
        if key.value == "items" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return None


# --- documents -> objects ----------------------------------------------------


def _collect_objects(path: str, index: int, document: Document, objects: list[K8sObject], problems: list[Problem]) -> None:
    line, data = document.line, document.data
    if data is None:
        return
    if not isinstance(data, dict) or not data.get("apiVersion") or not data.get("kind"):
        problems.append(Problem(path, "not a Kubernetes object (no apiVersion/kind), skipped", line, "note"))
        return
    template = _is_unrendered(data)
    if template:
        # A template whose YAML parses is linted as written, as kube-linter
        # does; one whose kind or apiVersion is templated is no object yet.
        if template == "identity":
            problems.append(Problem(path, HELM_TEMPLATE, line, "warning"))
            return
        problems.append(Problem(path, f"{HELM_TEMPLATE}; linted as written, fixes are not written back", line, "warning"))
    items = data.get("items")
    if str(data["kind"]).endswith("List") and isinstance(items, list):
        for item_index, item in enumerate(items):
            item_line = document.item_lines[item_index] if document.item_lines else line
            if isinstance(item, dict) and item.get("apiVersion") and item.get("kind"):
                prefix = f"/items/{item_index}/"
                own = tuple(d._replace(pointer=d.pointer[len(prefix) - 1 :]) for d in document.duplicates if d.pointer.startswith(prefix))
                _add_object(path, index, item_line, item, item_index, document, own, bool(template), objects, problems)
            else:
                message = f"{data['kind']} item {item_index} has no apiVersion/kind, skipped"
                problems.append(Problem(path, message, item_line, "note"))
        return
    _add_object(path, index, line, data, None, document, tuple(document.duplicates), bool(template), objects, problems)


def _add_object(path, index, line, data, list_index, document: Document, duplicates, template, objects, problems) -> None:
    """The object, unless kubectl and kube-linter could not read it as its kind (see ``decoding``)."""
    failure = decode_failure(data)
    if failure and failure.fatal:
        where, at = _dotted(failure.path), _field_line(document, failure.path, list_index) or line
        message = f"{where}: {failure.message}; kubectl and kube-linter cannot read this {data['kind']}, so it is not linted"
        problems.append(Problem(path, message + _yaml11_hint(failure), at))
        return
    if failure:
        where, at = _dotted(failure.path), _field_line(document, failure.path, list_index) or line
        message = f"{where}: {failure.message}; kubectl cannot apply it, and its pod template is not linted (as kube-linter reads it)"
        problems.append(Problem(path, message, at, "warning"))
    objects.append(
        K8sObject(
            path, index, line, data, list_index, document.shares_nodes,
            duplicate_keys=duplicates, template=template, unstructured=failure is not None, source=document.source,
            skimmed=document.skimmed,
        )
    )


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _yaml11_hint(failure) -> str:
    if "a boolean" in failure.message:
        return " (YAML reads unquoted y, n, yes, no, on, off as booleans: quote the value)"
    if "a number" in failure.message:
        return " (quote the value to make it a string)"
    return ""


def _field_line(document: Document, path: tuple, list_index: int | None) -> int | None:
    """The line of a field in the file (None when it cannot be found again)."""
    if not document.source:
        return None
    try:
        node = yaml.compose(document.source, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return None
    for part in (("items", list_index) if list_index is not None else ()) + tuple(path):
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            return None
    return document.line + node.start_mark.line


def _is_unrendered(data: dict) -> str | None:
    """"identity" when apiVersion or kind is a template expression, "name"
    when only the name or namespace is, else None."""
    if any(isinstance(value, str) and "{{" in value for value in (data.get("apiVersion"), data.get("kind"))):
        return "identity"
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and any(isinstance(metadata.get(f), str) and "{{" in metadata[f] for f in ("name", "namespace")):
        return "name"
    return None
