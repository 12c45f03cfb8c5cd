"""Real tools as judges of our fixes: the kube-linter rescan gate of `verify`,
and `bench fix --rescan kube-linter --checkov --psa restricted` on a small tree."""

from __future__ import annotations

import json

from conftest import tools_required, write

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.4.2
        ports: [{containerPort: 8080}]
"""

WORKER = """\
apiVersion: batch/v1
kind: Job
metadata: {name: worker, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: registry.example.com/worker:2.0.1
        command: [/bin/worker, --once]
"""


def _proposed(cli, tmp_path, check: str):
    """detections.json of WEB and patches.json holding only the fix for ``check``."""
    write(tmp_path / "in", "web.yaml", WEB)
    detections, patches = tmp_path / "detections.json", tmp_path / "patches.json"
    cli("detect", str(tmp_path / "in"), "--out", str(detections))
    cli("propose", "--detections", str(detections), "--out", str(patches))
    patches.write_text(json.dumps([r for r in json.loads(patches.read_text()) if r["policy_id"] == check]))
    return detections, patches


@tools_required("kube-linter")
def test_the_rescan_gate_accepts_a_real_fix_and_refuses_a_patch_kube_linter_still_flags(cli, tmp_path):
    detections, patches = _proposed(cli, tmp_path, "run-as-non-root")
    (record,) = json.loads(patches.read_text())
    verified = tmp_path / "verified.json"
    code, _, stderr = cli("verify", "--patches", str(patches), "--detections", str(detections), "--rescan", "kube-linter", "--include-errors", "--out", str(verified))
    (verdict,) = json.loads(verified.read_text())
    assert code == 0, stderr
    assert verdict["gates"]["rescan"] is True and verdict["accepted"] is True

    # A patch that changes the object without fixing it: kube-linter still reports the finding.
    record["patch"] = [{"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"readOnlyRootFilesystem": True}}]
    patches.write_text(json.dumps([record]))
    cli("verify", "--patches", str(patches), "--detections", str(detections), "--rescan", "kube-linter", "--include-errors", "--out", str(verified))
    (verdict,) = json.loads(verified.read_text())
    assert verdict["gates"]["rescan"] is False and verdict["accepted"] is False
    assert any(r["gate"] == "rescan" and "kube-linter still reports it" in r["message"] for r in verdict["reasons"])


@tools_required("kube-linter", "checkov", "etcd", "kube-apiserver")
def test_bench_fix_is_judged_by_kube_linter_checkov_and_pod_security_in_one_run(cli, tmp_path):
    write(tmp_path / "in", "web.yaml", WEB)
    write(tmp_path / "in", "jobs/worker.yaml", WORKER)
    out = tmp_path / "bench.json"
    code, stdout, stderr = cli(
        "bench", "fix", str(tmp_path / "in"), "--unsafe-fixes", "--rescan", "kube-linter", "--checkov", "--psa", "restricted", "--out", str(out)
    )
    assert code == 0, stderr
    oracles = json.loads(out.read_text())["oracles"]

    rescan = oracles["kube_linter"]
    assert rescan["fixed"] > 5 and rescan["refound"] == 0 and rescan["new"] == 0
    assert rescan["after"] < rescan["before"]

    checkov = oracles["checkov"]
    assert checkov["crashed_files"] == []
    assert checkov["failed_after"] < checkov["failed_before"] and checkov["newly_failing_on_existing"] == 0

    psa = oracles["pod_security"]
    assert psa["before"]["workloads"] == psa["after"]["workloads"] == 2
    assert psa["before"]["admitted"] == 0 and psa["after"]["admitted"] == 2
    assert "kube-linter rescan of the fixed copy: 0 of" in stdout


def test_pod_security_refusals_are_counted_by_rule_and_other_refusals_apart():
    from k8s_auto_fix.bench.oracles import NOT_JUDGED, _reasons

    refused = [
        ("a", 'pods "p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set ...), seccompProfile (pod or container "c" must set ...)'),
        ("b", 'pods "q" is forbidden: violates PodSecurity "restricted:latest": seccompProfile (pod must set ...)'),
        ("c", 'Pod "psa-4" is invalid: spec.containers[0].volumeMounts[1].name: Not found: "data"'),
        ("d", 'pods "psa-95" is forbidden: no PriorityClass with name longhorn-critical was found'),
    ]
    assert _reasons(refused) == {"seccompProfile": 2, NOT_JUDGED: 2, "allowPrivilegeEscalation != false": 1}
