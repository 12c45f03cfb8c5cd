"""Exact locations: every finding points at the line and column of its field
(or of the field's nearest written parent) and names the field's JSON Pointer.

The oracle is the file's own text, not a YAML parser: the reported line must
show the key of the deepest part of the pointer the object writes (a list
item without a ``name:`` shows its ``-``), at the reported column."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import CORPUS, corpus_required, write
from test_checks import CASES

from k8s_auto_fix.checks import REGISTRY
from k8s_auto_fix.checks.fixes import role_path
from k8s_auto_fix.checks.registry import covers
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.manifests.loader import load_file
from k8s_auto_fix.patch import parse_pointer


def anchor(data: object, pointer: str) -> tuple[str | None, int]:
    """What the line of ``pointer``'s nearest written part must show: its key
    (a list item: its ``name`` key, else None for the ``-``), and how many
    parts are written."""
    node, key, written = data, None, 0
    for part in parse_pointer(pointer):
        if isinstance(node, dict) and part in node:
            node, key = node[part], part
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            key = "name" if isinstance(node, dict) and "name" in node else None
        else:
            break
        written += 1
    return key, written


def points_at_field(lines: list[str], data: dict, finding: dict) -> bool:
    """The finding's line and column show its field (or the nearest written parent)."""
    line, column, pointer = finding["line"], finding["column"], finding["json_pointer"]
    if not line or not column or line > len(lines):
        return False
    key, written = anchor(data, pointer or "")
    if written == 0:
        return line == finding["object_line"]
    text = lines[line - 1][column - 1 :]
    if key is None:  # an item without a name: the column is just past its "- " (or "[", "," in a flow list)
        return lines[line - 1][: column - 1].rstrip().endswith(("-", "[", ","))
    return text.lstrip("\"'").startswith(key) and ":" in text


def object_data(path: str, finding: dict) -> dict | None:
    for obj in load_file(path).objects:
        if obj.document_index == finding["document_index"] and obj.list_index == finding["list_index"]:
            return obj.full_data
    return None


def findings_of(path: Path, check_id: str) -> list[dict]:
    result = detect([str(path)], [REGISTRY[check_id]], DetectOptions(jobs=1))
    return [d.model_dump(mode="json") for d in result.detections]


# A probe names a port the container does not expose: the probe's port is the
# field shown, while the fix adds the port to the container.
PROBE_PORTS = {"readiness-port", "liveness-port", "startup-port"}


