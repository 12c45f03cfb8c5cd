"""Issue 11, items 8-10: the queue as a careless user and a stale worker use it."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import cli_process, write

from k8s_auto_fix.queue.store import Queue, QueueError

VERIFIED = json.dumps([{"id": f"i{n}", "policy_id": "p", "accepted": True, "gates": {}} for n in range(3)])


@pytest.mark.parametrize("args", [("queue", "next"), ("queue", "enqueue", "--verified", "VERIFIED"), ("queue", "requeue", "i0")], ids=["next", "enqueue", "requeue"])
def test_a_read_only_queue_is_one_line_and_its_own_exit_code(tmp_path, cli, args):
    db = tmp_path / "queue.db"
    verified = write(tmp_path, "verified.json", VERIFIED)
    assert cli("queue", "enqueue", "--db", str(db), "--verified", str(verified))[0] == 0
    db.chmod(0o444)
    try:
        result = cli_process(*[str(verified) if a == "VERIFIED" else a for a in args], "--db", str(db), as_user=True)
    finally:
        db.chmod(0o644)
    assert result.returncode == 2, result.stderr  # not 1, which `next` uses for "empty"
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "cannot be written" in result.stderr and str(db) in result.stderr


def _foreign_database(path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('alice')")
    db.commit()
    db.close()


def _schema(path) -> list:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("command", ["init", "enqueue"])
def test_someone_elses_database_is_never_made_a_queue(tmp_path, cli, command):
    db = tmp_path / "app.db"
    _foreign_database(db)
    before = _schema(db)
    extra = ["--verified", str(write(tmp_path, "verified.json", VERIFIED))] if command == "enqueue" else []
    code, _, stderr = cli("queue", command, "--db", str(db), *extra)
    assert code == 2 and "not a queue" in stderr and "users" in stderr
    assert _schema(db) == before
    with pytest.raises(QueueError, match="not a queue"):
        Queue(db, create=True)


def test_an_empty_file_becomes_a_queue(tmp_path, cli):
    db = tmp_path / "queue.db"
    db.write_bytes(b"")
    assert cli("queue", "init", "--db", str(db))[0] == 0
    assert cli("queue", "init", "--db", str(db))[0] == 0  # an existing queue is kept


def test_default_worker_ids_differ_and_a_stale_ack_is_refused(tmp_path, cli, queue_url):
    db = queue_url  # both backends, named by --queue URL
    verified = write(tmp_path, "verified.json", json.dumps([{"id": "only", "policy_id": "p", "accepted": True, "gates": {}}]))
    cli("queue", "enqueue", "--queue", db, "--verified", str(verified))
    code, out, _ = cli("queue", "next", "--queue", db, "--lease-seconds", "0")  # a lease that has already run out
    stale = json.loads(out)
    code, out, _ = cli("queue", "next", "--queue", db)  # another worker takes the item over
    current = json.loads(out)
    assert stale["id"] == current["id"] == "only" and stale["owner"] != current["owner"]
    assert len(stale["owner"].split(":")) == 3
    code, _, stderr = cli("queue", "ack", "only", "--queue", db, "--worker", stale["owner"])
    assert code == 2 and f"leased to {current['owner']}" in stderr
    assert cli("queue", "fail", "only", "--queue", db, "--worker", stale["owner"])[0] == 2
    assert cli("queue", "ack", "only", "--queue", db, "--worker", current["owner"])[0] == 0
    assert json.loads(cli("queue", "stats", "--queue", db)[1])["done"] == 1
