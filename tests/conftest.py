from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from k8s_auto_fix.cli import app

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("K8S_AUTO_FIX_CORPUS", REPO.parent / "shared" / "corpus"))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str, input: str | None = None):
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def detect_json(cli, tmp_path):
    """detect PATHS -> list of detection dicts (and the exit code)."""

    def run(*args: str):
        out = tmp_path / "detections.json"
        code, _, stderr = cli("detect", *args, "--out", str(out))
        return code, json.loads(out.read_text()) if out.exists() else None, stderr

    return run


def corpus_required():
    return pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


def _have(*tools: str) -> bool:
    import shutil

    return all(shutil.which(t) or (REPO / ".tools" / "bin" / t).exists() for t in tools)


def tools_required(*tools: str):
    """Skip a test whose real tools are missing, except in CI (``CI`` set), where
    `make test` installs them: there a missing oracle fails the test, never skips it."""
    missing = not _have(*tools) and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason=f"{', '.join(tools)} not installed (make test installs them)")


server_required = tools_required("etcd", "kube-apiserver")


@pytest.fixture(scope="session")
def api_server(tmp_path_factory):
    """A real local API server for the session (`cluster up`), always torn down."""
    from k8s_auto_fix.cluster import down, up

    folder = tmp_path_factory.mktemp("cluster")
    try:
        yield up(folder)
    finally:
        down(folder)


def cli_process(*args: str, cwd=None, input: str | None = None, as_user: bool = False):
    """The CLI in its own process (``python -m k8s_auto_fix``). With ``as_user``,
    without root's power to read and write what permissions forbid (when run as
    root), so permission errors are real."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "k8s_auto_fix", *args]
    if as_user and os.geteuid() == 0:
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=cwd, input=input)
