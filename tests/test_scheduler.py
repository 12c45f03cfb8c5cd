"""The scheduler learning from review outcomes: the posterior terms, the queue's
record of reviews, and `schedule --history` reading a real queue.db."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from conftest import REPO

from k8s_auto_fix.config import ScheduleSettings
from k8s_auto_fix.contracts import Applicability, ReviewOutcome, Verdict
from k8s_auto_fix.queue import store
from k8s_auto_fix.queue.store import Queue
from k8s_auto_fix.schedule.score import ReviewEvidence, acceptance, build_schedule, expected_minutes, exploration

SAFE, REVIEW = Applicability.SAFE, Applicability.REVIEW


def review(check: str, accepted: bool, minutes: float, applicability: Applicability = REVIEW) -> ReviewOutcome:
    return ReviewOutcome(id=f"{check}-{minutes}", policy_id=check, applicability=applicability, accepted=accepted, minutes=minutes)


def test_acceptance_is_the_beta_posterior_with_the_prior_worth_prior_reviews():
    settings = ScheduleSettings(prior_reviews=4)
    evidence = ReviewEvidence.of([review("latest-tag", True, 5), review("latest-tag", False, 5), review("latest-tag", False, 5)])
    # Beta(4 * 0.9, 4 * 0.1) + 1 accept + 2 rejects -> mean (3.6 + 1) / (4 + 3)
    assert acceptance(0.9, "latest-tag", evidence, settings) == pytest.approx(4.6 / 7)
    assert acceptance(0.9, "host-port", evidence, settings) == 0.9  # no reviews: the prior
    # The old spelling is the same check.
    assert ReviewEvidence.of([review("no_latest_tag", False, 1)]).reviewed["latest-tag"] == 1


def test_evidence_replaces_the_static_priors_as_it_grows():
    settings = ScheduleSettings(prior_reviews=5)
    rejects = [review("latest-tag", n % 4 == 0, 20.0) for n in range(400)]  # a quarter accepted, 20 minutes each
    evidence = ReviewEvidence.of(rejects)
    assert acceptance(0.99, "latest-tag", evidence, settings) == pytest.approx(0.25, abs=0.01)
    assert expected_minutes(3.0, "latest-tag", REVIEW, evidence, settings) == pytest.approx(20.0, abs=0.3)
    # E[t] is per check and applicability: the safe fixes of the check have no evidence yet.
    assert expected_minutes(3.0, "latest-tag", SAFE, evidence, settings) == 3.0
    few = ReviewEvidence.of(rejects[:5])
    assert expected_minutes(3.0, "latest-tag", REVIEW, few, settings) == pytest.approx((5 * 3.0 + 5 * 20.0) / 10)


def test_the_exploration_bonus_is_zero_without_reviews_and_shrinks_with_a_checks_evidence():
    settings = ScheduleSettings(explore=0.5)
    assert exploration("latest-tag", ReviewEvidence(), settings) == 0.0
    others = [review("host-port", True, 1) for _ in range(50)]
    bonuses = [exploration("latest-tag", ReviewEvidence.of(others + [review("latest-tag", True, 1)] * n), settings) for n in (0, 1, 10, 50)]
    assert bonuses == sorted(bonuses, reverse=True) and bonuses[-1] < bonuses[0] / 4
    assert bonuses[0] == pytest.approx(0.5 * math.sqrt(math.log(51)))


def test_history_changes_the_order_the_way_smiths_rule_says():
    """Two checks with the same risk and static effort: once reviews show that
    one is rejected half the time and takes three times as long, the other goes first."""
    verdicts = [
        Verdict(id="a", policy_id="latest-tag", accepted=True, applicability=REVIEW, patch_ops=1),
        Verdict(id="b", policy_id="host-port", accepted=True, applicability=REVIEW, patch_ops=1),
    ]
    settings = ScheduleSettings(explore=0.0)
    static = build_schedule(verdicts, [], settings)
    assert static[0].p == static[1].p and static[0].Et == static[1].Et
    history = [review("latest-tag", n % 2 == 0, 33.0) for n in range(20)] + [review("host-port", True, 11.0) for _ in range(20)]
    learned = {i.id: i for i in build_schedule(verdicts, [], settings, history=history)}
    assert learned["a"].p < 0.7 < learned["b"].p and learned["a"].Et > 2.5 * learned["b"].Et
    assert learned["a"].reviews == learned["b"].reviews == 20
    assert learned["b"].score > learned["a"].score


class Clock:
    """A stand-in for the time module inside the queue: review durations without sleeping."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def time(self) -> float:
        return self.now


