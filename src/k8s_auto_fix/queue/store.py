"""A persistent work queue of verified fixes, on SQLite in WAL mode.

`next` leases the highest-scored ready item to one worker until an expiry, in
one IMMEDIATE transaction, so concurrent workers never receive the same item
and a crashed worker's item is served again once its lease runs out. Every
change is one transaction: a process killed mid-way leaves the queue as it
was before or after, never in between. A database that is not a queue, or
is damaged, is reported, never reset; one that holds anything else is never
made a queue (no tables are added to someone else's database). A database
that cannot be written (read-only file or folder, full disk) is one
``QueueError``, never a raw SQLite error.

A lease belongs to one worker id: the default id is ``host:pid:random``, so
two workers never share one, and an ack or fail from a worker whose lease has
moved to another is refused.

Every lease is a row of ``reviews``; ``ack`` (the fix was accepted) and
``fail`` (rejected) close it with the outcome and the time, so the scheduler
can learn acceptance rates and review times from them (``schedule --history``).
A lease that expires stays open: nobody decided anything.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from ..contracts import Applicability, ReviewOutcome
from .base import QUEUE_FORMAT, QueueError, after_rejection, check_leased, default_worker_id, leased_item, review_outcome

__all__ = ["Queue", "QueueError", "default_worker_id"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id            TEXT PRIMARY KEY,
    policy_id     TEXT NOT NULL DEFAULT '',
    score         REAL NOT NULL DEFAULT 0,
    payload       TEXT NOT NULL DEFAULT '{}',
    state         TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'leased', 'done', 'failed')),
    owner         TEXT,
    lease_expires REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    enqueued_at   REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_priority ON items (state, score DESC);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('format', 'k8s-auto-fix-queue/1');
"""

# Added after the first queues were made: created by the first write that needs it.
REVIEWS = """
CREATE TABLE IF NOT EXISTS reviews (
    item_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    owner         TEXT NOT NULL,
    policy_id     TEXT NOT NULL DEFAULT '',
    applicability TEXT NOT NULL DEFAULT 'review',
    leased_at     REAL NOT NULL,
    finished_at   REAL,
    outcome       TEXT CHECK (outcome IN ('accepted', 'rejected')),
    PRIMARY KEY (item_id, attempt)
)
"""


