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


# --- PostgreSQL: a real server for the queue tests, in a temporary folder -------------------


def _initdb() -> str | None:
    """Debian's postgresql package keeps its binaries out of PATH, under /usr/lib/postgresql/VERSION/bin."""
    import glob
    import shutil

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return found[-1] if found else shutil.which("initdb")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on a free loopback port, its data in a temporary folder,
    stopped and removed at the end of the session. initdb refuses to run as root,
    so as root the server runs as the `postgres` user the Debian package creates."""
    import pwd
    import shutil
    import signal
    import subprocess
    import tempfile
    import time

    initdb = _initdb()
    if initdb is None:
        # In CI `make test` installs it: there a missing server fails the tests, never skips them.
        (pytest.fail if os.environ.get("CI") else pytest.skip)("PostgreSQL is not installed (scripts/setup.sh test installs Debian's postgresql)")
    bin_dir = Path(initdb).parent
    prefix: list[str] = []
    # Not under pytest's tmp folder: that one is private to root, and the server's user must reach its files.
    folder = Path(tempfile.mkdtemp(prefix="k8s-auto-fix-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--reset-env"]
    data = folder / "data"
    subprocess.run([*prefix, str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, text=True)
    port = free_port()
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [*prefix, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder), "-c", "listen_addresses=127.0.0.1",
         "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=60"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"postgresql://postgres@127.0.0.1:{port}"
    try:
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(f"{base}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {(folder / 'server.log').read_text()}") from None
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database of the session's server, dropped after the test."""
    import secrets

    import psycopg

    name = f"queue_{secrets.token_hex(6)}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{postgres_server}/{name}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request, tmp_path):
    """The same queue test on both backends: a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("postgres_url")
