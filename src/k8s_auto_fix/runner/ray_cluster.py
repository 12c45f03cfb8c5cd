"""A Ray cluster of one or more nodes on this machine, for `bench scale` and the tests.

Each node is `ray start --block` on loopback, with ports chosen free, in a
process group of its own, so that stopping it stops exactly the processes it
started. The cluster has its own authentication token (Ray 2.x authenticates
every client by token): the commands that use it get it through ``env``.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"
START_SECONDS = 180  # a cold node on a busy 2-core machine takes a minute or more


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_range(size: int) -> int:
    """The first port of ``size`` consecutive free ports (Ray's worker ports)."""
    for _ in range(200):
        start = random.randrange(20000, 30000 - size)
        try:
            for port in range(start, start + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
    raise RuntimeError("no free port range")


@dataclass
class LocalRayCluster:
    address: str
    env: dict  # the environment a client of this cluster needs (its token)
    nodes: list[subprocess.Popen] = field(default_factory=list)

    def alive_nodes(self) -> int:
        probe = "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        result = subprocess.run([sys.executable, "-c", probe, self.address], capture_output=True, text=True, env=self.env, timeout=120)
        return int(result.stdout.strip() or 0) if result.returncode == 0 else 0

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]


@contextmanager
def local_ray_cluster(nodes: int = 1, cpus_per_node: int = 1, object_store_bytes: int = 80_000_000) -> Iterator[LocalRayCluster]:
    """A head node and ``nodes - 1`` more joined to it, all up before it is handed over; all stopped after."""
    temp = Path(tempfile.mkdtemp(prefix="k8sfix-ray-"))  # short: Ray's socket paths must stay under 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    gcs = free_port()
    cluster = LocalRayCluster(f"127.0.0.1:{gcs}", env)
    start = [f"--num-cpus={cpus_per_node}", f"--object-store-memory={object_store_bytes}"]
    head = ["--head", f"--port={gcs}", "--include-dashboard=false", f"--ray-client-server-port={free_port()}", f"--temp-dir={temp}"]
    try:
        deadline = time.monotonic() + START_SECONDS
        for n in range(nodes):
            cluster.nodes.append(_node(temp, env, *start, *(head if n == 0 else [f"--address={cluster.address}"])))
            while cluster.alive_nodes() < n + 1:
                if cluster.nodes[n].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Ray node {n} did not start: {(temp / f'node-{n}.log').read_text()[-3000:]}")
                time.sleep(2)
        yield cluster
    finally:
        for node in reversed(cluster.nodes):
            _stop(node)
        shutil.rmtree(temp, ignore_errors=True)


def _node(temp: Path, env: dict, *args: str) -> subprocess.Popen:
    workers = _free_range(24)
    command = [
        str(RAY), "start", "--block", "--node-ip-address=127.0.0.1",
        f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
        f"--min-worker-port={workers}", f"--max-worker-port={workers + 23}", "--disable-usage-stats", *args,
    ]
    log = open(temp / f"node-{len(list(temp.glob('node-*.log')))}.log", "w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(node: subprocess.Popen) -> None:
    try:
        os.killpg(node.pid, signal.SIGTERM)  # --block stops its node's processes on SIGTERM
        node.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
    except ProcessLookupError:
        pass
