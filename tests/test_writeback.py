"""Write-back fidelity on real files: every changed line lies inside a node the
patch touches, so the Git diff holds the fix and nothing else."""

from __future__ import annotations

import difflib

import pytest
import yaml
from conftest import CORPUS, corpus_required

from k8s_auto_fix.config import RunConfig
from k8s_auto_fix.fix.apply import run_fix
from k8s_auto_fix.fix.engine import FixSettings
from k8s_auto_fix.fix.roundtrip import _DOC_MARKER, _has_content, split_documents
from k8s_auto_fix.patch import parse_pointer
from k8s_auto_fix.runner import RunnerOptions


def _node(root, parts):
    """(key node or None, node) at ``parts``; (None, None) when it is not there."""
    key, node = None, root
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            key, node = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), (None, None))
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            key, node = None, node.value[int(part)]
        else:
            return None, None
        if node is None:
            return None, None
    return key, node


def _span(key, node) -> tuple[int, int]:
    """First and last line (0-based, in the document) of a node, from its key's line."""
    first = (key or node).start_mark.line
    last = node.end_mark.line - (1 if node.end_mark.column == 0 and node.end_mark.line > first else 0)
    return first, last


def touched_spans(text: str, edits) -> list[tuple[int, int]]:
    """Line spans (in the file) of the nodes the edits' operations touch."""
    chunks = split_documents(text)
    content = [i for i, chunk in enumerate(chunks) if _has_content(chunk)]
    spans = []
    for edit in edits:
        position = content[edit.document_index]
        offset = sum(c.count("\n") for c in chunks[:position])
        chunk = chunks[position]
        if _DOC_MARKER.match(chunk):
            offset += 1
            chunk = chunk.split("\n", 1)[1]
        root = yaml.compose(chunk, Loader=yaml.CSafeLoader)
        prefix = [] if edit.list_index is None else ["items", str(edit.list_index)]
        for op in edit.ops:
            parts = prefix + parse_pointer(op["path"])
            key, node = _node(root, parts)
            if op["op"] == "add" or node is None:
                key, node = _node(root, parts[:-1])  # an add lands inside its parent
            if node is not None:
                first, last = _span(key, node)
                spans.append((offset + first, offset + last))
    return spans


@corpus_required()
@pytest.mark.parametrize("part", ["artifacthub", "the-stack"])
def test_every_changed_line_lies_inside_a_node_the_patch_touches(part):
    settings = FixSettings.build(RunConfig(), {}, True, "1.30", None)
    run = run_fix([str(CORPUS / part)], list(settings.checks), RunnerOptions(), settings)
    assert len(run.new_texts) > 100
    outside = []
    for path, updated in run.new_texts.items():
        with open(path, encoding="utf-8", newline="") as handle:
            original = handle.read()
        spans = touched_spans(original, run.edits[path])
        before, after = original.splitlines(), updated.splitlines()
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            if tag == "insert":
                ok = i1 == len(before) or any(first <= i1 <= last + 1 for first, last in spans)  # created objects go at the end
            else:
                ok = all(any(first <= line <= last for first, last in spans) for line in range(i1, i2))
            if not ok:
                outside.append(f"{path}:{i1 + 1}: {before[i1] if i1 < len(before) else ''!r}")
    assert not outside, outside[:10]


def _fast(text: str, ops: list[dict]) -> str | None:
    from k8s_auto_fix.fix.roundtrip import _yaml
    from k8s_auto_fix.fix.textedit import apply_ops_fast

    return apply_ops_fast(text, ops, _yaml(text))


def test_insertions_at_one_place_land_as_one_after_the_other_would():
    text = "a:\n  b:\n    x: 1\nz: 2\n"
    ops = [{"op": "add", "path": "/a/k2", "value": 2}, {"op": "add", "path": "/a/b/k1", "value": 1}, {"op": "add", "path": "/a/k3", "value": 3}]
    assert _fast(text, ops) == "a:\n  b:\n    x: 1\n    k1: 1\n  k2: 2\n  k3: 3\nz: 2\n"


def test_dependent_operations_wait_for_the_next_parse():
    text = "spec:\n  containers:\n  - name: a\n    image: x\n  - name: b\n    image: y\n"
    ops = [
        {"op": "add", "path": "/spec/containers/0/securityContext", "value": {}},
        {"op": "add", "path": "/spec/containers/0/securityContext/runAsUser", "value": 1000},
        {"op": "remove", "path": "/spec/containers/0/image"},
        {"op": "add", "path": "/spec/containers/1/resources", "value": {"limits": {"cpu": "1"}}},
    ]
    assert _fast(text, ops) == (
        "spec:\n  containers:\n  - name: a\n    securityContext:\n      runAsUser: 1000\n"
        "  - name: b\n    image: y\n    resources:\n      limits:\n        cpu: '1'\n"
    )


def test_hundreds_of_operations_stay_on_the_fast_path_and_touch_only_their_lines():
    containers = "".join(f"  - name: c{i}  # keep\n    image: 'example.com/c:{i}'\n" for i in range(300))
    text = "spec:\n  containers:\n" + containers
    ops = [{"op": "add", "path": f"/spec/containers/{i}/resources", "value": {"requests": {"cpu": "10m"}}} for i in range(300)]
    fixed = _fast(text, ops)
    assert fixed is not None and yaml.safe_load(fixed)["spec"]["containers"][299]["resources"] == {"requests": {"cpu": "10m"}}
    removed = [line for line in difflib.ndiff(text.splitlines(), fixed.splitlines()) if line.startswith("- ")]
    assert removed == []
