"""A throwaway API server on loopback: etcd and the real kube-apiserver, no nodes.

It is enough for what the tool asks of a cluster: server-side dry runs (the
API server's own validation and defaulting, Pod Security Admission, CRDs,
ValidatingAdmissionPolicy). Everything lives in one folder: keys, a token,
a kubeconfig, logs, etcd's data and the pid files by which ``down`` stops
exactly the processes ``up`` started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

TOOLS_BIN = Path(__file__).resolve().parents[3] / ".tools" / "bin"
READY_TIMEOUT_S = 120
PROCESSES = ("etcd", "kube-apiserver")


class ClusterError(Exception):
    pass


@dataclass(frozen=True)
class ClusterStatus:
    folder: Path
    running: dict[str, int | None]  # process -> pid when alive
    ready: bool
    server: str | None

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"


def binary(name: str) -> str:
    found = shutil.which(name) or (str(TOOLS_BIN / name) if (TOOLS_BIN / name).exists() else None)
    if found is None:
        raise ClusterError(f"{name} not found on PATH or in .tools/bin; `make test` (scripts/setup.sh test) builds it")
    return found


def up(folder: Path) -> ClusterStatus:
    """Start etcd and kube-apiserver in ``folder`` (reused if already running)."""
    folder = folder.resolve()
    current = status(folder)
    if current.ready:
        return current
    if any(current.running.values()):
        down(folder)
    folder.mkdir(parents=True, exist_ok=True)
    etcd_bin, apiserver_bin = binary("etcd"), binary("kube-apiserver")
    token = _credentials(folder)
    client, peer, secure = _free_ports(3)
    _start(folder, "etcd", [
        etcd_bin, "--data-dir", str(folder / "etcd-data"), "--name", "k8s-auto-fix",
        "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"k8s-auto-fix=http://127.0.0.1:{peer}",
    ])  # fmt: skip
    _start(folder, "kube-apiserver", [
        apiserver_bin, f"--etcd-servers=http://127.0.0.1:{client}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={secure}",
        f"--tls-cert-file={folder / 'serving.crt'}", f"--tls-private-key-file={folder / 'serving.key'}",
        f"--token-auth-file={folder / 'tokens.csv'}", "--authorization-mode=RBAC", "--allow-privileged=true",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={folder / 'sa.pub'}", f"--service-account-signing-key-file={folder / 'sa.key'}",
        "--service-cluster-ip-range=10.96.0.0/16", "--enable-admission-plugins=PodSecurity,ServiceAccount",
    ])  # fmt: skip
    server = f"https://127.0.0.1:{secure}"
    _write_kubeconfig(folder, server, token)
    _wait_ready(folder, server, token)
    return status(folder)


def down(folder: Path) -> list[str]:
    """Stop the processes ``up`` started in ``folder`` (by their pid files); the names of those stopped."""
    folder = folder.resolve()
    stopped = []
    for name in reversed(PROCESSES):
        pid = _own_pid(folder, name)
        if pid is not None:
            _terminate(pid)
            stopped.append(name)
        (folder / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def status(folder: Path) -> ClusterStatus:
    folder = folder.resolve()
    running = {name: _own_pid(folder, name) for name in PROCESSES}
    server = _server(folder)
    ready = False
    if all(running.values()) and server:
        try:
            ready = _readyz(server, (folder / "token").read_text().strip(), folder)
        except (OSError, httpx.HTTPError):
            ready = False
    return ClusterStatus(folder, running, ready, server)


# --- processes -------------------------------------------------------------------------


def _start(folder: Path, name: str, command: list[str]) -> None:
    log = open(folder / f"{name}.log", "ab")
    # A session of its own: the server outlives this command, and a Ctrl-C in
    # the user's terminal does not reach it.
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=folder)
    log.close()
    (folder / f"{name}.pid").write_text(str(proc.pid))


def _own_pid(folder: Path, name: str) -> int | None:
    """The pid in the pid file, if that process is alive and is the one we started (its command names our folder)."""
    try:
        pid = int((folder / f"{name}.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if str(folder) in command and name in command else None


def _alive(folder: Path, name: str) -> bool:
    """Whether the process in the pid file still runs (while starting, its
    command line may not be readable yet, so it is not checked here)."""
    try:
        pid = int((folder / f"{name}.pid").read_text().strip())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state != "Z"


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            time.sleep(0.1)
            os.kill(pid, 0)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it when it was our child
    except ChildProcessError:
        pass


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --- credentials and kubeconfig ------------------------------------------------------------


def _credentials(folder: Path) -> str:
    """A serving certificate for 127.0.0.1, a service-account key pair and an admin token."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError("openssl not found: it makes the API server's certificate and keys")
    if not (folder / "serving.crt").exists():
        _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=127.0.0.1",
              "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
              "-keyout", str(folder / "serving.key"), "-out", str(folder / "serving.crt")])  # fmt: skip
    if not (folder / "sa.key").exists():
        _run([openssl, "genrsa", "-out", str(folder / "sa.key"), "2048"])
        _run([openssl, "rsa", "-in", str(folder / "sa.key"), "-pubout", "-out", str(folder / "sa.pub")])
    token_file = folder / "token"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(24))
        token_file.chmod(0o600)
    token = token_file.read_text().strip()
    (folder / "tokens.csv").write_text(f"{token},k8s-auto-fix,k8s-auto-fix,system:masters\n")
    (folder / "tokens.csv").chmod(0o600)
    return token


def _run(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"{command[0]} failed: {proc.stderr.strip()[-300:]}")


def _write_kubeconfig(folder: Path, server: str, token: str) -> None:
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: k8s-auto-fix
  cluster:
    server: {server}
    certificate-authority: {folder / 'serving.crt'}
users:
- name: k8s-auto-fix
  user:
    token: {token}
contexts:
- name: k8s-auto-fix
  context: {{cluster: k8s-auto-fix, user: k8s-auto-fix}}
current-context: k8s-auto-fix
"""
    path = folder / "kubeconfig"
    path.write_text(text)
    path.chmod(0o600)


def _server(folder: Path) -> str | None:
    try:
        for line in (folder / "kubeconfig").read_text().splitlines():
            if line.strip().startswith("server:"):
                return line.split("server:", 1)[1].strip()
    except OSError:
        pass
    return None


def _readyz(server: str, token: str, folder: Path) -> bool:
    context = ssl.create_default_context(cafile=str(folder / "serving.crt"))
    response = httpx.get(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"}, verify=context, timeout=5)
    return response.status_code == 200


def _wait_ready(folder: Path, server: str, token: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for name in PROCESSES:
            if not _alive(folder, name):
                tail = (folder / f"{name}.log").read_text(errors="replace")[-600:]
                raise ClusterError(f"{name} exited while starting; the end of {folder / (name + '.log')}:\n{tail}")
        try:
            if _readyz(server, token, folder):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ClusterError(f"the API server was not ready after {READY_TIMEOUT_S} s; see {folder / 'kube-apiserver.log'}")