@pytest.mark.parametrize(("check_id", "bad"), [(c[0], c[1]) for c in CASES], ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_check_points_at_its_field_or_parent(tmp_path, check_id, bad):
    path = write(tmp_path, "bad.yaml", bad)
    lines = path.read_text().splitlines()
    found = findings_of(path, check_id)
    assert found
    for finding in found:
        assert finding["json_pointer"], f"{check_id} names no field"
        assert points_at_field(lines, object_data(str(path), finding), finding), (finding, lines[finding["line"] - 1])
        fix = REGISTRY[check_id].fix
        if fix is not None and fix.remedy and check_id not in PROBE_PORTS:
            # The field is what the fix writes, or a parent of it: the place to change.
            obj = next(o for o in load_file(str(path)).objects if o.document_index == finding["document_index"])
            role = role_path(obj, finding["container"], finding["json_pointer"])
            assert any(covers(pattern, role) or covers(role, pattern) for pattern in fix.remedy), (role, fix.remedy)


MISSING = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - image: example.com/web:1.0
          name: web
          securityContext:
            runAsNonRoot: true
        - name: side
          image: example.com/side:1.0
"""


def test_a_missing_field_points_at_its_nearest_parent(tmp_path):
    path = write(tmp_path, "web.yaml", MISSING)
    by_container = {d["container"]: d for d in findings_of(path, "no-read-only-root-fs")}
    # web has a securityContext: its line; side has none: its "- name:" line
    # (web's name is not the first key: the name line is still the one shown).
    assert (by_container["web"]["line"], by_container["web"]["column"]) == (15, 11)
    assert by_container["web"]["json_pointer"] == "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem"
    assert (by_container["side"]["line"], by_container["side"]["column"]) == (17, 11)


def test_list_items_duplicate_keys_and_merge_keys_are_located_in_the_file(tmp_path):
    text = """\
    # a comment first
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Pod
      metadata: {name: a}
      spec:
        containers:
        - name: a
          image: a:latest
          image: b:latest
    - apiVersion: v1
      kind: Pod
      metadata: {name: b}
      spec:
        containers:
        - &base
          name: b
          image: c:latest
        - <<: *base
          name: b2
    """
    path = write(tmp_path, "list.yaml", text)
    found = {d["container"]: d for d in findings_of(path, "latest-tag")}
    assert (found["a"]["line"], found["a"]["column"]) == (12, 7)  # the image key kubectl reads: the last one
    assert found["a"]["object_line"] == 5 and found["b"]["object_line"] == 13
    assert (found["b"]["line"], found["b"]["column"]) == (20, 7)
    assert (found["b2"]["line"], found["b2"]["column"]) == (20, 7)  # merged in: where the anchor writes it
    assert found["b2"]["json_pointer"] == "/items/1/spec/containers/1/image" or found["b2"]["json_pointer"] == "/spec/containers/1/image"


def test_table_sarif_and_json_carry_the_location(cli, tmp_path):
    path = write(tmp_path, "web.yaml", MISSING)
    code, out, _ = cli("detect", str(path), "--format", "sarif")
    results = json.loads(out)["runs"][0]["results"]
    side = next(r for r in results if r["ruleId"] == "no-read-only-root-fs" and "side" in r["message"]["text"])
    assert side["locations"][0]["physicalLocation"]["region"] == {"startLine": 17, "startColumn": 11}
    assert side["properties"]["jsonPointer"] == "/spec/template/spec/containers/1/securityContext/readOnlyRootFilesystem"
    code, out, _ = cli("detect", str(path), "--format", "table")
    assert re.search(r"^  17:11 +medium +no-read-only-root-fs +Deployment/web \[side\]", out, re.M), out


# --- the shared corpus ----------------------------------------------------------------


def corpus_accuracy(paths: list[str], checks=None) -> tuple[int, int, list[dict]]:
    """(findings with the right field line, findings, the wrong ones) over SARIF results."""
    from k8s_auto_fix.report.sarif import to_sarif

    checks = list(checks or REGISTRY.values())  # the optional checks too: more fields on real files
    result = detect(paths, checks, DetectOptions())
    by_id = {d.id: d.model_dump(mode="json") for d in result.detections}
    sarif = to_sarif(result.detections, result.problems, checks)
    files: dict[str, tuple[list[str], dict]] = {}
    right, wrong = 0, []
    for entry in sarif["runs"][0]["results"]:
        finding = dict(by_id[entry["partialFingerprints"]["k8sAutoFixId/v1"]])
        region = entry["locations"][0]["physicalLocation"].get("region") or {}
        finding["line"], finding["column"] = region.get("startLine"), region.get("startColumn")
        path = finding["manifest_path"]
        if path not in files:
            objects = {(o.document_index, o.list_index): o.full_data for o in load_file(path).objects}
            files[path] = (Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), objects)
        lines, objects = files[path]
        data = objects.get((finding["document_index"], finding["list_index"]))
        if data is not None and points_at_field(lines, data, finding):
            right += 1
        else:
            wrong.append(finding)
    return right, right + len(wrong), wrong


@corpus_required()
def test_corpus_sarif_points_at_the_field_line_for_98_percent():
    # A deterministic sample (every 8th file) keeps this in the suite's budget;
    # K8S_AUTO_FIX_LOCATIONS_FULL=1 measures every file.
    files = sorted(str(p) for p in CORPUS.rglob("*") if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
    sample = files if os.environ.get("K8S_AUTO_FIX_LOCATIONS_FULL") else files[::8]
    right, total, wrong = corpus_accuracy(sample)
    assert total > 500
    assert right / total >= 0.98, wrong[:5]
