"""Kustomizations as input: linted as they build, fixed where a person keeps the object."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, tools_required

from k8s_auto_fix.engines.kube_linter import find_kube_linter

CASE = REPO / "tests" / "kustomize"
PODINFO = REPO.parent / "shared" / "inputs" / "kustomize" / "podinfo"
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


def detect(cli, tmp_path, *paths):
    out = tmp_path / "d.json"
    code, _, stderr = cli("detect", *map(str, paths), "--out", str(out))
    return code, json.loads(out.read_text()), stderr


def built(folder):
    proc = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_findings_are_on_the_built_objects_at_their_resource_file(cli, tmp_path):
    code, found, _ = detect(cli, tmp_path, CASE)
    assert code == 1 and found
    assert {d["manifest_path"] for d in found} == {str(CASE / "base" / "deployment.yaml")}
    assert {d["object"]["name"] for d in found} == {"prod-api"}  # as the overlay builds it
    assert {d["application"] for d in found} == {str(CASE / "overlays" / "prod")}  # the base is linted through its overlay only
    # The overlay's patch sets allowPrivilegeEscalation: false, so that finding is not there.
    assert not any(d["policy_id"] == "privilege-escalation-container" for d in found)


def test_a_fix_the_overlay_would_change_becomes_a_patch_of_the_overlay(cli, tmp_path):
    work = tmp_path / "k"
    shutil.copytree(CASE, work)
    cli("fix", str(work), "--write", "--unsafe-fixes")
    assert (work / "base" / "deployment.yaml").read_text() == (CASE / "base" / "deployment.yaml").read_text()
    assert (work / "overlays" / "prod" / "hardening.yaml").read_text() == (CASE / "overlays" / "prod" / "hardening.yaml").read_text()
    kustomization = yaml.safe_load((work / "overlays" / "prod" / "kustomization.yaml").read_text())
    assert kustomization["patches"][0] == {"path": "hardening.yaml"}
    assert kustomization["patches"][1]["path"] == "k8s-auto-fix-deployment-api.yaml"
    (deployment,) = built(work / "overlays" / "prod")
    sc = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    code, found, _ = detect(cli, tmp_path, work)
    assert (code, found) == (0, [])


def test_a_fix_that_means_the_same_in_the_resource_file_is_written_there(cli, tmp_path):
    work = tmp_path / "podinfo"
    shutil.copytree(PODINFO, work)
    _, before, _ = detect(cli, tmp_path, work)
    assert before and {d["manifest_path"] for d in before} == {str(work / "deployment.yaml")}
    cli("fix", str(work), "--write", "--unsafe-fixes")
    assert (work / "kustomization.yaml").read_text() == (PODINFO / "kustomization.yaml").read_text()
    fixed = yaml.safe_load((work / "deployment.yaml").read_text())
    assert fixed["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    (deployment,) = [d for d in built(work) if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_broken_kustomization_is_one_clear_error(cli, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    code, _, stderr = cli("detect", str(tmp_path / "bad"), "--format", "json")
    assert code == 2 and "kustomize build failed" in stderr and "Traceback" not in stderr


@tools_required("kube-linter")
@pytest.mark.parametrize("folder", [PODINFO, CASE / "overlays" / "prod"], ids=["podinfo", "overlay"])
def test_a_kustomization_gets_the_findings_kube_linter_gets_from_its_own_build(cli, tmp_path, folder):
    from k8s_auto_fix.checks import REGISTRY
    from k8s_auto_fix.checks.registry import KubeLinter

    default = {c.id for c in REGISTRY.values() if c.kube_linter is KubeLinter.DEFAULT}
    proc = subprocess.run([find_kube_linter(), "lint", str(folder), "--format", "json"], capture_output=True, text=True)
    theirs = sorted(
        (r["Check"], r["Object"]["K8sObject"]["GroupVersionKind"]["Kind"], r["Object"]["K8sObject"]["Name"]) for r in json.loads(proc.stdout)["Reports"] or []
    )
    _, found, _ = detect(cli, tmp_path, folder)
    ours = sorted((d["policy_id"], d["object"]["kind"], d["object"]["name"]) for d in found if d["policy_id"] in default)
    assert theirs and ours == theirs