def _reported(method):
    """SQLite's own errors as one QueueError line naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            raise QueueError(f"{self.path}: {_describe(err)}") from None

    return wrapper


def _describe(err: sqlite3.Error) -> str:
    text = str(err)
    if "readonly" in text or "read-only" in text:
        return f"the queue cannot be written ({text}): check that the file and its folder are writable"
    if "locked" in text or "busy" in text:
        return f"the queue is busy ({text}): another process holds it; try again"
    return f"the queue cannot be used ({text})"


class Queue:
    """The SQLite queue (``sqlite:///path``); ``PostgresQueue`` has the same methods and semantics."""

    def __init__(self, path: str | Path, lease_seconds: float = 300.0, create: bool = False):
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self._reviews_table = False
        if not create and not self.path.exists():
            raise QueueError(f"{self.path}: no queue here; create it with `queue init`")
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 30000")
            if create and not self._is_queue():
                self._refuse_foreign()
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.executescript(SCHEMA)
            self._check()
        except sqlite3.DatabaseError as err:
            raise QueueError(f"{self.path}: not a usable queue database ({_describe(err)}); it was left as it is") from None

    def _is_queue(self) -> bool:
        if not self._has_table("meta"):
            return False
        row = self.db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        return row is not None and row[0] == QUEUE_FORMAT

    def _refuse_foreign(self) -> None:
        """Only an empty database becomes a queue: one with anything in it belongs to someone else."""
        names = [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")]
        if names:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise QueueError(f"{self.path}: a database that is not a queue (it holds {shown}); it was left as it is")

    def _check(self) -> None:
        status = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if status != "ok":
            raise QueueError(f"{self.path}: the database is damaged ({status}); it was left as it is")
        if not self._is_queue():
            raise QueueError(f"{self.path}: not a k8s-auto-fix queue; it was left as it is")

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def close(self) -> None:
        self.db.close()

    @_reported
    def enqueue(self, items: Iterable[dict]) -> tuple[int, int]:
        """Add items (id, policy_id, score, payload); an item already there keeps its
        state and, while ready, takes the new score. Returns (added, updated)."""
        now = time.time()
        added = updated = 0
        with self._transaction():
            for item in items:
                before = self.db.total_changes
                exists = self.db.execute("SELECT 1 FROM items WHERE id = ?", (item["id"],)).fetchone()
                self.db.execute(
                    """INSERT INTO items (id, policy_id, score, payload, enqueued_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT (id) DO UPDATE SET score = excluded.score, payload = excluded.payload, updated_at = excluded.updated_at
                       WHERE items.state = 'ready' AND (items.score != excluded.score OR items.payload != excluded.payload)""",
                    (item["id"], item.get("policy_id", ""), float(item.get("score", 0)), json.dumps(item, sort_keys=True), now, now),
                )
                if self.db.total_changes > before:
                    updated += bool(exists)
                    added += not exists
        return added, updated

    @_reported
    def next(self, owner: str) -> dict | None:
        now = time.time()
        with self._transaction():
            row = self.db.execute(
                """SELECT * FROM items WHERE state = 'ready' OR (state = 'leased' AND lease_expires < ?)
                   ORDER BY score DESC, id LIMIT 1""",
                (now,),
            ).fetchone()
            if row is None:
                return None
            self.db.execute(
                "UPDATE items SET state = 'leased', owner = ?, lease_expires = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (owner, now + self.lease_seconds, now, row["id"]),
            )
            applicability = json.loads(row["payload"]).get("applicability") or Applicability.REVIEW.value
            self._ensure_reviews()
            self.db.execute(
                "INSERT OR REPLACE INTO reviews (item_id, attempt, owner, policy_id, applicability, leased_at) VALUES (?, ?, ?, ?, ?, ?)",
                (row["id"], row["attempts"] + 1, owner, row["policy_id"], applicability, now),
            )
        return leased_item(row, owner)

    @_reported
    def ack(self, item_id: str, owner: str) -> None:
        """The reviewer accepted the fix: the item is done."""
        with self._transaction():
            row = self._leased(item_id, owner)
            self._close(row, "done", "accepted")

    @_reported
    def fail(self, item_id: str, owner: str, max_attempts: int = 3) -> str:
        """The reviewer rejected the fix: it comes back (a revised fix), failed for good after ``max_attempts``."""
        with self._transaction():
            row = self._leased(item_id, owner)
            state = after_rejection(row["attempts"], max_attempts)
            self._close(row, state, "rejected")
        return state

    @_reported
    def reviews(self) -> list[ReviewOutcome]:
        """Every finished review, oldest first: outcome and minutes from lease to verdict."""
        if not self._has_table("reviews"):
            return []
        rows = self.db.execute(
            """SELECT item_id, policy_id, applicability, outcome, (finished_at - leased_at) / 60.0 AS minutes
               FROM reviews WHERE outcome IS NOT NULL ORDER BY finished_at, item_id, attempt"""
        )
        return [review_outcome(r) for r in rows]

    @_reported
    def requeue(self, item_id: str) -> None:
        with self._transaction():
            changed = self.db.execute(
                "UPDATE items SET state = 'ready', owner = NULL, lease_expires = NULL, updated_at = ? WHERE id = ?", (time.time(), item_id)
            ).rowcount
        if not changed:
            raise QueueError(f"no item {item_id}")

    @_reported
    def stats(self) -> dict:
        counts = {state: 0 for state in ("ready", "leased", "done", "failed")}
        for row in self.db.execute("SELECT state, COUNT(*) AS n FROM items GROUP BY state"):
            counts[row["state"]] = row["n"]
        expired = self.db.execute("SELECT COUNT(*) FROM items WHERE state = 'leased' AND lease_expires < ?", (time.time(),)).fetchone()[0]
        return {**counts, "total": sum(counts.values()), "expired_leases": expired}

    def _close(self, row: sqlite3.Row, state: str, outcome: str) -> None:
        """Give the leased item its new state and record the review's outcome (inside the caller's transaction)."""
        now = time.time()
        self.db.execute("UPDATE items SET state = ?, owner = NULL, lease_expires = NULL, updated_at = ? WHERE id = ?", (state, now, row["id"]))
        self._ensure_reviews()
        self.db.execute(
            "UPDATE reviews SET outcome = ?, finished_at = ? WHERE item_id = ? AND attempt = ? AND owner = ?",
            (outcome, now, row["id"], row["attempts"], row["owner"]),
        )

    def _ensure_reviews(self) -> None:
        """Queues made before reviews were recorded get the table on their first write."""
        if not self._reviews_table:
            self.db.execute(REVIEWS)
            self._reviews_table = True

    def _leased(self, item_id: str, owner: str):
        row = self.db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        check_leased(row, item_id, owner)
        return row

    def _transaction(self):
        return _Immediate(self.db)


class _Immediate:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one writer at a time."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
