"""What both queue backends share: the error, worker ids, where a queue lives,
and the rules of a lease that do not depend on the database.

A queue is named by a URL: ``sqlite:///queue.db`` (a file, relative; four
slashes for an absolute path, as SQLAlchemy spells it), a plain path (the
same SQLite file), or ``postgresql://user@host:port/db`` (a shared server).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from ..contracts import ReviewOutcome

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


def check_leased(row, item_id: str, owner: str) -> None:
    """A verdict is recorded only by the worker holding the lease (the stale-ack rule)."""
    if row is None:
        raise QueueError(f"no item {item_id}")
    if row["state"] != "leased" or row["owner"] != owner:
        # The lease expired and moved to another worker (or was never this one's): its result is not this worker's to record.
        holder = f"leased to {row['owner']}" if row["state"] == "leased" else row["state"]
        raise QueueError(f"item {item_id} is not leased to {owner} (it is {holder})")


def after_rejection(attempts: int, max_attempts: int) -> str:
    """A rejected fix comes back (revised) until it has used its attempts."""
    return "failed" if attempts >= max_attempts else "ready"


def leased_item(row, owner: str) -> dict:
    """The item a worker just leased, as `queue next` hands it over."""
    return {**json.loads(row["payload"]), "id": row["id"], "score": row["score"], "attempt": row["attempts"] + 1, "owner": owner}


def review_outcome(row) -> ReviewOutcome:
    """A finished review row (item_id, policy_id, applicability, outcome, minutes)."""
    return ReviewOutcome(id=row["item_id"], policy_id=row["policy_id"], applicability=row["applicability"], accepted=row["outcome"] == "accepted",
                         minutes=max(0.0, row["minutes"]))
