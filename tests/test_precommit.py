"""The pre-commit hooks, run by the real pre-commit on a temporary git repository.

The hook repository is a commit of this package's sources (as a user's
`rev:` would pin it); pre-commit installs it into its own virtualenv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO, tools_required

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")
pytestmark = tools_required("git")  # pre-commit comes with the test extra
POD = """apiVersion: v1
kind: Pod
metadata:
  name: web  # the front end
spec:
  containers:
  - name: app
    image: ghcr.io/example/web:1.4.2
"""


def git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


def hook_repository(tmp_path: Path) -> tuple[Path, str]:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(REPO / name, hooks / name)
    shutil.copytree(REPO / "src", hooks / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    git(hooks, "init", "-q")
    git(hooks, "add", "-A")
    git(hooks, "commit", "-qm", "hooks")
    return hooks, git(hooks, "rev-parse", "HEAD")


def pre_commit(repo: Path, home: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run([str(PRE_COMMIT), "run", "--all-files"], cwd=repo, capture_output=True, text=True, env=env)


def test_the_detect_and_fix_hooks_with_the_real_pre_commit(tmp_path):
    hooks, rev = hook_repository(tmp_path)
    declared = {h["id"] for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert declared == {"k8s-auto-fix", "k8s-auto-fix-fix"}
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    config = {"repos": [{"repo": str(hooks), "rev": rev, "hooks": [{"id": "k8s-auto-fix-fix"}, {"id": "k8s-auto-fix"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (repo / "pod.yaml").write_text(POD)
    git(repo, "add", "-A")

    first = pre_commit(repo, tmp_path / "cache")
    assert first.returncode == 1, first.stdout + first.stderr
    fix_part, detect_part = first.stdout.split("k8s-auto-fix (detect)")
    assert "Failed" in fix_part and "files were modified by this hook" in fix_part
    fixed = (repo / "pod.yaml").read_text()
    assert "name: web  # the front end" in fixed  # comments kept
    assert yaml.safe_load(fixed)["spec"]["containers"][0]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}  # the safe fix only
    assert "Failed" in detect_part and "run-as-non-root" in detect_part and "pod.yaml" in detect_part
    assert ".pre-commit-config.yaml" not in first.stdout  # the hooks leave pre-commit's own YAML alone

    # Nothing safe is left to write: the fix hook passes; the findings that need review still fail the detect hook.
    second = pre_commit(repo, tmp_path / "cache")
    fix_part, detect_part = second.stdout.split("k8s-auto-fix (detect)")
    assert "Passed" in fix_part and "Failed" in detect_part and second.returncode == 1
    assert (repo / "pod.yaml").read_text() == fixed

    # A clean manifest passes both.
    subprocess.run([sys.executable, "-m", "k8s_auto_fix", "fix", str(repo / "pod.yaml"), "--write", "--unsafe-fixes"], capture_output=True, check=False)
    third = pre_commit(repo, tmp_path / "cache")
    assert third.returncode == 0, third.stdout
    assert third.stdout.count("Passed") == 2
