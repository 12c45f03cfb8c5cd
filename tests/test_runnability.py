"""Fixes that keep workloads running: one synthetic case per failure class
(tests/runnability/), fixed with `fix --write --unsafe-fixes` and checked,
the harm audit over the result, and the runnability invariants one by one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import CORPUS, REPO, corpus_required

from k8s_auto_fix.checks.fixes import FixOptions
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import RunConfig
from k8s_auto_fix.contracts import Applicability
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.manifests.images import load_facts, repository_path, shipped_facts
from k8s_auto_fix.manifests.profiles import Profile, profile_of
from k8s_auto_fix.manifests.store import ObjectStore
from k8s_auto_fix.propose.rules import propose_rules

CASES = REPO / "tests" / "runnability"
HARM_AUDIT = REPO.parent / "shared" / "tools" / "harm_audit.py"


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """The cases, fixed in place with review fixes on; (original, fixed) folders and the CLI's stderr."""
    root = tmp_path_factory.mktemp("runnability")
    shutil.copytree(CASES, root / "orig")
    shutil.copytree(CASES, root / "fixed")
    proc = subprocess.run(
        [sys.executable, "-m", "k8s_auto_fix", "fix", str(root / "fixed"), "--write", "--unsafe-fixes"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return root / "orig", root / "fixed", proc.stderr


def docs(folder, name):
    return list(yaml.safe_load_all((folder / name).read_text()))


def containers(doc):
    spec = doc["spec"]["template"]["spec"] if "template" in doc["spec"] else doc["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}, spec


def proposals(name: str):
    """Rule proposals for one case file, by (check, container)."""
    found = detect([str(CASES / name)], select_checks(), DetectOptions(jobs=1)).detections
    patches = propose_rules(found, FixOptions(RunConfig().fixes)).patches
    by_id = {d.id: d for d in found}
    return {(p.policy_id, by_id[p.id].container): p for p in patches}


# --- class by class ------------------------------------------------------------------------


def test_host_paths_stay(fixed):
    orig, out, _ = fixed
    def host_paths(folder, name):
        return [[v for v in d["spec"]["template"]["spec"]["volumes"] if "hostPath" in v] for d in docs(folder, name)]

    for name in ("hostpath-file-mount.yaml", "node-exporter.yaml"):
        assert host_paths(out, name) == host_paths(orig, name)
    fix = proposals("hostpath-file-mount.yaml")[("host-path-volume", None)]
    assert fix.applicability is Applicability.MANUAL and "empty directory" in fix.explanation


def test_non_root_always_comes_with_a_user_the_image_can_run_as(fixed):
    _, out, _ = fixed
    (deployment,) = docs(out, "root-images.yaml")
    by_name, _ = containers(deployment)
    assert "runAsNonRoot" not in by_name["nginx"].get("securityContext", {})  # nginx needs root
    assert by_name["cache"]["securityContext"]["runAsUser"] == 999  # redis is built to run as 999
    assert by_name["api"]["securityContext"]["runAsUser"] == 10001  # unknown: the configured uid, as review
    assert by_name["dashboards"]["securityContext"]["runAsUser"] == 472  # grafana's own user
    for container in by_name.values():
        sc = container.get("securityContext", {})
        assert sc.get("runAsNonRoot") is not True or isinstance(sc.get("runAsUser"), int)
    found = proposals("root-images.yaml")
    assert found[("run-as-non-root", "nginx")].applicability is Applicability.MANUAL
    assert "nginx-unprivileged" in found[("run-as-non-root", "nginx")].explanation
    assert found[("run-as-non-root", "dashboards")].applicability is Applicability.SAFE
    assert "not start" in found[("run-as-non-root", "api")].explanation


def test_created_service_accounts_keep_the_token_a_binding_needs_and_are_created_once(fixed):
    _, out, _ = fixed
    accounts = [d for d in docs(out, "bound-service-account.yaml") if d["kind"] == "ServiceAccount"]
    by_name = {}
    for account in accounts:
        by_name.setdefault(account["metadata"]["name"], []).append(account)
    assert sorted(by_name) == ["operator", "reporter"] and all(len(v) == 1 for v in by_name.values())
    assert "automountServiceAccountToken" not in by_name["operator"][0]  # bound: it calls the API
    assert by_name["reporter"][0]["automountServiceAccountToken"] is False


def test_kustomize_patch_files_are_not_objects(fixed):
    orig, out, stderr = fixed
    assert (out / "kustomize" / "resources-patch.yaml").read_text() == (orig / "kustomize" / "resources-patch.yaml").read_text()
    (deployment,) = docs(out, "kustomize/deployment.yaml")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2"
    found = detect([str(CASES)], select_checks(), DetectOptions(jobs=1))
    assert not any(d.manifest_path.endswith("resources-patch.yaml") for d in found.detections)
    assert any(p.path.endswith("resources-patch.yaml") and p.level == "note" for p in found.problems)


def test_requests_are_never_lowered(fixed):
    _, out, _ = fixed
    (deployment,) = docs(out, "limits-only.yaml")
    by_name, _ = containers(deployment)
    assert by_name["limits-only"]["resources"]["requests"]["cpu"] == "2"  # the limit, as Kubernetes already takes it
    assert by_name["requests-only"]["resources"]["limits"]["memory"] == "3Gi"  # never below the request
    # The default limit is also written as the request, which Kubernetes would take from it anyway.
    assert by_name["neither"]["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}
    found = proposals("limits-only.yaml")
    assert found[("unset-cpu-requirements", "limits-only")].applicability is Applicability.SAFE


def test_node_agents_keep_privilege_namespaces_and_capabilities(fixed):
    orig, out, _ = fixed
    (before,), (after,) = docs(orig, "cni-daemonset.yaml"), docs(out, "cni-daemonset.yaml")
    spec_before, spec_after = before["spec"]["template"]["spec"], after["spec"]["template"]["spec"]
    assert spec_after["hostNetwork"] is True
    agent_before, agent_after = spec_before["containers"][0], spec_after["containers"][0]
    assert agent_after["securityContext"]["privileged"] is True
    assert agent_after["securityContext"]["capabilities"] == agent_before["securityContext"]["capabilities"]
    found = proposals("cni-daemonset.yaml")
    assert "node agent" in found[("sys-admin-capability", "agent")].explanation


def test_explicit_author_choices_stay(fixed):
    _, out, _ = fixed
    deployment, cronjob = docs(out, "explicit-choices.yaml")
    by_name, _ = containers(deployment)
    assert by_name["fix-permissions"]["securityContext"] == {"runAsUser": 0, "privileged": True} | {
        k: v for k, v in by_name["fix-permissions"]["securityContext"].items() if k not in ("runAsUser", "privileged")
    }
    assert by_name["fix-permissions"]["securityContext"]["runAsUser"] == 0
    assert by_name["uploader"]["securityContext"]["readOnlyRootFilesystem"] is False
    assert by_name["uploader"]["securityContext"]["allowPrivilegeEscalation"] is True
    assert cronjob["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] == 600


def test_read_only_root_filesystems_get_the_images_write_paths(fixed):
    _, out, _ = fixed
    (deployment,) = docs(out, "writing-images.yaml")
    by_name, spec = containers(deployment)
    mounts = {name: {m["mountPath"] for m in c.get("volumeMounts", [])} for name, c in by_name.items()}
    assert by_name["nginx"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/var/cache/nginx", "/var/run", "/tmp"} <= mounts["nginx"]
    assert by_name["db"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/var/lib/postgresql/data", "/var/run/postgresql"} <= mounts["db"]
    assert sum(1 for m in by_name["db"]["volumeMounts"] if m["mountPath"] == "/var/lib/postgresql/data") == 1  # the PVC is kept
    assert "readOnlyRootFilesystem" not in by_name["apache"].get("securityContext", {})  # httpd writes where the tool does not know
    names = [v["name"] for v in spec["volumes"]]
    assert len(names) == len(set(names))


def test_windows_pods_get_no_linux_settings(fixed):
    orig, out, _ = fixed
    (before,), (after,) = docs(orig, "windows.yaml"), docs(out, "windows.yaml")
    spec_before, spec_after = before["spec"]["template"]["spec"], after["spec"]["template"]["spec"]
    assert spec_after["volumes"] == spec_before["volumes"] and "securityContext" not in spec_after
    (iis,) = spec_after["containers"]
    assert "securityContext" not in iis and iis["volumeMounts"] == spec_before["containers"][0]["volumeMounts"]
    assert iis["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}  # not Linux-only


def test_no_container_port_on_a_host_network_pod(fixed):
    _, out, _ = fixed
    (after,) = docs(out, "hostnetwork-probe.yaml")
    assert after["spec"]["template"]["spec"]["containers"][0].get("ports") is None


def test_line_ends_nulls_block_scalars_and_anchors_survive(fixed):
    orig, out, _ = fixed
    crlf = (out / "crlf.yaml").read_bytes()
    assert crlf != (orig / "crlf.yaml").read_bytes() and crlf.count(b"\r\n") == crlf.count(b"\n")
    styled = (out / "text-styles.yaml").read_text()
    for line in (orig / "text-styles.yaml").read_text().splitlines():
        assert line in styled, line  # every original line is still there, unchanged
    (anchored,) = docs(out, "anchors.yaml")
    a, b = anchored["spec"]["containers"]
    assert a["ports"] == [{"containerPort": 8080}] and b["ports"] == [{"containerPort": 8080}]
    assert "&ports" in (out / "anchors.yaml").read_text()


@pytest.mark.skipif(not HARM_AUDIT.is_file(), reason="../shared/tools/harm_audit.py is not here")
def test_the_harm_audit_finds_nothing(fixed, tmp_path):
    orig, out, _ = fixed
    report = tmp_path / "audit.json"
    proc = subprocess.run([sys.executable, str(HARM_AUDIT), str(orig), str(out), "--json", str(report)], capture_output=True, text=True)
    audit = json.loads(report.read_text())
    assert audit["summary"]["harm_total"] == 0 and audit["summary"]["crlf_lost"] == 0, proc.stdout
    assert audit["summary"]["files_changed"] >= 8


def test_a_second_write_changes_nothing(fixed, tmp_path):
    _, out, _ = fixed
    again = tmp_path / "again"
    shutil.copytree(out, again)
    subprocess.run([sys.executable, "-m", "k8s_auto_fix", "fix", str(again), "--write", "--unsafe-fixes"], capture_output=True, cwd=REPO)
    for path in out.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(out)).read_bytes() == path.read_bytes(), path


# --- the parts -------------------------------------------------------------------------------


def test_image_references_resolve_to_their_facts():
    facts = shipped_facts()
    assert repository_path("docker.io/library/nginx:1.25@sha256:abc") == "nginx"
    assert repository_path("quay.io/prometheus/prometheus:v2.53.0") == "prometheus/prometheus"
    assert repository_path("localhost:5000/team/app") == "team/app"
    assert facts.lookup("nginx:1.27").needs_root
    assert facts.lookup("registry.example.com/mirror/redis:7").nonroot_uid == 999  # the last component
    assert facts.lookup("docker.io/bitnami/redis:7.2").user == 1001  # the glob wins over the component
    assert facts.lookup("example.com/unknown:1") is None


def test_user_facts_and_trivy_reports_extend_the_shipped_ones(tmp_path):
    mine = tmp_path / "facts.yaml"
    mine.write_text("example.com/acme/api:\n  user: 2000\n  writes: [/var/cache/api]\nnginx:\n  writes: [/var/cache/nginx]\n")
    trivy = tmp_path / "trivy.json"
    trivy.write_text(json.dumps({"ArtifactName": "example.com/acme/worker:1.0", "Metadata": {"ImageConfig": {"config": {"User": "1234:1234"}}}}))
    facts = load_facts([mine], [trivy])
    assert facts.lookup("example.com/acme/api:1.0").user == 2000
    assert facts.lookup("nginx").needs_root and facts.lookup("nginx").writes == ["/var/cache/nginx"]  # merged field by field
    assert facts.lookup("example.com/acme/worker:1.0").user == 1234


def test_profiles_come_from_the_manifests():
    store = ObjectStore()
    def profile(name, index=0):
        obj = store.file(str(CASES / name)).objects[index]
        return profile_of(obj, store.application(str(CASES), obj.path))
    assert Profile.NODE_AGENT in profile("node-exporter.yaml") and Profile.NODE_AGENT in profile("cni-daemonset.yaml")
    assert Profile.API_CONTROLLER in profile("bound-service-account.yaml", 0)
    assert Profile.API_CONTROLLER not in profile("bound-service-account.yaml", 2)
    assert Profile.WINDOWS in profile("windows.yaml")
    assert Profile.BATCH in profile("explicit-choices.yaml", 1)
    found = detect([str(CASES / "windows.yaml")], select_checks(), DetectOptions(jobs=1)).detections
    assert found and all("windows" in d.profile for d in found)


@corpus_required()
def test_the_shared_corpus_fixed_with_review_fixes_has_no_harm(tmp_path):
    if not HARM_AUDIT.is_file():
        pytest.skip("../shared/tools/harm_audit.py is not here")
    shutil.copytree(CORPUS, tmp_path / "orig", ignore=shutil.ignore_patterns("reference"))
    shutil.copytree(CORPUS, tmp_path / "fixed", ignore=shutil.ignore_patterns("reference"))
    subprocess.run([sys.executable, "-m", "k8s_auto_fix", "fix", str(tmp_path / "fixed"), "--write", "--unsafe-fixes"], capture_output=True, cwd=REPO)
    report = tmp_path / "audit.json"
    subprocess.run([sys.executable, str(HARM_AUDIT), str(tmp_path / "orig"), str(tmp_path / "fixed"), "--json", str(report)], capture_output=True)
    audit = json.loads(report.read_text())
    harms = {c: v["examples"][:3] for c, v in audit["classes"].items() if v["count"]}
    assert audit["summary"]["harm_total"] == 0 and not harms, harms
    assert audit["summary"]["files_changed"] > 1000
