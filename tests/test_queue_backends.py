"""Issue 15, item 4: the review queue on both backends (SQLite and a real PostgreSQL
server) under failure: worker processes, one killed mid-lease, and the CLI's --queue URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from k8s_auto_fix.queue import open_queue
from k8s_auto_fix.queue.base import QueueError, queue_location

ITEMS = 120
# A worker: leases, records each id it acks (one line each, flushed before the
# ack so a kill cannot lose the record of an ack), and after PAUSE leases stops
# holding its lease until it is killed. It ends when every item is done.
WORKER = """
import json, sys, time
sys.path.insert(0, {src!r})
from k8s_auto_fix.queue import open_queue
url, name, log, pause = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
queue = open_queue(url, lease_seconds=1.5)
leases = 0
with open(log, "a") as out:
    while True:
        item = queue.next(name)
        if item is None:
            stats = queue.stats()
            if stats["done"] == {items}:
                break
            time.sleep(0.1)  # a lease still held (perhaps by a dead worker): it expires soon
            continue
        leases += 1
        if leases == pause:
            print(item["id"], flush=True)  # holding the lease; the test kills us now
            time.sleep(120)
        queue.ack(item["id"], name)
        out.write(json.dumps([item["id"], item["attempt"]]) + "\\n")
        out.flush()
"""


def test_four_workers_and_a_sigkill_mid_lease_lose_nothing_and_double_nothing(tmp_path, queue_url):
    queue = open_queue(queue_url, create=True)
    queue.enqueue([{"id": f"item-{n:03d}", "policy_id": "p", "score": n % 7} for n in range(ITEMS)])
    script = WORKER.format(src=str(REPO / "src"), items=ITEMS)
    logs = [tmp_path / f"w{n}.log" for n in range(4)]

    def start(n: int, pause: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", script, queue_url, f"w{n}", str(logs[n]), str(pause)], stdout=subprocess.PIPE, text=True)

    workers = [start(0, 1)]  # worker 0 stops holding its first lease
    try:
        held = workers[0].stdout.readline().strip()
        assert held.startswith("item-")
        workers += [start(n, 0) for n in (1, 2, 3)]
        while queue.stats()["done"] < ITEMS // 4 and any(w.poll() is None for w in workers[1:]):  # the others at work: kill worker 0 now
            time.sleep(0.05)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait()
        for w in workers[1:]:
            assert w.wait(180) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    acks = [json.loads(line) for log in logs if log.exists() for line in log.read_text().splitlines()]
    acked = [item for item, _ in acks]
    assert sorted(acked) == sorted(f"item-{n:03d}" for n in range(ITEMS))  # each item acked once: none lost, none doubled
    assert dict(acks)[held] == 2  # the killed worker's item was served again once its lease ran out
    assert held not in {json.loads(line)[0] for line in logs[0].read_text().splitlines()}  # not by the killed worker
    stats = queue.stats()
    assert stats["done"] == ITEMS and stats["total"] == ITEMS
    reviews = queue.reviews()
    assert len(reviews) == ITEMS and all(r.accepted for r in reviews)  # the dead worker's lease decided nothing
    queue.close()


def test_run_enqueues_into_the_queue_it_is_given(tmp_path, cli, postgres_url):
    out = tmp_path / "run"
    code, _, stderr = cli("run", str(REPO / "examples"), "--out", str(out), "--queue", postgres_url)
    assert code == 0, stderr
    assert not (out / "queue.db").exists()
    scheduled = json.loads((out / "schedule.json").read_text())
    queue = open_queue(postgres_url)
    assert queue.stats()["ready"] == len(scheduled) > 0
    assert queue.next("w")["id"] == scheduled[0]["id"]  # the head of the schedule


def test_a_postgres_schema_that_is_not_a_queue_is_never_made_one(postgres_url, cli):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE SCHEMA k8s_auto_fix")
        db.execute("CREATE TABLE k8s_auto_fix.users (name TEXT)")
    code, _, stderr = cli("queue", "init", "--queue", postgres_url)
    assert code == 2 and "not a queue" in stderr and "users" in stderr
    with psycopg.connect(postgres_url) as db:
        tables = [r[0] for r in db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'k8s_auto_fix'")]
    assert tables == ["users"]
    code, _, stderr = cli("queue", "stats", "--queue", postgres_url.rsplit("/", 1)[0] + "/postgres")
    assert code == 2 and "no queue here" in stderr


def test_queue_urls_and_their_errors(tmp_path, postgres_server):
    assert queue_location("sqlite:///queue.db").target == "queue.db"
    assert queue_location("sqlite:////tmp/q.db").target == "/tmp/q.db"
    assert queue_location("q.db") == queue_location("sqlite:///q.db")
    assert queue_location("postgresql://u:secret@h/db").shown == "postgresql://u:***@h/db"
    with pytest.raises(QueueError, match="unknown queue URL scheme"):
        queue_location("mysql://h/db")
    # A server that is not there: one line naming it, without the password.
    port = postgres_server.rsplit(":", 1)[1]
    with pytest.raises(QueueError, match=r"cannot connect") as err:
        open_queue(f"postgresql://u:secret@127.0.0.1:{port}/missing_db")
    assert "secret" not in str(err.value) and "u:***@" in str(err.value)