def test_ack_and_fail_record_outcome_and_duration_in_a_real_queue_db(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(store, "time", clock)
    db = tmp_path / "queue.db"
    queue = Queue(db, create=True)
    queue.enqueue([
        {"id": "a", "policy_id": "latest-tag", "score": 3, "applicability": "safe"},
        {"id": "b", "policy_id": "host-port", "score": 2, "applicability": "review"},
        {"id": "c", "policy_id": "host-port", "score": 1},
    ])
    assert queue.reviews() == []  # no lease yet: nothing to learn from
    assert queue.next("ann")["id"] == "a"
    clock.now += 4 * 60
    queue.ack("a", "ann")
    assert queue.next("bob")["id"] == "b"
    clock.now += 12 * 60
    assert queue.fail("b", "bob") == "ready"  # rejected: it comes back
    assert queue.next("bob")["id"] == "b"  # the revised fix, attempt 2
    clock.now += 6 * 60
    queue.ack("b", "bob")
    assert queue.next("cat")["id"] == "c"  # leased, never decided: not a review
    queue.close()

    reopened = Queue(db)
    outcomes = [(r.id, r.policy_id, r.applicability, r.accepted, round(r.minutes, 6)) for r in reopened.reviews()]
    assert outcomes == [("a", "latest-tag", SAFE, True, 4.0), ("b", "host-port", REVIEW, False, 12.0), ("b", "host-port", REVIEW, True, 6.0)]
    rows = sqlite3.connect(db).execute("SELECT item_id, attempt, owner, outcome FROM reviews ORDER BY leased_at").fetchall()
    assert rows == [("a", 1, "ann", "accepted"), ("b", 1, "bob", "rejected"), ("b", 2, "bob", "accepted"), ("c", 1, "cat", None)]


def test_a_queue_made_before_reviews_were_recorded_gets_the_table_on_its_first_lease(tmp_path):
    db = tmp_path / "old.db"
    queue = Queue(db, create=True)
    queue.enqueue([{"id": "a", "policy_id": "latest-tag", "score": 1}])
    queue.db.execute("DROP TABLE IF EXISTS reviews")  # the layout of earlier versions
    queue.close()
    old = Queue(db)
    assert old.reviews() == []
    old.next("w")
    old.ack("a", "w")
    assert [(r.id, r.accepted, r.applicability) for r in old.reviews()] == [("a", True, REVIEW)]


def test_schedule_history_reads_a_queue_db_and_updates_p_and_effort(tmp_path, cli, monkeypatch):
    """run -> review some items through the queue -> schedule --history: the reviewed
    checks' p and E[t] move towards what the reviewers did, the others keep their priors."""
    out = tmp_path / "run"
    code, _, stderr = cli("run", str(REPO / "examples"), "--out", str(out))
    assert code == 0, stderr
    items = json.loads((out / "schedule.json").read_text())
    clock = Clock()
    monkeypatch.setattr(store, "time", clock)
    queue = Queue(out / "queue.db")
    for _ in range(4):  # the reviewer rejects the first four fixes, after 40 minutes each
        item = queue.next("rev")
        clock.now += 40 * 60
        queue.fail(item["id"], "rev", max_attempts=1)
    queue.close()
    reviews = Queue(out / "queue.db").reviews()
    assert reviews and all(not r.accepted and r.minutes == pytest.approx(40.0) for r in reviews)

    args = ["schedule", "--verified", str(out / "verified.json"), "--detections", str(out / "detections.json"), "--risk", str(out / "risk.json")]
    code, _, stderr = cli(*args, "--history", str(out / "queue.db"), "--out", str(tmp_path / "learned.json"))
    assert code == 0, stderr
    assert f"learned from {len(reviews)} review(s)" in stderr
    learned = {i["id"]: i for i in json.loads((tmp_path / "learned.json").read_text())}
    settings = ScheduleSettings()
    for item in items:
        after = learned[item["id"]]
        checked = [r for r in reviews if r.policy_id == item["policy_id"]]
        if not checked:
            assert (after["p"], after["Et"], after["reviews"]) == (item["p"], item["Et"], 0)
            continue
        n = len(checked)
        assert after["reviews"] == n
        assert after["p"] == pytest.approx(settings.prior_reviews * item["p"] / (settings.prior_reviews + n), abs=1e-4)
        timed = [r for r in checked if r.applicability == item["applicability"]]
        expected = (settings.prior_reviews * item["Et"] + 40.0 * len(timed)) / (settings.prior_reviews + len(timed))
        assert after["Et"] == pytest.approx(expected, abs=1e-3)
    code, _, stderr = cli(*args, "--history", str(tmp_path / "missing.db"), "--out", str(tmp_path / "x.json"))
    assert code == 2 and "no queue here" in stderr
