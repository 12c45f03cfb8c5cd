"""Agreement with kube-linter: the reference findings of the corpus, and the
real binary when it is installed."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import CORPUS, corpus_required, tools_required

REFERENCE = CORPUS / "reference" / "kube-linter-findings.jsonl"


@corpus_required()
def test_every_reference_finding_is_found_with_the_same_message(detect_json):
    """Each row came from kube-linter linting one file on its own."""
    _, detections, _ = detect_json(str(CORPUS), "--context", "file")
    ours = {(os.path.abspath(d["manifest_path"]), d["policy_id"], d["violation_text"]) for d in detections}
    rows = [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]
    missing = [r for r in rows if (os.path.abspath(CORPUS / r["path"]), r["check"], r["message"]) not in ours]
    assert len(rows) > 1000 and missing == []


@corpus_required()
def test_parity_command_against_the_reference_on_a_slice(cli, tmp_path):
    # One chart folder and its reference rows; the bench compares (file, check).
    chart = CORPUS / "artifacthub" / "bitnami" / "kafka"
    rows = [json.loads(line) for line in REFERENCE.read_text().splitlines() if "bitnami/kafka/" in line]
    reference = tmp_path / "reference" / "slice.jsonl"
    reference.parent.mkdir()
    reference.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Reference paths are relative to the corpus folder: mirror its layout.
    (tmp_path / "artifacthub" / "bitnami").mkdir(parents=True)
    shutil.copytree(chart, tmp_path / "artifacthub" / "bitnami" / "kafka")
    out = tmp_path / "parity.json"
    code, stdout, _ = cli("bench", "parity", str(tmp_path / "artifacthub"), "--context", "file", "--reference", str(reference), "--out", str(out))
    report = json.loads(out.read_text())
    assert rows and code == 0 and report["ok"] and report["totals"]["misses"] == 0
    assert report["totals"]["matches"] == len({(r["path"], r["check"]) for r in rows})


@corpus_required()
@tools_required("kube-linter")
@pytest.mark.parametrize("checks", [(), ("--all-checks",)], ids=["default-checks", "all-checks"])
def test_the_whole_corpus_agrees_with_the_real_kube_linter_check_by_check(cli, tmp_path, checks):
    """Folder context, as kube-linter lints a folder. Every known difference
    would be listed in the README's table, with its reason; there are none."""
    out = tmp_path / "parity.json"
    code, stdout, _ = cli("bench", "parity", str(CORPUS), *checks, "--out", str(out))
    report = json.loads(out.read_text())
    differing = {check: (row["misses"], row["extras"], row["miss_examples"], row["extra_examples"]) for check, row in report["checks"].items() if row["misses"] or row["extras"]}
    assert differing == {}
    assert report["totals"]["matches"] > (40_000 if checks else 10_000) and code == 0
