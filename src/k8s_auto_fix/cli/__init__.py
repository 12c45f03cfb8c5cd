"""The `k8s-auto-fix` command line: thin commands, one module per group.

detect.py    detect, checks
fix.py       propose, verify, fix
pipeline.py  risk, schedule, queue, metrics, run
model.py     serve, llm probe
bench.py     bench detect|parity|fix|scaling|llm|scheduler
cluster.py   cluster up|down|status
"""

from __future__ import annotations

from . import bench, cluster, detect, fix, model, pipeline  # noqa: F401  (imported to register their commands)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
