"""The review queue on PostgreSQL (``--queue postgresql://...``): one queue
shared by reviewers and workers on many machines.

The semantics are the SQLite queue's (``store.Queue``), method for method:

- ``next`` leases the highest-scored ready item, or one whose lease ran out,
  with ``SELECT ... FOR UPDATE SKIP LOCKED``: concurrent workers lock
  different rows instead of waiting on each other, and no row is leased
  twice (a row another transaction has just leased is re-checked against the
  ``WHERE`` before it is locked, so it no longer qualifies).
- ``ack`` and ``fail`` lock the item's row and are refused once its lease has
  moved to another worker (the stale-ack rule).
- Every lease is a row of ``reviews``, closed by ack or fail with the outcome.
- Every change is one transaction: a worker killed mid-way leaves nothing half
  done, and its lease expires and is served again.

The queue's tables live in a schema of their own (``k8s_auto_fix``), so a
shared database's other tables are never touched; a ``k8s_auto_fix`` schema
that holds anything but a queue is refused, never changed. Lease times are
the client's clock, as in SQLite (hosts under NTP agree to milliseconds,
leases last minutes).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable

import psycopg
from psycopg.rows import dict_row

from ..contracts import Applicability, ReviewOutcome
from .base import QUEUE_FORMAT, QueueError, QueueLocation, after_rejection, check_leased, leased_item, review_outcome

SCHEMA = "k8s_auto_fix"
# Serialises concurrent `queue init`s: CREATE ... IF NOT EXISTS races on the catalog otherwise.
INIT_LOCK = 0x6B386166

TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.items (
    id            TEXT PRIMARY KEY,
    policy_id     TEXT NOT NULL DEFAULT '',
    score         DOUBLE PRECISION NOT NULL DEFAULT 0,
    payload       TEXT NOT NULL DEFAULT '{{}}',
    state         TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'leased', 'done', 'failed')),
    owner         TEXT,
    lease_expires DOUBLE PRECISION,
    attempts      INTEGER NOT NULL DEFAULT 0,
    enqueued_at   DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_priority ON {SCHEMA}.items (state, score DESC);
CREATE TABLE IF NOT EXISTS {SCHEMA}.reviews (
    item_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    owner         TEXT NOT NULL,
    policy_id     TEXT NOT NULL DEFAULT '',
    applicability TEXT NOT NULL DEFAULT 'review',
    leased_at     DOUBLE PRECISION NOT NULL,
    finished_at   DOUBLE PRECISION,
    outcome       TEXT CHECK (outcome IN ('accepted', 'rejected')),
    PRIMARY KEY (item_id, attempt)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO {SCHEMA}.meta (key, value) VALUES ('format', '{QUEUE_FORMAT}') ON CONFLICT (key) DO NOTHING;
"""


