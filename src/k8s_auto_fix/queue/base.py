"""What both queue backends share: the error, worker ids, and where a queue lives.

A queue is named by a URL: ``sqlite:///queue.db`` (a file, relative; four
slashes for an absolute path, as SQLAlchemy spells it), a plain path (the
same SQLite file), or ``postgresql://user@host:port/db`` (a shared server).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

QUEUE_FORMAT = "k8s-auto-fix-queue/1"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class QueueError(Exception):
    pass


def default_worker_id() -> str:
    """A worker id no other worker has: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class QueueLocation:
    backend: str  # "sqlite" or "postgresql"
    target: str  # the file, or the connection URL

    @property
    def shown(self) -> str:
        """For messages: a password in the URL is never printed."""
        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", self.target)


def queue_location(url: str | Path) -> QueueLocation:
    text = str(url)
    if text.startswith(POSTGRES_SCHEMES):
        return QueueLocation("postgresql", text)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise QueueError(f"{text}: a SQLite queue URL is sqlite:///relative/path or sqlite:////absolute/path")
        return QueueLocation("sqlite", rest[1:])
    if "://" in text:
        raise QueueError(f"{text}: unknown queue URL scheme (use sqlite:///path or postgresql://...)")
    return QueueLocation("sqlite", text)
