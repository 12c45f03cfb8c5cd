"""A cluster to ask: a throwaway local API server (``local``) and the client
that dry-runs objects against any API server (``api``)."""

from .api import DryRun, KubeClient
from .local import ClusterError, ClusterStatus, down, status, up

__all__ = ["ClusterError", "ClusterStatus", "DryRun", "KubeClient", "down", "status", "up"]
