"""The documented GitHub Actions workflow: valid against GitHub's workflow
schema, and the SARIF its lint step writes valid against SARIF 2.1.0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOW = REPO / "docs" / "github-actions" / "k8s-auto-fix.yml"
SARIF_SCHEMA = REPO / ".tools" / "sarif" / "sarif-2.1.0.json"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
BIN = Path(sys.executable).parent


def schema_check(path: Path) -> subprocess.CompletedProcess:
    # check-jsonschema ships SchemaStore's github-workflows schema: no network.
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True, text=True)


def test_the_workflow_is_a_valid_github_actions_workflow(tmp_path):
    assert schema_check(WORKFLOW).returncode == 0
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["lint"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert workflow["permissions"]["security-events"] == "write" and upload["if"] == "always()"
    # The validator does refuse a broken workflow (a job without runs-on).
    del workflow["jobs"]["lint"]["runs-on"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow))
    assert schema_check(broken).returncode != 0


@pytest.mark.skipif(not SARIF_SCHEMA.is_file(), reason="SARIF schema not installed (scripts/setup.sh fetches it)")
def test_the_sarif_the_workflow_uploads_passes_the_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["lint"]["steps"]
    lint = next(s for s in steps if s.get("name") == "Lint")
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    checkout = tmp_path / "checkout"  # what actions/checkout leaves: manifests, and a chart when helm is there
    shutil.copytree(REPO / "examples", checkout / "deploy")
    chart = REPO.parent / "shared" / "inputs" / "charts" / "podinfo"
    helm = shutil.which("helm") or (REPO / ".tools" / "bin" / "helm").exists()
    if chart.is_dir() and helm:
        shutil.copytree(chart, checkout / "charts" / "podinfo")
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{REPO / '.tools' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-e", "-c", lint["run"]], cwd=checkout, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # findings (exit 1) do not fail the step
    sarif = json.loads((checkout / upload["with"]["sarif_file"]).read_text())
    jsonschema.Draft202012Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert uris and all(not u.startswith(("/", "file:")) for u in uris)  # repository-relative, as code scanning needs
    assert all((checkout / u).is_file() for u in uris)
    if chart.is_dir() and helm:
        assert "charts/podinfo/templates/deployment.yaml" in uris
