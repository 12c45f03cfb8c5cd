"""The fix command on real files: reviewable diffs, idempotence, outputs."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess

import pytest
import yaml
from conftest import CORPUS, REPO, corpus_required, write

from k8s_auto_fix.verify.external import TOOLS_BIN

KAFKA = CORPUS / "artifacthub" / "bitnami" / "kafka"
DEPLOYMENT = """\
# Source: web/templates/deployment.yaml
# Rendered by helm; edited by people.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the public site
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: "ghcr.io/acme/web:1.25.3"   # pinned on purpose
          args: ['--port', "8080"]
          ports:
            - containerPort: 8080
---
# Source: web/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
"""


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
        if line.startswith("-") and not line.startswith("---"):
            removed.append(line[1:])
        elif line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
    return removed, added


def test_write_keeps_comments_quotes_and_separators_and_touches_only_patched_lines(tmp_path, cli):
    path = write(tmp_path, "app.yaml", DEPLOYMENT)
    code, _, _ = cli("fix", str(tmp_path), "--write")
    assert code == 1  # review fixes (not applied) leave findings
    fixed = path.read_text()
    removed, added = changed_lines(DEPLOYMENT, fixed)
    assert removed == []  # safe fixes here only add
    for line in DEPLOYMENT.splitlines():
        assert line in fixed.splitlines()  # every comment, quote and separator survives
    added_keys = {line.strip().split(":")[0].lstrip("- ") for line in added}
    assert added_keys <= {"securityContext", "allowPrivilegeEscalation", "seccompProfile", "type", "capabilities", "drop", "ALL", "affinity",
                          "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", "weight", "podAffinityTerm",
                          "labelSelector", "matchLabels", "app", "topologyKey"}, added
    assert yaml.safe_load_all(fixed)  # still valid YAML
    # Running it again changes nothing.
    code, stdout, _ = cli("fix", str(tmp_path), "--write")
    assert path.read_text() == fixed
    # With review fixes too, only checks without a fix remain.
    code, _, _ = cli("fix", str(tmp_path), "--write", "--unsafe-fixes")
    assert code == 0, "everything in this file has a fix"


@corpus_required()
def test_corpus_chart_with_comments_diff_holds_only_patched_paths(tmp_path, cli):
    chart = tmp_path / "kafka"
    shutil.copytree(KAFKA, chart)
    for file in chart.glob("*.yaml"):
        file.write_text(f"# Source: kafka/templates/{file.name}\n" + file.read_text())
    originals = {f.name: f.read_text() for f in chart.glob("*.yaml")}
    code, _, _ = cli("fix", str(chart), "--write", "--unsafe-fixes")
    assert code == 0  # every finding in this chart has a fix
    changed = 0
    for name, before in originals.items():
        after = (chart / name).read_text()
        if after == before:
            continue
        changed += 1
        assert after.startswith(f"# Source: kafka/templates/{name}\n")
        removed, _ = changed_lines(before, after)
        # Lines only go where a fix removes or replaces a value.
        assert all(any(k in line for k in ("privileged", "hostPath", "path:", "hostPort", "- NET_RAW", "- SYS_ADMIN", "add:", "Policy", "type:")) for line in removed), removed
    assert changed > 0


def test_diff_is_the_default_and_exits_one(tmp_path, cli):
    path = write(tmp_path, "app.yaml", DEPLOYMENT)
    code, stdout, _ = cli("fix", str(path))
    assert code == 1 and stdout.startswith("--- a/") and "+          securityContext:" in stdout
    assert path.read_text() == DEPLOYMENT


def test_unsafe_fixes_and_select_ignore(tmp_path, cli):
    write(tmp_path, "app.yaml", DEPLOYMENT)
    _, safe, _ = cli("fix", str(tmp_path))
    _, unsafe, _ = cli("fix", str(tmp_path), "--unsafe-fixes")
    assert "readOnlyRootFilesystem" not in safe and "readOnlyRootFilesystem" in unsafe
    _, only, _ = cli("fix", str(tmp_path), "--unsafe-fixes", "--select", "unset-cpu-requirements")
    assert "cpu: 100m" in only and "securityContext" not in only
    _, ignored, _ = cli("fix", str(tmp_path), "--ignore", "unset-seccomp-profile")
    assert "seccompProfile" not in ignored


def test_unparseable_file_is_reported_and_left_untouched(tmp_path, cli):
    write(tmp_path, "app.yaml", DEPLOYMENT)
    broken = write(tmp_path, "broken.yaml", "apiVersion: v1\nkind: [\n")
    code, _, stderr = cli("fix", str(tmp_path), "--write")
    assert code == 2 and "broken.yaml" in stderr
    assert broken.read_text() == "apiVersion: v1\nkind: [\n"
    assert "securityContext" in (tmp_path / "app.yaml").read_text()


def test_out_dir_leaves_the_input_alone(tmp_path, cli):
    source = tmp_path / "in"
    write(source, "app.yaml", DEPLOYMENT)
    code, _, _ = cli("fix", str(source), "--out-dir", str(tmp_path / "out"))
    assert (source / "app.yaml").read_text() == DEPLOYMENT
    assert "securityContext" in (tmp_path / "out" / "app.yaml").read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_overlay_builds_the_fixed_objects(tmp_path, cli):
    source = tmp_path / "in"
    write(source, "app.yaml", DEPLOYMENT)
    write(source, "pod.yaml", (REPO / "examples" / "003.yaml").read_text().replace("serviceAccountName", "x") + "  serviceAccountName: robot\n")
    overlay = tmp_path / "overlay"
    cli("fix", str(source), "--unsafe-fixes", "--emit-kustomize", str(overlay))
    cli("fix", str(source), "--unsafe-fixes", "--out-dir", str(tmp_path / "fixed"))
    built = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
    key = lambda o: (o["kind"], o["metadata"]["name"])
    from_overlay = sorted((o for o in yaml.safe_load_all(built) if o), key=key)
    expected = []
    for file in sorted((tmp_path / "fixed").glob("*.yaml")):
        expected += [o for o in yaml.safe_load_all(file.read_text()) if o]
    assert (source / "app.yaml").read_text() == DEPLOYMENT
    assert from_overlay == sorted(expected, key=key)
    assert any(o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "robot" for o in from_overlay)


@pytest.mark.skipif(not (TOOLS_BIN / "kubectl-validate").exists() and shutil.which("kubectl-validate") is None, reason="kubectl-validate not installed")
def test_kubectl_validate_gate(tmp_path, cli):
    path = write(tmp_path, "app.yaml", DEPLOYMENT)
    d, p, v = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "v.json"
    cli("detect", str(path), "--out", str(d))
    cli("propose", "--detections", str(d), "--out", str(p))
    patches = json.loads(p.read_text())
    patches.append({**patches[0], "patch": [{"op": "add", "path": "/spec/template/spec/containers/0/bogusField", "value": 1}]})
    p.write_text(json.dumps(patches))
    cli("verify", "--patches", str(p), "--detections", str(d), "--out", str(v), "--schema", "kubectl-validate", "--include-errors")
    verdicts = json.loads(v.read_text())
    assert all(x["ok_schema"] for x in verdicts[:-1])
    assert not verdicts[-1]["ok_schema"] and "bogusField" in " ".join(verdicts[-1]["errors"])


def test_server_schema_mode_needs_a_context(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    path = write(tmp_path, "app.yaml", DEPLOYMENT)
    d, p = tmp_path / "d.json", tmp_path / "p.json"
    cli("detect", str(path), "--out", str(d))
    cli("propose", "--detections", str(d), "--out", str(p))
    code, _, stderr = cli("verify", "--patches", str(p), "--detections", str(d), "--out", str(tmp_path / "v.json"), "--schema", "server")
    assert code == 2 and "--schema server" in stderr and "cannot read the kubeconfig" in stderr


def test_custom_resources_are_validated_against_crds_in_the_input(tmp_path):
    from k8s_auto_fix.verify.schema import SchemaValidator

    crd = yaml.safe_load(
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          names: {kind: Widget, plural: widgets}
          scope: Namespaced
          versions:
          - name: v1
            served: true
            storage: true
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      size: {type: integer}
        """
    )
    validator = SchemaValidator(crds=[crd])
    good = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    assert validator.errors(good) == []
    assert validator.errors({**good, "spec": {"size": "big"}})
    assert any("colour" in e for e in validator.errors({**good, "spec": {"size": 1, "colour": "red"}}))
    assert "no schema" in validator.errors({**good, "kind": "Gadget"})[0]


