"""Defaults more than one part of the tool refers to."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CONFIG_PATH = Path("configs/run.yaml")  # --config; the built-in defaults apply when it is absent
DEFAULT_KUBE_VERSION = "1.30"  # the newest kubectl-validate v0.0.4 knows, so the offline schema gates agree


def tool_version() -> str:
    """The installed package's version (``--version``, SARIF, the report)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("k8s-auto-fix")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0.0.0+unknown"
