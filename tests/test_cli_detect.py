"""The detect command end to end: formats, exit codes, contexts, selection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, write

from k8s_auto_fix.contracts import Detection

EXAMPLES = REPO / "examples"
SARIF_SCHEMA = REPO / ".tools" / "sarif" / "sarif-2.1.0.json"
CLEAN_POD = """
apiVersion: v1
kind: Pod
metadata: {name: clean}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: nginx:1.25
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
    resources: {requests: {cpu: 100m}, limits: {memory: 64Mi}}
"""


def test_examples_findings_follow_the_contract(detect_json):
    code, detections, _ = detect_json(str(EXAMPLES))
    assert code == 1
    models = [Detection.model_validate(d) for d in detections]
    by_check = {d.policy_id for d in models}
    assert {"latest-tag", "privileged-container", "host-path-volume", "host-port", "sys-admin-capability"} <= by_check
    latest = next(d for d in models if d.policy_id == "latest-tag")
    assert latest.manifest_path.endswith("001.yaml") and latest.object_line == 1 and latest.container == "nginx"
    assert latest.line == 9 and latest.column == 7 and latest.json_pointer == "/spec/containers/0/image"  # the image: line
    assert latest.object.kind == "Pod" and latest.object.name == "nginx-latest" and latest.engine == "builtin"


def test_ids_are_stable_across_runs(detect_json):
    first = [d["id"] for d in detect_json(str(EXAMPLES))[1]]
    second = [d["id"] for d in detect_json(str(EXAMPLES))[1]]
    assert first == second and len(set(first)) == len(first)


def test_clean_input_exits_zero(tmp_path, detect_json):
    write(tmp_path, "clean.yaml", CLEAN_POD)
    code, detections, _ = detect_json(str(tmp_path))
    assert (code, detections) == (0, [])


def test_bad_input_exits_two_but_other_files_are_linted(tmp_path, detect_json):
    write(tmp_path, "broken.yaml", "kind: [\n")
    write(tmp_path, "pod.yaml", (EXAMPLES / "001.yaml").read_text())
    code, detections, stderr = detect_json(str(tmp_path))
    assert code == 2
    assert any(d["policy_id"] == "latest-tag" for d in detections)
    assert re.search(r"broken\.yaml:\d+: invalid YAML", stderr)


def test_usage_error_exits_two(cli):
    code, _, stderr = cli("detect", str(EXAMPLES), "--include", "no-such-check")
    assert code == 2 and "unknown check 'no-such-check'" in stderr


def test_stdin(cli):
    code, stdout, _ = cli("detect", "-", "--format", "json", input=(EXAMPLES / "002.yaml").read_text())
    assert code == 1
    assert "privileged-container" in {d["policy_id"] for d in json.loads(stdout)}


def test_table_format(cli):
    code, stdout, _ = cli("detect", str(EXAMPLES / "001.yaml"), "--format", "table")
    assert code == 1 and "latest-tag" in stdout and "finding(s) in 1 object(s)" in stdout.replace("\n", " ")


def test_sarif_is_valid_against_the_schema(cli, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    if not SARIF_SCHEMA.is_file():
        pytest.skip("SARIF schema not installed (scripts/setup.sh fetches it)")
    out = tmp_path / "out.sarif"
    write(tmp_path, "in/broken.yaml", "a: [\n")
    cli("detect", str(EXAMPLES), str(tmp_path / "in"), "--format", "sarif", "--out", str(out))
    sarif = json.loads(out.read_text())
    jsonschema.Draft202012Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    run = sarif["runs"][0]
    result = run["results"][0]
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    assert run["invocations"][0]["executionSuccessful"] is False


def test_include_exclude_and_kube_linter_config(tmp_path, detect_json):
    only = detect_json(str(EXAMPLES), "--exclude", "latest-tag")[1]
    assert "latest-tag" not in {d["policy_id"] for d in only}
    config = write(
        tmp_path,
        "kube-linter.yaml",
        """
        checks:
          doNotAutoAddDefaults: true
          include: [privileged-container]
        customChecks:
          - name: no-ubuntu
            template: latest-tag
            params: {BlockList: ["^ubuntu:"]}
            remediation: use a distroless image
        """,
    )
    found = {d["policy_id"] for d in detect_json(str(EXAMPLES), "--config", str(config))[1]}
    assert found == {"privileged-container", "no-ubuntu"}


def test_context_file_versus_dir(tmp_path, detect_json):
    write(tmp_path, "svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {app: w}, ports: [{port: 80}]}\n")
    write(tmp_path, "pod.yaml", CLEAN_POD.replace("metadata: {name: clean}", "metadata: {name: clean, labels: {app: w}}"))
    write(tmp_path, "sub/other.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: t}\nspec: {selector: {app: w}, ports: [{port: 80}]}\n")
    dangling = lambda args: sorted(d["object"]["name"] for d in detect_json(str(tmp_path), *args)[1] if d["policy_id"] == "dangling-service")
    assert dangling([]) == ["t"]  # the subfolder is an application of its own
    assert dangling(["--context", "file"]) == ["s", "t"]


def test_kube_linter_engine_missing_binary_is_one_clear_line(tmp_path):
    env = {**os.environ, "KUBE_LINTER": str(tmp_path / "nowhere" / "kube-linter")}
    proc = subprocess.run(
        [sys.executable, "-m", "k8s_auto_fix", "detect", str(EXAMPLES), "--engine", "kube-linter"],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 2
    assert "kube-linter not found" in proc.stderr and "go install golang.stackrox.io/kube-linter" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_script_runs(tmp_path):
    script = Path(sys.executable).with_name("k8s-auto-fix")
    proc = subprocess.run([str(script), "checks", "--format", "json"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert len(json.loads(proc.stdout)) >= 57
