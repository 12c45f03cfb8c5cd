"""Issue 15, item 5: run --inputs LIST: folders and git repositories in one run,
a summary per input, and a broken input that does not stop the rest."""

from __future__ import annotations

import json
import shutil
import subprocess

from conftest import REPO, write


def _bare_repository(tmp_path):
    """A git repository of manifests, as a server keeps it (bare: no work tree)."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "examples", work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "manifests"]):
        subprocess.run([*git, *args], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "apps.git")], check=True)
    return tmp_path / "apps.git"


def test_inputs_run_in_one_pipeline_with_a_summary_each_and_a_broken_one_does_not_stop_the_rest(tmp_path, cli):
    bare = _bare_repository(tmp_path)
    shutil.copytree(REPO / "tests" / "runnability", tmp_path / "team-b")
    write(tmp_path, "not-a-folder.yaml", "kind: Pod\n")
    listing = write(tmp_path, "inputs.txt", f"""
        # the fleet
        team-b
        {bare}
        missing-team        # gone
        not-a-folder.yaml
        """)
    out = tmp_path / "out"
    code, stdout, stderr = cli("run", "--inputs", str(listing), "--out", str(out), "--head", "0")
    assert code == 2, stderr  # an input could not be used: a CI gate must not pass
    summaries = {s["input"]: s for s in json.loads((out / "inputs.json").read_text())}
    assert [s["line"] for s in summaries.values()] == [2, 3, 4, 5]
    assert summaries["team-b"]["status"] == "ok" and summaries["team-b"]["findings"] > 0
    assert summaries[str(bare)]["status"] == "ok" and summaries[str(bare)]["findings"] > 0
    assert summaries["missing-team"]["status"] == "error" and f"{listing}:4: missing-team: no such folder" in summaries["missing-team"]["message"]
    assert "not a folder" in summaries["not-a-folder.yaml"]["message"]
    # The usable inputs went through one pipeline: every finding belongs to one of them.
    detections = json.loads((out / "detections.json").read_text())
    assert len(detections) == summaries["team-b"]["findings"] + summaries[str(bare)]["findings"]
    accepted = sum(v["accepted"] for v in json.loads((out / "verified.json").read_text()))
    assert accepted == summaries["team-b"]["accepted"] + summaries[str(bare)]["accepted"] > 0
    assert "missing-team" in stdout and "inputs" in stdout
    # The bare repository was linted from its HEAD (a folder the run made and removed).
    assert {d["policy_id"] for d in detections if "team-b" not in d["manifest_path"]} >= {"latest-tag"}


def test_an_inputs_list_that_names_nothing_usable_is_one_error(tmp_path, cli):
    listing = write(tmp_path, "inputs.txt", "# nothing\nmissing\n")
    code, _, stderr = cli("run", "--inputs", str(listing), "--out", str(tmp_path / "out"))
    assert code == 2 and "no input could be used" in stderr and "missing" in stderr
    code, _, stderr = cli("run", "--out", str(tmp_path / "out"))
    assert code == 2 and "--inputs" in stderr
