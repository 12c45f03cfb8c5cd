"""Helm charts as input: rendered with the real `helm template`, linted as
rendered, findings at their template file; kube-linter's own rendering of the
same folder is the reference."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, tools_required

from k8s_auto_fix.checks import REGISTRY
from k8s_auto_fix.checks.registry import KubeLinter
from k8s_auto_fix.engines.kube_linter import find_kube_linter

CHARTS = REPO.parent / "shared" / "inputs" / "charts"
PODINFO = CHARTS / "podinfo"
pytestmark = [
    tools_required("helm"),
    pytest.mark.skipif(not CHARTS.is_dir(), reason=f"shared charts not found at {CHARTS}"),
]
KUBE_LINTER_DEFAULT = {c.id for c in REGISTRY.values() if c.kube_linter is KubeLinter.DEFAULT}
# podinfo's test pods name themselves with `randAlphaNum 5`: every render names them anew.
RANDOM_SUFFIX = re.compile(r"-test-[a-z0-9]{5}$")


def detect(cli, tmp_path, *args):
    out = tmp_path / "d.json"
    code, _, stderr = cli("detect", *map(str, args), "--out", str(out))
    return code, json.loads(out.read_text()), stderr


def key(check, path, kind, name):
    return (check, os.path.relpath(os.path.abspath(path), CHARTS), kind, RANDOM_SUFFIX.sub("-test-*", name))


@tools_required("kube-linter")
@pytest.mark.parametrize("chart", ["podinfo", "ingress-nginx"])
def test_a_chart_folder_gets_the_findings_kube_linter_gets_from_its_own_rendering(cli, tmp_path, chart):
    proc = subprocess.run([find_kube_linter(), "lint", str(CHARTS / chart), "--format", "json"], capture_output=True, text=True)
    reports = json.loads(proc.stdout)["Reports"] or []
    theirs = sorted(
        key(r["Check"], r["Object"]["Metadata"]["FilePath"], r["Object"]["K8sObject"]["GroupVersionKind"]["Kind"], r["Object"]["K8sObject"]["Name"])
        for r in reports
    )
    code, found, _ = detect(cli, tmp_path, CHARTS / chart)
    ours = sorted(key(d["policy_id"], d["manifest_path"], d["object"]["kind"], d["object"]["name"]) for d in found if d["policy_id"] in KUBE_LINTER_DEFAULT)
    assert theirs and code == 1
    assert ours == theirs
    # The same messages, too (the names in them aside).
    assert {RANDOM_SUFFIX.sub("", r["Diagnostic"]["Message"]) for r in reports} <= {RANDOM_SUFFIX.sub("", d["violation_text"]) for d in found}


def test_findings_point_at_the_template_file_and_its_kind_line(cli, tmp_path):
    _, found, _ = detect(cli, tmp_path, PODINFO)
    deployment = [d for d in found if d["object"]["kind"] == "Deployment"]
    assert deployment and {d["manifest_path"] for d in deployment} == {str(PODINFO / "templates" / "deployment.yaml")}
    assert {d["application"] for d in found} == {str(PODINFO)}
    assert {d["object"]["name"] for d in deployment} == {"test-release-podinfo"}  # the rendered object
    lines = (PODINFO / "templates" / "deployment.yaml").read_text().splitlines()
    assert {lines[d["line"] - 1] for d in deployment} == {"kind: Deployment"}
    # The chart's own files are no objects of their own: no unrendered-template warnings.
    code, stdout, stderr = cli("detect", str(PODINFO), "--format", "json")
    assert "unrendered Helm template" not in stderr


def test_values_and_set_are_passed_to_helm(cli, tmp_path):
    _, default, _ = detect(cli, tmp_path, PODINFO)
    _, prod, _ = detect(cli, tmp_path, PODINFO, "--values", PODINFO / "values-prod.yaml")
    redis = str(PODINFO / "templates" / "redis" / "deployment.yaml")
    assert not any(d["manifest_path"] == redis for d in default)
    assert any(d["manifest_path"] == redis for d in prod)  # values-prod.yaml turns redis on
    # values-prod sets resources: the memory limit finding of the Deployment is gone.
    assert ("unset-memory-requirements", "Deployment") in {(d["policy_id"], d["object"]["kind"]) for d in default}
    assert ("unset-memory-requirements", "Deployment") not in {(d["policy_id"], d["object"]["kind"]) for d in prod}
    _, set_, _ = detect(cli, tmp_path, PODINFO, "--set", "securityContext.readOnlyRootFilesystem=true")
    assert ("no-read-only-root-fs", "Deployment") not in {(d["policy_id"], d["object"]["kind"]) for d in set_}


def test_a_chart_found_in_a_folder_is_rendered_and_loose_templates_still_warn(cli, tmp_path):
    shutil.copytree(PODINFO, tmp_path / "repo" / "podinfo")
    loose = tmp_path / "repo" / "loose" / "pod.yaml"
    loose.parent.mkdir()
    loose.write_text((PODINFO / "templates" / "deployment.yaml").read_text())
    code, stdout, stderr = cli("detect", str(tmp_path / "repo"), "--format", "json")
    found = json.loads(stdout)
    assert {d["manifest_path"] for d in found if d["object"]["kind"] == "Deployment"} == {str(tmp_path / "repo" / "podinfo" / "templates" / "deployment.yaml")}
    assert "unrendered Helm template" in stderr and str(loose) in stderr and "podinfo/templates" not in stderr


def test_a_chart_helm_cannot_render_is_one_clear_error(cli, tmp_path):
    chart = tmp_path / "broken"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "broken", "version": "0.1.0"}))
    (chart / "templates" / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Values.missing.field }}\n")
    code, stdout, stderr = cli("detect", str(chart), "--format", "json")
    assert code == 2 and "helm template failed" in stderr and "nil pointer" in stderr and str(chart) in stderr and "Traceback" not in stderr


# --- fixing a chart: the templates stay, the fixes come out as values or a post-renderer ---------

INGRESS = CHARTS / "ingress-nginx"


def helm():
    return shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")


def findings_of(cli, tmp_path, *args):
    return {(d["policy_id"], d["object"]["kind"], RANDOM_SUFFIX.sub("-test-*", d["object"]["name"])) for d in detect(cli, tmp_path, *args)[1]}


def test_fix_on_a_chart_shows_the_rendered_diff_and_never_writes_templates(cli, tmp_path):
    chart = tmp_path / "podinfo"
    shutil.copytree(PODINFO, chart)
    code, diff, stderr = cli("fix", str(chart), "--diff")
    assert code == 1
    assert "templates/deployment.yaml (rendered Deployment/test-release-podinfo)" in diff
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert "seccompProfile:" in added and "type: RuntimeDefault" in added
    code, _, stderr = cli("fix", str(chart), "--write", "--unsafe-fixes")
    assert "chart templates are not rewritten" in stderr and "--emit-values" in stderr
    for path in PODINFO.rglob("*"):
        if path.is_file():
            assert (chart / path.relative_to(PODINFO)).read_bytes() == path.read_bytes(), path


def test_the_post_renderer_round_trip_with_the_real_helm(cli, tmp_path):
    out = tmp_path / "post"
    # The user's release name: the patches target the objects as helm names them for it.
    code, _, stderr = cli("fix", str(PODINFO), "--unsafe-fixes", "--release", "shop", "--emit-post-renderer", str(out))
    assert "post-renderer written" in stderr and os.access(out / "post-render", os.X_OK)
    assert "Helm 3 does not post-render hooks" in stderr  # podinfo's test pods are hooks
    render = [helm(), "template", "shop", str(PODINFO), "--kube-version", "1.30"]
    plain = subprocess.run(render, capture_output=True, text=True, check=True).stdout
    proc = subprocess.run([*render, "--post-renderer", str(out / "post-render")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "shop-podinfo"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    # The objects without fixes come out as helm rendered them.
    (service,) = [d for d in rendered if d["kind"] == "Service"]
    assert service == next(d for d in yaml.safe_load_all(plain) if d and d["kind"] == "Service")
    # Linted again: the Deployment's fixed findings are gone, none is new.
    (tmp_path / "fixed.yaml").write_text(proc.stdout)
    (tmp_path / "plain.yaml").write_text(plain)
    before = {f for f in findings_of(cli, tmp_path, tmp_path / "plain.yaml") if f[1] == "Deployment"}
    after = {f for f in findings_of(cli, tmp_path, tmp_path / "fixed.yaml") if f[1] == "Deployment"}
    assert ("no-read-only-root-fs", "Deployment", "shop-podinfo") in before and after < before
    assert not {"no-read-only-root-fs", "unset-seccomp-profile", "capabilities-not-dropped"} & {f[0] for f in after}


@pytest.mark.parametrize("chart", [PODINFO, INGRESS], ids=["podinfo", "ingress-nginx"])
def test_the_values_override_sets_the_fields_the_chart_exposes(cli, tmp_path, chart):
    values = tmp_path / "fixes.yaml"
    code, _, stderr = cli("fix", str(chart), "--unsafe-fixes", "--emit-values", str(values))
    assert "fixed field(s) are exposed by the chart's values" in stderr
    override = yaml.safe_load(values.read_text())
    assert override
    before = findings_of(cli, tmp_path, chart)
    after = findings_of(cli, tmp_path, chart, "--values", values)
    assert after < before  # only fewer findings, none new
    if chart == PODINFO:
        assert override["securityContext"]["readOnlyRootFilesystem"] is True  # podinfo exposes the container's securityContext
        gone = {f[0] for f in before - after if f[1] == "Deployment"}
        assert {"no-read-only-root-fs", "unset-seccomp-profile", "capabilities-not-dropped", "privilege-escalation-not-disabled"} <= gone
    else:
        # ingress-nginx exposes each container's resources under its own key: the probe finds the right one.
        jobs = override["controller"]["admissionWebhooks"]
        assert jobs["createSecretJob"]["resources"]["requests"]["cpu"] and jobs["patchWebhookJob"]["resources"]["requests"]["cpu"]
        assert not any(f[0] == "unset-cpu-requirements" for f in after)


def test_run_takes_a_chart_and_verifies_the_fixes_of_its_rendered_objects(cli, tmp_path):
    out = tmp_path / "out"
    cli("run", str(PODINFO), "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    detections = json.loads((out / "detections.json").read_text())
    deployment = {d["id"] for d in detections if d["object"]["kind"] == "Deployment"}
    verified = {v["id"]: v for v in json.loads((out / "verified.json").read_text())}
    assert deployment and metrics["failed_apply"] == 0
    assert all(verified[i]["accepted"] for i in deployment if i in verified) and deployment & verified.keys()
    assert "templates/deployment.yaml" in (out / "report.html").read_text()


def test_propose_and_verify_on_their_own_render_the_chart_with_the_same_values(cli, tmp_path):
    prod = PODINFO / "values-prod.yaml"
    detections, patches, verified = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "v.json"
    cli("detect", str(PODINFO), "--values", str(prod), "--out", str(detections))
    redis = {d["id"] for d in json.loads(detections.read_text()) if d["object"]["name"] == "test-release-podinfo-redis"}
    assert redis
    cli("propose", "-d", str(detections), "-o", str(patches), "--values", str(prod))
    proposed = {p["id"]: p for p in json.loads(patches.read_text())}
    assert any(proposed[i]["patch"] for i in redis if i in proposed)
    cli("verify", "-p", str(patches), "-d", str(detections), "-o", str(verified), "--values", str(prod))
    verdicts = [v for v in json.loads(verified.read_text()) if v["id"] in redis]
    assert verdicts and all(v["ok_apply"] for v in verdicts)
    # Without the values, the redis Deployment is not rendered: its patches cannot be applied.
    cli("verify", "-p", str(patches), "-d", str(detections), "-o", str(verified))
    assert not any(v["ok_apply"] for v in json.loads(verified.read_text()) if v["id"] in redis)


def test_a_subchart_renders_with_its_parent_and_an_archived_one_is_pointed_at(cli, tmp_path):
    sub, parent = tmp_path / "sub", tmp_path / "parent"
    (sub / "templates").mkdir(parents=True)
    (sub / "Chart.yaml").write_text("apiVersion: v2\nname: sub\nversion: 1.0.0\n")
    (sub / "templates" / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-sub\nspec:\n  containers:\n  - name: c\n    image: nginx:latest\n"
    )
    (parent / "charts").mkdir(parents=True)
    (parent / "Chart.yaml").write_text("apiVersion: v2\nname: parent\nversion: 0.1.0\ndependencies:\n- name: sub\n  version: 1.0.0\n")
    shutil.copytree(sub, parent / "charts" / "sub")
    _, found, _ = detect(cli, tmp_path, parent)
    assert {d["manifest_path"] for d in found} == {str(parent / "charts" / "sub" / "templates" / "pod.yaml")}
    assert {d["application"] for d in found} == {str(parent)}  # one application: the parent chart
    shutil.rmtree(parent / "charts" / "sub")
    subprocess.run([helm(), "package", str(sub), "-d", str(parent / "charts")], capture_output=True, check=True)
    _, found, _ = detect(cli, tmp_path, parent)
    assert found and {d["manifest_path"] for d in found} == {str(parent / "charts" / "sub-1.0.0.tgz")}
