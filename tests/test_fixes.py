"""The rule fixes: each one on a minimal object and where workload shapes differ."""

from __future__ import annotations

import json

import pytest
from conftest import write
from test_checks import CASES, pod

from k8s_auto_fix.checks import REGISTRY
from k8s_auto_fix.checks.fixes import FixOptions, op_role_paths
from k8s_auto_fix.checks.patching import set_value
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import RunConfig
from k8s_auto_fix.contracts import Applicability
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.manifests.store import ObjectStore
from k8s_auto_fix.propose.rules import propose_rules
from k8s_auto_fix.verify.verifier import Verifier, VerifyOptions

# Manual in these cases: no pin given, a port name to resolve, and values the
# author wrote (runAsUser: 0, allowPrivilegeEscalation: true, a memory limit of 0).
MANUAL_CASES = {
    "latest-tag": "", "readiness-port": "",
    "run-as-non-root": "runAsUser set to 0", "privilege-escalation-container": "AllowPrivilegeEscalation set to true",
    "unset-memory-requirements": "memory limit 0",
}


def is_manual(case) -> bool:
    check_id, _, message, _ = case
    declared_manual = REGISTRY[check_id].fix.applicability is Applicability.MANUAL
    return declared_manual or (check_id in MANUAL_CASES and MANUAL_CASES[check_id] in message)


FIXABLE = [c for c in CASES if REGISTRY[c[0]].fix is not None and not is_manual(c)]


def pipeline(tmp_path, text: str, name: str = "app.yaml", pins: dict | None = None):
    write(tmp_path, name, text)
    found = detect([str(tmp_path)], select_checks(all_checks=True), DetectOptions(jobs=1)).detections
    proposed = propose_rules(found, FixOptions(RunConfig().fixes, pins or {})).patches
    # The default suite guards against regressions (sorted-keys would flag every added key).
    verdicts = Verifier(select_checks(), VerifyOptions()).verify(proposed, found).verdicts
    return found, proposed, {v.id: v for v in verdicts}


@pytest.mark.parametrize(("check_id", "bad", "message", "good"), FIXABLE, ids=[f"{c[0]}-{i}" for i, c in enumerate(FIXABLE)])
def test_fix_is_proposed_and_passes_every_gate(tmp_path, check_id, bad, message, good):
    found, proposed, verdicts = pipeline(tmp_path, bad)
    target = next(d for d in found if d.policy_id == check_id and d.violation_text == message)
    patch = next(p for p in proposed if p.id == target.id)
    assert patch.patch or patch.creates, patch.explanation
    verdict = verdicts[target.id]
    assert verdict.accepted, verdict.errors
    assert patch.applicability is not Applicability.MANUAL
    # The fix stays inside what its check declares as its remedy.
    obj = ObjectStore().object_of(target)
    written = [p for op in patch.patch for p in op_role_paths(obj, target.container, op)]
    assert all(REGISTRY[check_id].fix.allows(p) for p in written), written


@pytest.mark.parametrize("case", [c for c in CASES if REGISTRY[c[0]].fix is not None and is_manual(c)], ids=lambda c: c[0])
def test_manual_fixes_explain_and_change_nothing(tmp_path, case):
    check_id, bad, message, _ = case
    found, proposed, _ = pipeline(tmp_path, bad)
    target = next(d for d in found if d.policy_id == check_id and d.violation_text == message)
    fix = next(p for p in proposed if p.id == target.id)
    assert fix.applicability is Applicability.MANUAL and fix.patch == [] and fix.explanation


