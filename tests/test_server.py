"""The throwaway API server (`cluster up|down|status`) and `verify --schema server` against it."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

from conftest import server_required, write

from k8s_auto_fix.cluster import KubeClient, status
from k8s_auto_fix.contracts import SchemaMode
from k8s_auto_fix.verify.external import schema_errors
from k8s_auto_fix.verify.judging import VerifyOptions

pytestmark = server_required

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example.com/web:1.0
"""

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
        }],
    },
}  # fmt: skip


def test_up_writes_a_kubeconfig_and_down_stops_exactly_its_processes(cli, tmp_path):
    folder = tmp_path / "c"
    code, stdout, stderr = cli("cluster", "up", "--dir", str(folder))
    assert code == 0, stderr
    assert stdout.strip() == f"KUBECONFIG={folder.resolve() / 'kubeconfig'}"
    pids = {name: int((folder / f"{name}.pid").read_text()) for name in ("etcd", "kube-apiserver")}
    assert cli("cluster", "status", "--dir", str(folder))[0] == 0
    client = KubeClient.from_kubeconfig(folder / "kubeconfig")
    assert ("apps/v1", "Deployment") in client.resources()
    client.close()
    code, stdout, _ = cli("cluster", "down", "--dir", str(folder))
    assert code == 0 and "kube-apiserver" in stdout and "etcd" in stdout
    for pid in pids.values():
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"
    assert cli("cluster", "status", "--dir", str(folder))[0] == 2 and not status(folder).ready


def test_namespaces_are_made_on_demand_with_pod_security_labels(api_server):
    client = KubeClient.from_kubeconfig(api_server.kubeconfig)
    client.ensure_namespace("restricted-ns", {"pod-security.kubernetes.io/enforce": "restricted"})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "example.com/c:1"}]}}
    assert client.dry_run(pod, "some-team").error is None  # made on demand, with its default ServiceAccount
    refused = client.dry_run(pod, "restricted-ns").error
    assert 'violates PodSecurity "restricted:latest"' in refused and "runAsNonRoot" in refused
    client.close()


def test_an_object_whose_namespace_or_service_account_cannot_exist_gets_its_own_error(api_server):
    """Unrendered template names are common in real trees: each such object is
    refused with the server's reason, and the rest of the batch is judged."""
    client = KubeClient.from_kubeconfig(api_server.kubeconfig)
    container = {"name": "c", "image": "example.com/c:1"}
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sa"}, "spec": {"serviceAccountName": "app-{{ .Values.env }}", "containers": [container]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ns", "namespace": "{{ .Release.Namespace }}"}, "spec": {"containers": [container]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fine", "namespace": "team-a"}, "spec": {"containers": [container]}},
    ]
    bad_account, bad_namespace, fine = client.dry_run_all(pods)
    client.close()
    assert 'ServiceAccount "app-{{ .Values.env }}" is invalid' in bad_account.error
    assert "namespace {{ .Release.Namespace }}" in bad_namespace.error and "RFC 1123" in bad_namespace.error
    assert fine.error is None


def _verify(cli, tmp_path, kubeconfig, patch_ops):
    manifest = write(tmp_path, "deploy.yaml", DEPLOYMENT)
    detections, patches, verified = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "v.json"
    cli("detect", str(manifest), "--include", "no-read-only-root-fs", "--out", str(detections))
    (detection,) = [d for d in json.loads(detections.read_text()) if d["policy_id"] == "no-read-only-root-fs"]
    patches.write_text(json.dumps([{"id": detection["id"], "policy_id": detection["policy_id"], "patch": patch_ops, "applicability": "safe"}]))
    code, _, stderr = cli(
        "verify", "--patches", str(patches), "--detections", str(detections), "--out", str(verified),
        "--schema", "server", "--kubeconfig", str(kubeconfig), "--include-errors",
    )  # fmt: skip
    (verdict,) = json.loads(verified.read_text())
    return verdict


def test_verify_schema_server_accepts_a_valid_patch_and_refuses_an_invalid_one_with_the_servers_message(cli, tmp_path, api_server):
    path = "/spec/template/spec/containers/0/securityContext"
    valid = _verify(cli, tmp_path, api_server.kubeconfig, [{"op": "add", "path": path, "value": {"readOnlyRootFilesystem": True}}])
    assert valid["ok_schema"] is True and valid["accepted"] is True
    invalid = _verify(
        cli, tmp_path, api_server.kubeconfig,
        [{"op": "add", "path": path, "value": {"readOnlyRootFilesystem": True, "readOnlyRootFileSystem": True}}],
    )  # fmt: skip
    assert invalid["ok_schema"] is False and invalid["accepted"] is False
    assert any('strict decoding error: unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"' in e for e in invalid["errors"])


def test_a_custom_resource_passes_once_its_crd_is_applied(api_server):
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}, "spec": {"size": 1}}
    bigger = {**widget, "spec": {"size": 2}}
    wrong = {**widget, "spec": {"size": "big"}}
    changes = [SimpleNamespace(before=SimpleNamespace(data=widget), after=SimpleNamespace(data=after), created=[]) for after in (bigger, wrong)]
    options = VerifyOptions(schema=SchemaMode.SERVER, kubeconfig=str(api_server.kubeconfig))
    # Without its CRD the server serves no Widget: before and after fail alike, so nothing new is found.
    assert schema_errors(changes[1:], options, []) == [[]]
    ok, refused = schema_errors(changes, options, [CRD])
    assert ok == [] and len(refused) == 1 and 'spec.size: Invalid value: "string": spec.size in body must be of type integer' in refused[0]