def test_json_manifests_stay_json_and_list_items_are_edited_in_place(tmp_path, cli):
    pod = write(tmp_path, "pod.json", json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},
                                                  "spec": {"containers": [{"name": "a", "image": "nginx:1.25"}]}}, indent=2) + "\n")
    listed = write(tmp_path, "list.yaml", """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Pod
          metadata: {name: in-list}
          spec:
            containers:
            - {name: a, image: "nginx:1.25"}
        """)
    # A folder contributes its YAML files, as kube-linter walks it; a JSON manifest is named.
    cli("fix", str(pod), str(listed), "--write", "--select", "unset-seccomp-profile")
    fixed = json.loads(pod.read_text())
    assert fixed["spec"]["containers"][0]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    items = yaml.safe_load(listed.read_text())["items"]
    assert items[0]["spec"]["containers"][0]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


@corpus_required()
def test_the_fast_text_path_and_the_ruamel_path_give_the_same_objects(tmp_path):
    """Every chart file of a corpus folder fixed both ways parses to the same data."""
    import k8s_auto_fix.fix.roundtrip as roundtrip
    from k8s_auto_fix.config import RunConfig
    from k8s_auto_fix.fix.apply import run_fix
    from k8s_auto_fix.fix.engine import FixSettings
    from k8s_auto_fix.runner import RunnerOptions

    settings = FixSettings.build(RunConfig(), {}, True, "1.30", None)
    fast = run_fix([str(KAFKA)], list(settings.checks), RunnerOptions(jobs=1), settings).new_texts
    original = roundtrip.apply_ops_fast
    roundtrip.apply_ops_fast = lambda *args: None
    try:
        slow = run_fix([str(KAFKA)], list(settings.checks), RunnerOptions(jobs=1), settings).new_texts
    finally:
        roundtrip.apply_ops_fast = original
    assert fast and fast.keys() == slow.keys()
    for path in fast:
        assert list(yaml.safe_load_all(fast[path])) == list(yaml.safe_load_all(slow[path])), path


def test_objects_without_a_name_are_fixed_too(tmp_path, cli):
    job = write(tmp_path, "job.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  labels: {app: x}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: a, image: 'busybox:1.36'}\n")
    code, _, stderr = cli("fix", str(job), "--write", "--select", "job-ttl-seconds-after-finished")
    assert "not rewritten" not in stderr
    assert yaml.safe_load(job.read_text())["spec"]["ttlSecondsAfterFinished"] == 86400
