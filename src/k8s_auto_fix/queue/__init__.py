"""The review queue: SQLite (embedded, the default) or PostgreSQL (shared)."""

from __future__ import annotations

from pathlib import Path


def open_queue(url: str | Path, lease_seconds: float = 300.0, create: bool = False):
    """The queue a URL names (``sqlite:///path``, a path, or ``postgresql://...``)."""
    from .base import QueueError, queue_location

    location = queue_location(url)
    if location.backend == "postgresql":
        try:
            from .postgres import PostgresQueue
        except ImportError as err:
            raise QueueError(f"{location.shown}: a PostgreSQL queue needs psycopg ({err}): pip install 'k8s-auto-fix[postgres]'") from None

        return PostgresQueue(location, lease_seconds, create=create)
    from .store import Queue

    return Queue(location.target, lease_seconds, create=create)