def test_init_container_and_container_level_override(tmp_path):
    text = pod(
        "securityContext: {runAsNonRoot: false}",
        """
        securityContext: {runAsNonRoot: true}
        initContainers:
        - {name: init, image: busybox:1.36}
        """,
    )
    found, proposed, verdicts = pipeline(tmp_path, text)
    fix = next(p for d in found for p in proposed if p.id == d.id and d.policy_id == "run-as-non-root" and d.container == "app")
    # The container's own runAsNonRoot: false overrides the pod's, and it is the author's choice.
    assert fix.applicability is Applicability.MANUAL and "explicit runAsNonRoot: false" in fix.explanation
    init_fix = next(p for d in found for p in proposed if p.id == d.id and d.policy_id == "no-read-only-root-fs" and d.container == "init")
    assert init_fix.patch[0]["path"].startswith("/spec/initContainers/0/")
    assert all(v.accepted for v in verdicts.values()), [v.errors for v in verdicts.values() if not v.accepted]


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ("{limits: {cpu: 500m, memory: 256Mi}}", [{"op": "add", "path": "/spec/containers/0/resources/requests", "value": {"cpu": "500m", "memory": "256Mi"}}]),
        ("{limits: {memory: 1Gi}, requests: {ephemeral-storage: 1Gi}}", [
            {"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "100m"},
            {"op": "add", "path": "/spec/containers/0/resources/requests/memory", "value": "1Gi"},
        ]),
        ("{limits: {memory: 1Gi}, requests: {memory: 512Mi}}", [{"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "100m"}]),
    ],
)  # fmt: skip
def test_a_cpu_request_brings_the_memory_request_kubernetes_already_takes_from_the_limit(tmp_path, resources, expected):
    """Kubernetes requests what a container limits when no request is written; a
    new requests map that leaves memory out reads as a missing memory request to
    other scanners (Checkov CKV_K8S_12), so the implied request is written."""
    found, proposed, verdicts = pipeline(tmp_path, pod(f"resources: {resources}"))
    fix = next(p for d in found for p in proposed if p.id == d.id and d.policy_id == "unset-cpu-requirements")
    assert fix.patch == expected and verdicts[fix.id].accepted, verdicts[fix.id].errors


def test_cronjob_patch_goes_through_the_job_template_and_pins_come_from_the_user(tmp_path):
    text = """
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: nightly}
    spec:
      schedule: "0 3 * * *"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: OnFailure
              containers: [{name: job, image: "busybox:latest"}]
    """
    _, proposed, _ = pipeline(tmp_path, text)
    latest = next(p for p in proposed if p.policy_id == "latest-tag")
    assert latest.applicability is Applicability.MANUAL and latest.patch == []  # never a guessed tag
    _, proposed, verdicts = pipeline(tmp_path, text, pins={"busybox:latest": "busybox:1.36.1"})
    latest = next(p for p in proposed if p.policy_id == "latest-tag")
    assert latest.patch == [{"op": "replace", "path": "/spec/jobTemplate/spec/template/spec/containers/0/image", "value": "busybox:1.36.1"}]
    assert verdicts[latest.id].accepted


def test_missing_service_account_is_created_not_guessed(tmp_path):
    _, proposed, verdicts = pipeline(tmp_path, pod(pod_spec="serviceAccountName: robot"))
    fix = next(p for p in proposed if p.policy_id == "non-existent-service-account")
    assert fix.creates == {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}, "automountServiceAccountToken": False}
    assert verdicts[fix.id].accepted
    _, proposed, _ = pipeline(tmp_path, pod(pod_spec="serviceAccountName: Not_Valid"))
    assert next(p for p in proposed if p.policy_id == "non-existent-service-account").applicability is Applicability.MANUAL


def test_patching_creates_parents_and_escapes_pointer_tokens():
    data = {"metadata": {"annotations": {"a/b~c": "x"}}}
    assert set_value(data, ("metadata", "annotations", "a/b~c"), "y") == [
        {"op": "replace", "path": "/metadata/annotations/a~1b~0c", "value": "y"}
    ]
    assert set_value(data, ("spec", "template", "spec"), {}) == [{"op": "add", "path": "/spec", "value": {"template": {"spec": {}}}}]


def test_verify_rejects_a_patch_that_breaks_the_schema_or_safety(tmp_path, cli):
    path = write(tmp_path, "pod.yaml", pod())
    detections = tmp_path / "d.json"
    cli("detect", str(path), "--out", str(detections))
    found = json.loads(detections.read_text())
    target = next(d for d in found if d["policy_id"] == "no-read-only-root-fs")
    bad = [
        {"id": target["id"], "policy_id": "no-read-only-root-fs", "patch": [
            {"op": "add", "path": "/spec/containers/0/securityContext", "value": {"readOnlyRootFilesystem": True, "readOnly": True}}]},
        {"id": target["id"], "policy_id": "no-read-only-root-fs", "patch": [
            {"op": "add", "path": "/spec/containers/0/securityContext", "value": {"readOnlyRootFilesystem": True}},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:9"}]},
        {"id": target["id"], "policy_id": "no-read-only-root-fs", "patch": [{"op": "remove", "path": "/spec/nowhere"}]},
        {"id": target["id"], "policy_id": "no-read-only-root-fs", "patch": [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]},
    ]
    patches = tmp_path / "p.json"
    patches.write_text(json.dumps(bad))
    out = tmp_path / "v.json"
    code, _, _ = cli("verify", "--patches", str(patches), "--detections", str(detections), "--out", str(out), "--include-errors")
    verdicts = json.loads(out.read_text())
    assert code == 1 and not any(v["accepted"] for v in verdicts)
    schema, image, missing, labels = verdicts
    assert not schema["ok_schema"] and "readOnly" in " ".join(schema["errors"])
    assert not image["ok_safety"] and "image changed" in " ".join(image["errors"])
    assert not missing["ok_apply"]
    assert not labels["ok_policy"] and not labels["ok_safety"]


def test_a_patch_for_a_changed_file_is_not_applied(tmp_path, cli):
    path = write(tmp_path, "pod.yaml", pod())
    d, p, v = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "v.json"
    cli("detect", str(path), "--out", str(d))
    cli("propose", "--detections", str(d), "--out", str(p))
    path.write_text(path.read_text().replace("example.com/acme/app:1.25", "example.com/acme/app:1.26"))
    code, _, _ = cli("verify", "--patches", str(p), "--detections", str(d), "--out", str(v), "--include-errors")
    verdicts = json.loads(v.read_text())
    assert code == 1 and verdicts and not any(x["accepted"] for x in verdicts)
    assert "changed since the patch was proposed" in verdicts[0]["errors"][0]


@pytest.mark.parametrize("content", ["not json", "{}", '[{"id": 1}]'])
def test_malformed_patches_file_is_one_clear_error(tmp_path, cli, content):
    d = write(tmp_path, "d.json", "[]")
    p = write(tmp_path, "p.json", content)
    code, _, stderr = cli("verify", "--patches", str(p), "--detections", str(d), "--out", str(tmp_path / "v.json"))
    assert code == 2 and str(p) in stderr and "Traceback" not in stderr
    assert not (tmp_path / "v.json").exists()


def test_parallel_verify_matches_one_process(tmp_path):
    from conftest import CORPUS

    from k8s_auto_fix.verify.verifier import verify_parallel

    folder = CORPUS / "artifacthub"
    if not folder.is_dir():
        pytest.skip("corpus not found")
    checks = select_checks()
    found = detect([str(folder)], checks, DetectOptions(jobs=1)).detections
    proposed = propose_rules(found, FixOptions(RunConfig().fixes)).patches
    assert len(proposed) >= 200
    one = Verifier(checks, VerifyOptions()).verify(proposed, found)
    many = verify_parallel(checks, VerifyOptions(), proposed, found, jobs=2)
    assert [v.model_dump() for v in many.verdicts] == [v.model_dump() for v in one.verdicts]
    assert many.manual == one.manual
