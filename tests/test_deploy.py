"""Issue 15, item 7: the KubeRay deploy example passes the tool's own detect and
kubectl-validate with the KubeRay CRD (a fixture of its schema)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import REPO

EXAMPLE = REPO / "deploy" / "ray-cluster.yaml"
CRDS = REPO / "tests" / "fixtures" / "kuberay"


def _kubectl_validate():
    return shutil.which("kubectl-validate") or (str(REPO / ".tools" / "bin" / "kubectl-validate") if (REPO / ".tools" / "bin" / "kubectl-validate").exists() else None)


def test_the_deploy_example_has_no_findings(cli, tmp_path):
    code, _, stderr = cli("detect", str(EXAMPLE), "--out", str(tmp_path / "d.json"))
    assert code == 0 and json.loads((tmp_path / "d.json").read_text()) == [], stderr
    assert "0 finding(s) in 4 object(s)" in stderr  # every object was read (the RayCluster too)


def _validate(path) -> dict:
    binary = _kubectl_validate()
    if binary is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("kubectl-validate is not installed (make test builds it)")
    proc = subprocess.run([binary, str(path), "--local-crds", str(CRDS), "--version", "1.30", "--output", "json"], capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout)


def test_the_deploy_example_is_valid_with_the_kuberay_crd(tmp_path):
    results = next(iter(_validate(EXAMPLE).values()))
    assert [r["status"] for r in results] == ["Success"] * 4, results
    # The CRD is really applied: a RayCluster with a mistyped field is refused.
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("      replicas: 2\n", "      replicas: two\n"))
    statuses = [r["status"] for r in next(iter(_validate(broken).values()))]
    assert statuses.count("Failure") == 1, statuses
