"""Kyverno as a detector, a fix source and a verifier: the real kubectl-kyverno
CLI (scripts/tools.sh builds it) on small fixtures, never a mock."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO, tools_required, write

from k8s_auto_fix.checks import REGISTRY
from k8s_auto_fix.checks.policies import POLICY_CHECKS, mapped_checks
from k8s_auto_fix.engines.kyverno import KyvernoError, detect_with_kyverno

POLICIES = REPO / "tests" / "policies" / "kyverno"
SAMPLES = REPO.parent / "shared" / "corpus" / "samples"

kyverno_required = tools_required("kubectl-kyverno")  # skipped without it, except in CI, where it fails

TWO_NGINX = """
apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
    - name: web
      image: nginx:1.25
---
apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 101
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: web
      image: nginxinc/nginx-unprivileged:1.25
      securityContext:
        privileged: true
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: ghcr.io/example/api:1.2.3
          securityContext:
            runAsUser: 1000
"""


def test_every_mapped_check_exists():
    """The mapping table names only registered checks (a typo would silently map to nothing)."""
    missing = {rule: [c for c in checks if c not in REGISTRY] for rule, checks in POLICY_CHECKS.items()}
    assert not {rule: checks for rule, checks in missing.items() if checks}
    assert mapped_checks("kyverno:require-run-as-nonroot/run-as-non-root") == ("run-as-non-root", "non-root-not-enforced")
    assert mapped_checks("kyverno:no-such-policy/rule") == ()


@kyverno_required
def test_findings_per_object_even_with_the_same_name(tmp_path):
    """Two Pods called nginx in one file (the CLI alone stops on that): each keeps its own findings, line and severity."""
    path = write(tmp_path, "pods.yaml", TWO_NGINX)
    result = detect_with_kyverno([str(path)], [str(POLICIES)])
    first = {d.policy_id for d in result.detections if d.document_index == 0}
    second = {d.policy_id for d in result.detections if d.document_index == 1}
    assert "kyverno:require-run-as-nonroot/run-as-non-root" in first  # anyPattern
    assert "kyverno:restrict-seccomp-strict/check-seccomp-strict" in first
    assert "kyverno:podsecurity-restricted/restricted" in first  # podSecurity
    assert second == {"kyverno:disallow-privileged-containers/privileged-containers", "kyverno:podsecurity-restricted/restricted"}
    privileged = next(d for d in result.detections if d.policy_id.endswith("/privileged-containers"))
    assert privileged.severity.value == "high"  # the policy's severity annotation
    assert privileged.line == 10 and privileged.object.name == "nginx" and privileged.manifest_path == str(path)
    assert privileged.engine.value == "kyverno" and "Privileged mode is disallowed" in privileged.violation_text


@kyverno_required
def test_cel_deny_and_autogen_rules(tmp_path):
    """A CEL rule and a deny rule on a Deployment (Kyverno's autogen rules under the name of the Pod rule)."""
    path = write(tmp_path, "deploy.yaml", DEPLOYMENT.replace("runAsUser: 1000", "runAsUser: 1000\n            capabilities: {add: [SYS_ADMIN]}"))
    ids = {d.policy_id for d in detect_with_kyverno([str(path)], [str(POLICIES)]).detections}
    assert "kyverno:require-team-label/check-team-label" in ids  # cel
    assert "kyverno:disallow-capabilities/adding-capabilities" in ids  # deny
    assert "kyverno:podsecurity-restricted/restricted" in ids  # not autogen-restricted
    assert not any("autogen" in i for i in ids)


@kyverno_required
def test_mutate_rules_and_skips_are_notes(tmp_path):
    path = write(tmp_path, "deploy.yaml", DEPLOYMENT)
    notes = [str(p) for p in detect_with_kyverno([str(path)], [str(POLICIES)]).problems if p.level == "note"]
    assert any("kyverno:add-safe-to-evict/annotate-empty-dir is a mutate rule" in n for n in notes)


def test_bad_policy_file_names_file_and_line(tmp_path, cli):
    write(tmp_path / "policies", "broken.yaml", "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: x\nspec: {}\n")
    with pytest.raises(KyvernoError, match=r"broken.yaml:\d+: not a YAML policy file"):
        detect_with_kyverno([str(SAMPLES)], [str(tmp_path / "policies")])
    code, _, stderr = cli("detect", str(SAMPLES), "--engine", "kyverno", "--policies", str(tmp_path / "policies"))
    assert code == 2 and "broken.yaml:" in stderr
    code, _, stderr = cli("detect", str(SAMPLES), "--engine", "kyverno")
    assert code == 2 and "--policies" in stderr


@kyverno_required
def test_fix_with_kyverno_findings_verified_by_kyverno(tmp_path, cli):
    """fix --engine kyverno: the mapped built-in fixes are applied, and Kyverno itself no longer fails the rules."""
    path = write(tmp_path, "deploy.yaml", DEPLOYMENT)
    before = {d.policy_id for d in detect_with_kyverno([str(path)], [str(POLICIES)]).detections}
    assert "kyverno:require-run-as-nonroot/run-as-non-root" in before  # runAsUser 1000 without runAsNonRoot
    code, _, stderr = cli("fix", str(path), "--engine", "kyverno", "--policies", str(POLICIES), "--write", "--unsafe-fixes")
    text = path.read_text()
    assert "runAsNonRoot: true" in text and "RuntimeDefault" in text
    after = {d.policy_id for d in detect_with_kyverno([str(path)], [str(POLICIES)]).detections}
    assert "kyverno:require-run-as-nonroot/run-as-non-root" not in after
    assert "kyverno:restrict-seccomp-strict/check-seccomp-strict" not in after
    assert after <= before  # nothing new
    assert "kyverno:require-team-label/check-team-label" in after  # unmapped: manual, left as it is


@kyverno_required
def test_policy_gate_reruns_kyverno(tmp_path, cli):
    """verify: a patch that does not satisfy the Kyverno rule fails the policy gate (Kyverno's own verdict)."""
    path = write(tmp_path, "deploy.yaml", DEPLOYMENT)
    detections = tmp_path / "detections.json"
    cli("detect", str(path), "--engine", "kyverno", "--policies", str(POLICIES), "--out", str(detections))
    found = json.loads(detections.read_text())
    target = next(d for d in found if d["policy_id"] == "kyverno:restrict-seccomp-strict/check-seccomp-strict")
    container = "/spec/template/spec/containers/0/securityContext"
    patches = [
        {"id": target["id"], "policy_id": target["policy_id"], "patch": [{"op": "add", "path": f"{container}/seccompProfile", "value": {"type": "Unconfined"}}]},
    ]
    write(tmp_path, "patches.json", json.dumps(patches))
    out = tmp_path / "verified.json"
    code, _, stderr = cli("verify", "--patches", str(tmp_path / "patches.json"), "--detections", str(detections), "--policies", str(POLICIES), "--out", str(out), "--include-errors")
    verdict = json.loads(out.read_text())[0]
    assert verdict["accepted"] is False and verdict["gates"]["policy"] is False
    good = [{**patches[0], "patch": [{"op": "add", "path": f"{container}/seccompProfile", "value": {"type": "RuntimeDefault"}}]}]
    write(tmp_path, "patches.json", json.dumps(good))
    code, _, stderr = cli("verify", "--patches", str(tmp_path / "patches.json"), "--detections", str(detections), "--policies", str(POLICIES), "--out", str(out))
    assert json.loads(out.read_text())[0]["gates"]["policy"] is True
    code, _, stderr = cli("verify", "--patches", str(tmp_path / "patches.json"), "--detections", str(detections), "--out", str(out))
    assert code == 2 and "--policies" in stderr


NO_EMPTY_DIR = """
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: disallow-empty-dir
spec:
  validationFailureAction: Audit
  background: true
  rules:
    - name: no-empty-dir
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "emptyDir volumes are not allowed here."
        deny:
          conditions:
            any:
              - key: "{{ request.object.spec.volumes[].emptyDir || `[]` | length(@) }}"
                operator: GreaterThan
                value: 0
"""


@kyverno_required
def test_rescan_refuses_a_fix_that_makes_another_rule_fail(tmp_path, cli):
    """require-ro-rootfs is fixed with readOnlyRootFilesystem plus an emptyDir at /tmp; where
    another policy forbids emptyDir, the rescan gate (Kyverno, every configured policy) refuses it."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(REPO.parent / "shared" / "vendor" / "kyverno-policies" / "best-practices" / "require-ro-rootfs.yaml", policies / "ro.yaml")
    path = write(tmp_path / "in", "deploy.yaml", DEPLOYMENT)
    code, _, _ = cli("fix", str(path), "--engine", "kyverno", "--policies", str(policies), "--write", "--unsafe-fixes")
    assert "readOnlyRootFilesystem: true" in path.read_text()  # alone, the fix is accepted
    write(policies, "no-empty-dir.yaml", NO_EMPTY_DIR)
    path = write(tmp_path / "in2", "deploy.yaml", DEPLOYMENT)
    code, _, stderr = cli("fix", str(path), "--engine", "kyverno", "--policies", str(policies), "--write", "--unsafe-fixes")
    assert "readOnlyRootFilesystem" not in path.read_text()
    assert code == 1


@kyverno_required
def test_bench_policy_on_the_samples(tmp_path, cli):
    out = tmp_path / "report.json"
    code, stdout, stderr = cli("bench", "policy", str(SAMPLES), "--policies", str(POLICIES), "--sample", "1", "--out", str(out))
    assert code == 0, stderr
    report = json.loads(out.read_text())
    restricted = report["sets"]["kyverno"]
    assert restricted["failures_before"] > restricted["failures_after"] and restricted["new_failures"] == 0
    rows = {r["rule"]: r for r in report["rules"]}
    assert rows["kyverno:restrict-seccomp-strict/check-seccomp-strict"]["after"] == 0
    assert report["timing"]["cli_runs"] >= 1 and report["timing"]["unbatched_sample"] == 1
    assert list(SAMPLES.iterdir()) and all("RuntimeDefault" not in p.read_text() for p in SAMPLES.glob("*.yaml"))  # the input is untouched
