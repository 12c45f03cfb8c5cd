"""detect --baseline: only findings absent from a saved run, matched by stable id."""

from __future__ import annotations

import json

from conftest import write

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: nginx:1.25
"""


def test_only_new_findings_are_reported_against_a_saved_json_or_sarif_baseline(cli, tmp_path):
    repo = tmp_path / "repo"
    write(repo, "old.yaml", POD.format(name="old"))
    baseline, sarif = tmp_path / "baseline.json", tmp_path / "baseline.sarif"
    assert cli("detect", str(repo), "--out", str(baseline))[0] == 1
    assert cli("detect", str(repo), "--format", "sarif", "--out", str(sarif))[0] == 1
    old = json.loads(baseline.read_text())
    assert old
    for saved in (baseline, sarif):
        code, stdout, stderr = cli("detect", str(repo), "--baseline", str(saved), "--format", "json")
        assert (code, json.loads(stdout)) == (0, []) and f"{len(old)} finding(s) already in the baseline" in stderr
    # The old object edited elsewhere keeps its findings known; a new object's are reported.
    write(repo, "old.yaml", POD.format(name="old").replace("image: nginx:1.25", "image: nginx:1.25\n    ports:\n    - containerPort: 80"))
    write(repo, "new.yaml", POD.format(name="new"))
    code, stdout, _ = cli("detect", str(repo), "--baseline", str(baseline), "--format", "json")
    new = json.loads(stdout)
    assert code == 1 and new and {d["object"]["name"] for d in new} == {"new"}
    assert len(new) == len(old)  # the same checks fire on the same kind of pod


def test_a_baseline_that_cannot_be_read_is_one_clear_error(cli, tmp_path):
    write(tmp_path, "pod.yaml", POD.format(name="p"))
    for name, text, says in [
        ("missing.json", None, "cannot read the baseline"),
        ("broken.json", "[{", "not valid JSON"),
        ("other.json", json.dumps({"some": "thing"}), "not a baseline"),
        ("foreign.sarif", json.dumps({"runs": [{"results": [{"ruleId": "x"}]}]}), "not written by k8s-auto-fix"),
    ]:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        code, stdout, stderr = cli("detect", str(tmp_path / "pod.yaml"), "--baseline", str(path), "--format", "json")
        assert code == 2 and stdout == "" and str(path) in stderr and says in stderr
