"""cluster up|down|status: a throwaway local API server for server-side dry runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .app import cluster_app
from .common import EXIT_CLEAN, EXIT_ERROR, fail

DEFAULT_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "k8s-auto-fix" / "cluster"
DirOpt = Annotated[Path, typer.Option("--dir", help="Folder of the cluster: keys, kubeconfig, logs, etcd data, pid files.")]


@cluster_app.command("up")
def cluster_up(folder: DirOpt = DEFAULT_DIR) -> None:
    """Start etcd and kube-apiserver on free loopback ports; print KUBECONFIG=..."""
    from ..cluster import ClusterError, up

    try:
        state = up(folder)
    except ClusterError as err:
        raise fail(str(err)) from None
    typer.echo(f"KUBECONFIG={state.kubeconfig}")


@cluster_app.command("down")
def cluster_down(folder: DirOpt = DEFAULT_DIR) -> None:
    """Stop exactly the processes `up` started in the folder (by their pid files)."""
    from ..cluster import down

    stopped = down(folder)
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else f"nothing running in {folder}")


@cluster_app.command("status")
def cluster_status(folder: DirOpt = DEFAULT_DIR) -> None:
    """Which processes run, and whether the API server is ready (exit 0 when ready)."""
    from ..cluster import status

    state = status(folder)
    for name, pid in state.running.items():
        typer.echo(f"{name}: {'running, pid ' + str(pid) if pid else 'not running'}")
    typer.echo(f"api server: {'ready at ' + state.server if state.ready else 'not ready'}")
    if state.ready:
        typer.echo(f"KUBECONFIG={state.kubeconfig}")
    raise typer.Exit(EXIT_CLEAN if state.ready else EXIT_ERROR)
