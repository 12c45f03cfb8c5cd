"""ValidatingAdmissionPolicy as a detector and a verifier: the real kube-apiserver
(the session's throwaway `cluster up`) evaluates the policies of
examples/policies/vap/ during server-side dry runs."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, server_required, write

from k8s_auto_fix.engines.kyverno import detect_with_kyverno, find_kyverno
from k8s_auto_fix.engines.vap import VapError, detect_with_vap, load_vap_policies

EXAMPLES = REPO / "examples" / "policies" / "vap"
RESTRICTED = REPO.parent / "shared" / "vendor" / "kyverno-policies" / "pss-restricted"
SAMPLES = REPO.parent / "shared" / "corpus" / "samples"

# Each example VAP and the Kyverno pss-restricted rule it equals.
SAME_AS_KYVERNO = {
    "vap:pss-privileged-containers/1": "kyverno:disallow-privileged-containers/privileged-containers",
    "vap:pss-privilege-escalation/1": "kyverno:disallow-privilege-escalation/privilege-escalation",
    "vap:pss-drop-all-capabilities/1": "kyverno:disallow-capabilities-strict/require-drop-all",
    "vap:pss-add-capabilities/1": "kyverno:disallow-capabilities-strict/adding-capabilities-strict",
    "vap:pss-run-as-non-root/1": "kyverno:require-run-as-nonroot/run-as-non-root",
    "vap:pss-run-as-user/1": "kyverno:require-run-as-non-root-user/run-as-non-root-user",
    "vap:pss-seccomp/1": "kyverno:restrict-seccomp-strict/check-seccomp-strict",
    "vap:pss-host-namespaces/1": "kyverno:disallow-host-namespaces/host-namespaces",
    "vap:pss-host-ports/1": "kyverno:disallow-host-ports/host-ports-none",
    "vap:pss-volume-types/1": "kyverno:restrict-volume-types/restricted-volumes",
}

WORKLOADS = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      hostNetwork: true
      securityContext:
        runAsUser: 0
      containers:
        - name: api
          image: ghcr.io/example/api:1.2.3
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          securityContext:
            runAsNonRoot: true
            runAsUser: 1000
            seccompProfile: {type: RuntimeDefault}
          containers:
            - name: report
              image: ghcr.io/example/report:2.0.0
              securityContext:
                allowPrivilegeEscalation: false
                capabilities: {drop: [ALL]}
"""


@pytest.fixture
def kubeconfig(api_server):
    return str(api_server.kubeconfig)


@server_required
def test_vap_findings_equal_kyverno_restricted(tmp_path, kubeconfig):
    """Every example VAP flags exactly the objects Kyverno's pss-restricted rule it stands for flags."""
    path = write(tmp_path, "workloads.yaml", WORKLOADS)
    inputs = [str(path), str(SAMPLES)]
    vap = detect_with_vap(inputs, [str(EXAMPLES)], kubeconfig)
    found = {(d.manifest_path, d.document_index, SAME_AS_KYVERNO[d.policy_id]) for d in vap.detections}
    assert (str(path), 0, "kyverno:disallow-host-namespaces/host-namespaces") in found
    assert not any(doc == 1 and p == str(path) for p, doc, _ in found)  # the hardened CronJob passes
    if find_kyverno() is not None:
        kyverno = detect_with_kyverno(inputs, [str(RESTRICTED)]).detections
        assert found == {(d.manifest_path, d.document_index, d.policy_id) for d in kyverno if d.policy_id in SAME_AS_KYVERNO.values()}
    first = next(d for d in vap.detections if d.policy_id == "vap:pss-privileged-containers/1")
    assert first.severity.value == "high" and first.engine.value == "vap" and first.object.name == "privileged-pod"
    assert "Privileged mode is disallowed" in first.violation_text


@server_required
def test_warn_binding_and_severity(tmp_path, kubeconfig):
    """A binding's own actions set the severity (Warn: medium) when the policy names none."""
    policies = tmp_path / "policies"
    text = (EXAMPLES / "pss-host-ports.yaml").read_text().replace("k8s-auto-fix.io/severity: medium", "other: x").replace("[Deny]", "[Warn]")
    write(policies, "ports.yaml", text.replace("pss-host-ports", "warn-host-ports"))
    found = detect_with_vap([str(SAMPLES / "003.yaml")], [str(policies)], kubeconfig).detections
    assert [(d.policy_id, d.severity.value) for d in found] == [("vap:warn-host-ports/1", "medium")]


@server_required
def test_fix_with_vap_findings_verified_by_the_server(tmp_path, cli, kubeconfig):
    path = write(tmp_path, "workloads.yaml", WORKLOADS.replace("      hostNetwork: true\n", "").replace("        runAsUser: 0\n", "        fsGroup: 2000\n"))
    before = {d.policy_id for d in detect_with_vap([str(path)], [str(EXAMPLES)], kubeconfig).detections}
    assert {"vap:pss-seccomp/1", "vap:pss-drop-all-capabilities/1", "vap:pss-privilege-escalation/1"} <= before
    code, _, stderr = cli("fix", str(path), "--engine", "vap", "--policies", str(EXAMPLES), "--kubeconfig", kubeconfig, "--write", "--unsafe-fixes")
    after = {d.policy_id for d in detect_with_vap([str(path)], [str(EXAMPLES)], kubeconfig).detections}
    assert not after & {"vap:pss-seccomp/1", "vap:pss-drop-all-capabilities/1", "vap:pss-privilege-escalation/1"}
    assert after <= before
    detections = tmp_path / "detections.json"
    write(tmp_path, "bad.yaml", WORKLOADS)
    cli("detect", str(tmp_path / "bad.yaml"), "--engine", "vap", "--policies", str(EXAMPLES), "--kubeconfig", kubeconfig, "--out", str(detections))
    target = next(d for d in json.loads(detections.read_text()) if d["policy_id"] == "vap:pss-seccomp/1")
    sc = "/spec/template/spec/securityContext"
    patches = [{"id": target["id"], "policy_id": target["policy_id"], "patch": [{"op": "add", "path": f"{sc}/seccompProfile", "value": {"type": "Unconfined"}}]}]
    write(tmp_path, "patches.json", json.dumps(patches))
    out = tmp_path / "verified.json"
    args = ("--detections", str(detections), "--policies", str(EXAMPLES), "--kubeconfig", kubeconfig, "--out", str(out))
    cli("verify", "--patches", str(tmp_path / "patches.json"), *args)
    assert json.loads(out.read_text())[0]["gates"]["policy"] is False
    patches[0]["patch"][0]["value"] = {"type": "RuntimeDefault"}
    write(tmp_path, "patches.json", json.dumps(patches))
    cli("verify", "--patches", str(tmp_path / "patches.json"), *args)
    assert json.loads(out.read_text())[0]["gates"]["policy"] is True


def test_bad_vap_folder(tmp_path):
    write(tmp_path, "x.yaml", "kind: ValidatingAdmissionPolicy\nmetadata: {name: [\n")
    with pytest.raises(VapError, match=r"x.yaml:\d+: not a YAML policy file"):
        load_vap_policies([str(tmp_path)])
    with pytest.raises(VapError, match="--policies"):
        load_vap_policies([])