def _reported(method):
    """PostgreSQL's errors as one QueueError line naming the server (without its password)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as err:
            raise QueueError(f"{self.location.shown}: the queue cannot be used ({_first_line(err)})") from None

    return wrapper


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class PostgresQueue:
    def __init__(self, location: QueueLocation, lease_seconds: float = 300.0, create: bool = False):
        self.location = location
        self.lease_seconds = lease_seconds
        try:
            self.db = psycopg.connect(location.target, autocommit=True, row_factory=dict_row, connect_timeout=30)
        except psycopg.Error as err:
            raise QueueError(f"{location.shown}: cannot connect to the queue's server ({_first_line(err)})") from None
        try:
            if create and not self._is_queue():
                self._create()
            if not self._is_queue():
                raise QueueError(f"{location.shown}: no queue here; create it with `queue init`")
        except psycopg.Error as err:
            self.db.close()
            raise QueueError(f"{location.shown}: not a usable queue ({_first_line(err)}); it was left as it is") from None
        except QueueError:
            self.db.close()
            raise

    def _tables(self) -> list[str]:
        rows = self.db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name", (SCHEMA,))
        return [r["table_name"] for r in rows]

    def _is_queue(self) -> bool:
        if "meta" not in self._tables():
            return False
        row = self.db.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'format'").fetchone()
        return row is not None and row["value"] == QUEUE_FORMAT

    def _create(self) -> None:
        """Only a missing or empty ``k8s_auto_fix`` schema becomes a queue: one with anything else in it belongs to someone else."""
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (INIT_LOCK,))
            if self._is_queue():
                return  # another `queue init` made it meanwhile
            names = self._tables()
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise QueueError(f"{self.location.shown}: the schema {SCHEMA} is not a queue (it holds {shown}); it was left as it is")
            self.db.execute(TABLES)

    def close(self) -> None:
        self.db.close()

    @_reported
    def enqueue(self, items: Iterable[dict]) -> tuple[int, int]:
        """Add items (id, policy_id, score, payload); an item already there keeps its
        state and, while ready, takes the new score. Returns (added, updated)."""
        now = time.time()
        added = updated = 0
        with self.db.transaction():
            for item in items:
                # RETURNING gives a row only when something was written; xmax = 0 marks a fresh insert.
                row = self.db.execute(
                    f"""INSERT INTO {SCHEMA}.items AS items (id, policy_id, score, payload, enqueued_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s)
                        ON CONFLICT (id) DO UPDATE SET score = excluded.score, payload = excluded.payload, updated_at = excluded.updated_at
                        WHERE items.state = 'ready' AND (items.score <> excluded.score OR items.payload <> excluded.payload)
                        RETURNING (xmax = 0) AS inserted""",
                    (item["id"], item.get("policy_id", ""), float(item.get("score", 0)), json.dumps(item, sort_keys=True), now, now),
                ).fetchone()
                if row is not None:
                    added += row["inserted"]
                    updated += not row["inserted"]
        return added, updated

    @_reported
    def next(self, owner: str) -> dict | None:
        now = time.time()
        with self.db.transaction():
            row = self.db.execute(
                f"""SELECT * FROM {SCHEMA}.items WHERE state = 'ready' OR (state = 'leased' AND lease_expires < %s)
                    ORDER BY score DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
                (now,),
            ).fetchone()
            if row is None:
                return None
            self.db.execute(
                f"UPDATE {SCHEMA}.items SET state = 'leased', owner = %s, lease_expires = %s, attempts = attempts + 1, updated_at = %s WHERE id = %s",
                (owner, now + self.lease_seconds, now, row["id"]),
            )
            applicability = json.loads(row["payload"]).get("applicability") or Applicability.REVIEW.value
            self.db.execute(
                f"""INSERT INTO {SCHEMA}.reviews (item_id, attempt, owner, policy_id, applicability, leased_at) VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT (item_id, attempt) DO UPDATE SET owner = excluded.owner, policy_id = excluded.policy_id,
                    applicability = excluded.applicability, leased_at = excluded.leased_at, finished_at = NULL, outcome = NULL""",
                (row["id"], row["attempts"] + 1, owner, row["policy_id"], applicability, now),
            )
        return leased_item(row, owner)

    @_reported
    def ack(self, item_id: str, owner: str) -> None:
        """The reviewer accepted the fix: the item is done."""
        with self.db.transaction():
            row = self._leased(item_id, owner)
            self._close(row, "done", "accepted")

    @_reported
    def fail(self, item_id: str, owner: str, max_attempts: int = 3) -> str:
        """The reviewer rejected the fix: it comes back (a revised fix), failed for good after ``max_attempts``."""
        with self.db.transaction():
            row = self._leased(item_id, owner)
            state = after_rejection(row["attempts"], max_attempts)
            self._close(row, state, "rejected")
        return state

    @_reported
    def reviews(self) -> list[ReviewOutcome]:
        """Every finished review, oldest first: outcome and minutes from lease to verdict."""
        rows = self.db.execute(
            f"""SELECT item_id, policy_id, applicability, outcome, (finished_at - leased_at) / 60.0 AS minutes
                FROM {SCHEMA}.reviews WHERE outcome IS NOT NULL ORDER BY finished_at, item_id, attempt"""
        )
        return [review_outcome(r) for r in rows]

    @_reported
    def requeue(self, item_id: str) -> None:
        changed = self.db.execute(
            f"UPDATE {SCHEMA}.items SET state = 'ready', owner = NULL, lease_expires = NULL, updated_at = %s WHERE id = %s", (time.time(), item_id)
        ).rowcount
        if not changed:
            raise QueueError(f"no item {item_id}")

    @_reported
    def stats(self) -> dict:
        counts = {state: 0 for state in ("ready", "leased", "done", "failed")}
        with self.db.transaction():  # one snapshot for both counts
            for row in self.db.execute(f"SELECT state, COUNT(*) AS n FROM {SCHEMA}.items GROUP BY state"):
                counts[row["state"]] = row["n"]
            expired = self.db.execute(
                f"SELECT COUNT(*) AS n FROM {SCHEMA}.items WHERE state = 'leased' AND lease_expires < %s", (time.time(),)
            ).fetchone()["n"]
        return {**counts, "total": sum(counts.values()), "expired_leases": expired}

    def _close(self, row: dict, state: str, outcome: str) -> None:
        """Give the leased item its new state and record the review's outcome (inside the caller's transaction)."""
        now = time.time()
        self.db.execute(f"UPDATE {SCHEMA}.items SET state = %s, owner = NULL, lease_expires = NULL, updated_at = %s WHERE id = %s", (state, now, row["id"]))
        self.db.execute(
            f"UPDATE {SCHEMA}.reviews SET outcome = %s, finished_at = %s WHERE item_id = %s AND attempt = %s AND owner = %s",
            (outcome, now, row["id"], row["attempts"], row["owner"]),
        )

    def _leased(self, item_id: str, owner: str) -> dict:
        # FOR UPDATE: a worker taking the expired lease over waits for this verdict, or this one sees it moved.
        row = self.db.execute(f"SELECT * FROM {SCHEMA}.items WHERE id = %s FOR UPDATE", (item_id,)).fetchone()
        check_leased(row, item_id, owner)
        return row
