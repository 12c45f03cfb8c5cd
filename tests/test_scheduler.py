"""The scheduler learning from review outcomes (the posterior terms, the queue's
record of reviews, `schedule --history` reading a real queue.db) and the
simulation behind `bench scheduler` on worlds small enough to check by hand."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from conftest import REPO

from k8s_auto_fix.bench import scheduler as sim
from k8s_auto_fix.config import ScheduleSettings
from k8s_auto_fix.contracts import Applicability, ReviewOutcome, Verdict
from k8s_auto_fix.queue import open_queue, postgres, store
from k8s_auto_fix.queue.base import queue_location
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


def test_schedule_ages_a_fix_only_past_its_slack_by_hand():
    """Three fixes, one per check, each E[t] 40 minutes and p 2/3 (one accepted verdict on a
    Beta(1, 1) prior): an hour of expected review work each. a has waited 10 h, b 2 h, c is new.
    FIFO puts 1 h before a (itself), 2 h before b and 3 h before c. L is the largest drain
    time seen: 5 h from the previous schedule, so T = 4, 3 and 2 h, and only a ages."""
    from datetime import datetime, timedelta, timezone

    from k8s_auto_fix.contracts import ScheduleItem

    now = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
    verdicts = [Verdict(id=i, policy_id=check, accepted=True, applicability=REVIEW) for i, check in (("a", "latest-tag"), ("b", "host-port"), ("c", "privileged"))]
    settings = ScheduleSettings(explore=0.0, alpha=0.5, ageing_threshold=1.0, effort_minutes={SAFE: 2.0, REVIEW: 40.0, Applicability.MANUAL: 30.0})

    def before(item_id: str, hours: float, peak: float) -> ScheduleItem:
        return ScheduleItem(id=item_id, policy_id="x", score=0, R=0.5, p=1, Et=1, wait=0, kev=False, explore=0,
                            first_seen=(now - timedelta(hours=hours)).isoformat(), drain_peak=peak)

    base = 0.5 * (2 / 3) / 40
    items = {i.id: i for i in build_schedule(verdicts, [], settings, [before("a", 10, 5.0), before("b", 2, 0.0)], now=now)}
    assert {i: (items[i].T, items[i].wait) for i in items} == {"a": (4.0, 10.0), "b": (3.0, 2.0), "c": (2.0, 0.0)}
    assert items["a"].score == pytest.approx(base + 0.5 * 6, abs=1e-6) and items["b"].score == items["c"].score == pytest.approx(base, abs=1e-6)
    assert items["a"].drain_peak == 5.0
    # Without the earlier peak L is today's 3 h: T = 2, 1 and 0 h, and b ages too.
    items = {i.id: i for i in build_schedule(verdicts, [], settings, [before("a", 10, 0.0), before("b", 2, 0.0)], now=now)}
    assert [items[i].T for i in "abc"] == [2.0, 1.0, 0.0] and items["a"].drain_peak == 3.0
    assert items["b"].score == pytest.approx(base + 0.5 * 1, abs=1e-6)
    # A fix the reviewers accepted is no longer in the backlog: only b and c are ahead of anything.
    accepted = [ReviewOutcome(id="a", policy_id="latest-tag", applicability=REVIEW, accepted=True, minutes=40.0)]
    items = {i.id: i for i in build_schedule(verdicts, [], settings, [before("a", 10, 0.0), before("b", 2, 0.0)], now=now, history=accepted)}
    assert [items[i].T for i in "abc"] == [2.0, 1.0, 0.0] and items["a"].drain_peak == 2.0
    # Three reviewers' capacity drains the same backlog in a third of the time.
    items = {i.id: i for i in build_schedule(verdicts, [], settings.model_copy(update={"review_capacity": 3.0}), now=now)}
    assert items["c"].drain_peak == 1.0 and items["c"].T == 0.0


class Clock:
    """A stand-in for the time module inside the queue: review durations without sleeping."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def time(self) -> float:
        return self.now


def _review_rows(url: str) -> list[tuple]:
    """The reviews table as the database holds it (not through the queue's own reading)."""
    sql = "SELECT item_id, attempt, owner, outcome FROM {}reviews ORDER BY leased_at"
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as db:
            return db.execute(sql.format("k8s_auto_fix.")).fetchall()
    return sqlite3.connect(queue_location(url).target).execute(sql.format("")).fetchall()


def test_ack_and_fail_record_outcome_and_duration_in_a_real_queue_db(queue_url, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(store, "time", clock)
    monkeypatch.setattr(postgres, "time", clock)
    db = queue_url
    queue = open_queue(db, create=True)
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

    reopened = open_queue(db)
    outcomes = [(r.id, r.policy_id, r.applicability, r.accepted, round(r.minutes, 6)) for r in reopened.reviews()]
    assert outcomes == [("a", "latest-tag", SAFE, True, 4.0), ("b", "host-port", REVIEW, False, 12.0), ("b", "host-port", REVIEW, True, 6.0)]
    assert _review_rows(db) == [("a", 1, "ann", "accepted"), ("b", 1, "bob", "rejected"), ("b", 2, "bob", "accepted"), ("c", 1, "cat", None)]


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


# --- the simulation behind `bench scheduler` ----------------------------------------


def fix(index: int, risk: float, effort: float, check: str = "latest-tag", exploited: float | None = None, images=()) -> sim.Fix:
    return sim.Fix(index, f"f{index}", check, REVIEW, effort, 1.0, risk, exploited if exploited is not None else risk, False, f"file{index}.yaml", tuple(images))


def world(fixes, reviews, accept_rate=None, effort_factor=None, cve_fraction=0.0, cve_image=None, start=None) -> sim.Truth:
    checks = {f.check for f in fixes}
    return sim.Truth(
        accept_rate or {c: 1.0 for c in checks},
        effort_factor or {(f.check, f.applicability): 1.0 for f in fixes},
        reviews,
        start or [0.0] * len(fixes),
        cve_fraction,
        cve_image,
    )


def risk_hours(fixes, scenario, policy) -> float:
    run = sim.simulate(fixes, scenario, policy)
    return sim.measure(sim.stays(fixes, scenario, run), run)["risk_hours"]


def test_one_reviewer_the_scheduler_is_smiths_rule_and_beats_fifo_risk_only_and_shortest_first():
    """Three fixes waiting at the start, reviewed in exactly E[t], all accepted.
    Risk-hours by hand: FIFO and risk-only serve A, B, C (done at 1.0, 1.1, 1.6 h):
    1.0 * 1.0 + 0.25 * 1.1 + 0.25 * 1.6 = 1.675. Shortest first serves B, C, A:
    0.25 * 0.1 + 0.25 * 0.6 + 1.0 * 1.6 = 1.775. R / E[t] serves B, A, C:
    0.25 * 0.1 + 1.0 * 1.1 + 0.25 * 1.6 = 1.525, the least of all six orders."""
    fixes = [fix(0, 1.0, 60), fix(1, 0.25, 6), fix(2, 0.25, 30)]
    truth = world(fixes, [[(True, f.effort)] * 3 for f in fixes])
    scenario = sim.Scenario(truth, reviewers=1, horizon=2.0, round_hours=8.0)
    settings = ScheduleSettings(alpha=0.0)
    fifo, risk, shortest = sim.baselines()
    assert risk_hours(fixes, scenario, fifo) == pytest.approx(1.675, abs=1e-3)
    assert risk_hours(fixes, scenario, risk) == pytest.approx(1.675, abs=1e-3)
    assert risk_hours(fixes, scenario, shortest) == pytest.approx(1.775, abs=1e-3)
    run = sim.simulate(fixes, scenario, sim.scheduler_policy(settings, learns=False))
    measured = sim.measure(sim.stays(fixes, scenario, run), run)
    assert measured["risk_hours"] == pytest.approx(1.525, abs=1e-3)
    assert [round(t, 3) for t in run.merged_at] == [1.1, 0.1, 1.6]
    assert measured["t50_h"] == 1.1 and measured["longest_wait_h"] == 1.6 and measured["merged"] == 3
    # Two reviewers share the work: B and A start at once.
    two = sim.simulate(fixes, sim.Scenario(truth, 2, 2.0, 8.0), sim.scheduler_policy(settings, learns=False))
    assert [round(t, 3) for t in two.merged_at] == [1.0, 0.1, 0.6]


def test_rejected_fixes_come_back_next_round_and_fail_for_good_after_three_rejections():
    fixes = [fix(0, 0.5, 6), fix(1, 0.25, 6)]
    truth = world(fixes, [[(False, 6.0)] * 3, [(False, 6.0), (True, 6.0), (True, 6.0)]])
    scenario = sim.Scenario(truth, reviewers=1, horizon=10.0, round_hours=1.0)
    run = sim.simulate(fixes, scenario, sim.baselines()[0])
    # 0-0.1 f0 rejected, 0.1-0.2 f1 rejected; both back at 1.0: f0 rejected, f1 accepted at 1.2; f0 back at 2.0, rejected for good at 2.1.
    assert run.attempts == [3, 2]
    assert run.merged_at[0] is None and run.failed_at[0] == pytest.approx(2.1)
    assert run.merged_at[1] == pytest.approx(1.2)
    found = sim.stays(fixes, scenario, run)
    measured = sim.measure(found, run)
    # A fix rejected for good stops waiting, but its risk stays until the horizon.
    assert measured["longest_wait_h"] == 2.1 and measured["failed"] == 1
    assert measured["risk_hours"] == pytest.approx(0.5 * 10 + 0.25 * 1.2, abs=1e-3)
    assert sim.risk_curve(found, 10.0, points=11)[:3] == [0.75, 0.75, 0.5]


def test_a_published_cve_raises_r_and_turns_fixes_kev_mid_run():
    """Four equal fixes of 30 minutes; at 1 h a CVE hits f3's image. The scheduler
    takes f3 next (KEV); FIFO leaves it last, at its raised risk."""
    fixes = [fix(n, 0.25, 30) for n in range(3)] + [fix(3, 0.25, 30, exploited=0.475, images=["app:1"])]
    truth = world(fixes, [[(True, 30.0)] * 3 for _ in fixes], cve_fraction=0.25, cve_image="app:1")
    scenario = sim.Scenario(truth, reviewers=1, horizon=4.0, round_hours=8.0)
    run = sim.simulate(fixes, scenario, sim.scheduler_policy(ScheduleSettings(alpha=0.0), learns=False))
    assert [round(t, 2) for t in run.merged_at] == [0.5, 1.0, 2.0, 1.5]
    assert run.kev_hours == pytest.approx(0.5)
    found = sim.stays(fixes, scenario, run)
    # f3: 0.25 for the first hour, 0.475 for the next half hour.
    assert sum(s.risk_hours() for s in found) == pytest.approx(0.125 + 0.25 + 0.5 + 0.25 + 0.475 * 0.5)
    assert risk_hours(fixes, scenario, sim.baselines()[0]) == pytest.approx(0.125 + 0.25 + 0.375 + 0.25 + 0.475)


def learning_world(count: int = 300):
    """Two checks the priors cannot tell apart: reviewers reject most fixes of
    one and take three times as long on them; the other is quick and accepted."""
    import random

    rng = random.Random(7)
    fixes = [fix(n, 0.25, 10.0, check="slow-check" if n % 2 else "quick-check") for n in range(count)]
    accept = {"slow-check": 0.2, "quick-check": 0.9}
    factor = {("slow-check", REVIEW): 3.0, ("quick-check", REVIEW): 0.5}
    reviews = [[(rng.random() < accept[f.check], 10.0 * factor[f.check, REVIEW]) for _ in range(3)] for f in fixes]
    return fixes, world(fixes, reviews, accept, factor)


def test_learning_from_reviews_closes_most_of_the_gap_to_the_oracle():
    fixes, truth = learning_world()
    scenario = sim.Scenario(truth, reviewers=1, horizon=truth.work_hours() * 1.1, round_hours=2.0)
    settings = ScheduleSettings(alpha=0.0)
    static_run = sim.simulate(fixes, scenario, sim.scheduler_policy(settings, learns=False))
    static = sim.measure(sim.stays(fixes, scenario, static_run), static_run)["risk_hours"]
    assert static_run.reviews_learned == 0  # the static priors never see a review
    oracle = risk_hours(fixes, scenario, sim.oracle_policy(truth, settings))
    learned_run = sim.simulate(fixes, scenario, sim.scheduler_policy(settings, learns=True), sim.estimate_error(fixes, truth, settings))
    learned = sim.measure(sim.stays(fixes, scenario, learned_run), learned_run)["risk_hours"]
    assert oracle < learned < static
    assert learned_run.reviews_learned > len(fixes) / 2
    assert (static - learned) / (static - oracle) > 0.8
    errors = [e for _, e in learned_run.index_error]
    assert errors[0] > 1.0 and errors[-1] < 0.2  # the static priors are far off; the reviews bring the estimates in


def starving_world():
    """Ten slow fixes (20 minutes, accepted half the time) wait at the start while quick
    ones keep arriving, accepted at once and enough to take 95% of the reviewer's time."""
    import random

    rng = random.Random(3)
    fixes = [fix(n, 0.25, 10.0, check="slow-check" if n < 10 else "quick-check") for n in range(300)]
    accept = {"slow-check": 0.5, "quick-check": 1.0}
    factor = {("slow-check", REVIEW): 2.0, ("quick-check", REVIEW): 0.5}
    reviews = [[(rng.random() < accept[f.check], 10.0 * factor[f.check, REVIEW]) for _ in range(3)] for f in fixes]
    quick_hours = 290 * 5.0 / 60
    start = [0.0 if n < 10 else (n - 10) / 290 for n in range(300)]
    truth = world(fixes, reviews, accept, factor, start=start)
    return fixes, truth, sim.Scenario(truth, reviewers=1, horizon=quick_hours / 0.95, round_hours=2.0)


def test_ageing_past_the_slack_bounds_the_longest_wait_and_costs_risk_hours():
    """Without ageing the slow fixes starve until the horizon. Ageing serves them, at a
    cost in risk-hours; a larger L (ageing_threshold) lets them wait longer and costs
    less. Every run stays within its bound, and the longest wait lands near L."""
    fixes, truth, scenario = starving_world()
    fifo_run = sim.simulate(fixes, scenario, sim.baselines()[0])
    assert sim.wait_bound(fifo_run, 0.0, scenario) is None  # no ageing: no bound
    rows = []
    for alpha, threshold in ((0.0, 1.0), (1.0, 2.0), (1.0, 1.0), (1.0, 0.5)):
        run = sim.simulate(fixes, scenario, sim.oracle_policy(truth, ScheduleSettings(alpha=alpha, ageing_threshold=threshold)))
        rows.append((sim.measure(sim.stays(fixes, scenario, run), run), run, sim.wait_bound(run, alpha, scenario)))
    (free, _, _), *aged = rows
    waits = [free["longest_wait_h"]] + [row["longest_wait_h"] for row, _, _ in aged]
    costs = [free["risk_hours"]] + [row["risk_hours"] for row, _, _ in aged]
    assert waits[0] == pytest.approx(scenario.horizon, abs=0.1)
    assert waits == sorted(waits, reverse=True) and len(set(waits)) == 4
    assert costs == sorted(costs) and len(set(costs)) == 4
    for row, run, bound in aged:
        assert row["longest_wait_h"] <= bound
        # The oracle's backlog estimate is the true expected work, so the wait lands near L.
        assert row["longest_wait_h"] <= run.threshold_max + 2 * scenario.round_hours
    # The largest backlog, at the start: the slow fixes' 20 minutes / 0.5 each, and the first quick fix's 5 minutes.
    assert aged[1][1].peak_drain == pytest.approx((10 * 20 / 0.5 + 5) / 60)
    assert aged[0][1].threshold_max == pytest.approx(2 * aged[0][1].peak_drain)


def test_fixes_that_arrived_together_keep_smiths_order_whatever_the_ageing():
    """The three fixes of the first test, all at the start: they share T and so
    their ageing, so even a huge alpha leaves R * p / E[t]'s order (B, A, C)."""
    fixes = [fix(0, 1.0, 60), fix(1, 0.25, 6), fix(2, 0.25, 30)]
    truth = world(fixes, [[(True, f.effort)] * 3 for f in fixes])
    scenario = sim.Scenario(truth, reviewers=1, horizon=2.0, round_hours=8.0)
    for threshold in (0.0, 1.0):
        run = sim.simulate(fixes, scenario, sim.scheduler_policy(ScheduleSettings(alpha=100.0, ageing_threshold=threshold), learns=False))
        assert [round(t, 3) for t in run.merged_at] == [1.1, 0.1, 1.6]
    # T by hand: L = 1.5 x the drain time of the 96 minutes of work (p = 1), less the same 1.6 h ahead of each.
    queue = sim.Queue(sim.scheduler_policy(ScheduleSettings(alpha=1.0, ageing_threshold=1.5), learns=False), sim.ReviewEvidence(), 1)
    for f in fixes:
        queue.push(sim.FixClass(f.check, f.applicability, f.effort, f.prior_p, f.risk, f.kev), 0.0, f.index)
    queue.schedule(0.0)
    assert queue.limit == pytest.approx(1.5 * 1.6) and queue.threshold(0.0) == pytest.approx(1.5 * 1.6 - 1.6)


def test_a_younger_fix_is_overtaken_once_an_older_one_runs_out_of_slack():
    """More work than one reviewer can do: A (an hour, low rank) waits at the start, and a
    half-hour, high-rank B arrives every half hour, the first with A. Without ageing A waits
    for every B. With it, L = 1 x the largest drain time, 1 h of A + 0.5 h of B1 = 1.5 h;
    once B1 is done only A is older than the Bs, so A's T = 1.5 - 1 = 0.5 h."""
    fixes = [fix(0, 0.25, 60)] + [fix(n, 1.0, 30) for n in range(1, 7)]
    truth = world(fixes, [[(True, f.effort)] * 3 for f in fixes], start=[0.0] + [(n - 1) / 6 for n in range(1, 7)])
    scenario = sim.Scenario(truth, reviewers=1, horizon=3.0, round_hours=0.25)
    unaged = sim.simulate(fixes, scenario, sim.scheduler_policy(ScheduleSettings(alpha=0.0), learns=False))
    assert unaged.merged_at[0] is None  # B after B: A never gets its turn within the horizon
    aged = sim.simulate(fixes, scenario, sim.scheduler_policy(ScheduleSettings(alpha=10.0, ageing_threshold=1.0), learns=False))
    # 0-0.5 B1 (A's wait 0 < T); at 0.5 A has waited 0.5 = T, B2 still wins on rank; at 1.0 A is 0.5 h past T: 5 > the rank gap.
    assert [round(t, 3) for t in aged.merged_at[:3]] == [2.0, 0.5, 1.0]


def test_the_world_is_drawn_from_the_seed_and_a_files_fixes_arrive_together():
    fixes = [sim.Fix(n, f"f{n}", "latest-tag" if n % 3 else "host-port", REVIEW, 11.0, 0.99, 0.25, 0.475, False, f"file{n // 4}.yaml", ("nginx",) if n < 6 else ())
             for n in range(40)]
    first, again, other = sim.draw_truth(fixes, 1, 0.5), sim.draw_truth(fixes, 1, 0.5), sim.draw_truth(fixes, 2, 0.5)
    assert first == again and first != other
    for n in range(0, 40, 4):
        assert len(set(first.start_fraction[n:n + 4])) == 1
    assert all(sim.ACCEPT_RATE[0] <= p <= sim.ACCEPT_RATE[1] for p in first.accept_rate.values())
    assert first.cve_image == "nginx" and 0 <= first.cve_fraction <= 0.5
    assert sim.draw_truth(fixes, 1, 1.0).start_fraction == [0.0] * 40


def test_the_default_threshold_is_the_fairest_that_meets_the_risk_target_for_every_team_size():
    """bench scheduler picks the smallest ageing_threshold (the shortest longest wait)
    whose risk-hours are within the target for 1 and 3 reviewers alike."""

    def panel(ratios):
        return {"ageing": [{"alpha": 0.0, "ageing_threshold": 1.2, "ratio_to_fifo": 0.6}]
                + [{"alpha": 0.01, "ageing_threshold": m, "ratio_to_fifo": r} for m, r in ratios.items()]}

    one = panel({1.0: 0.75, 1.1: 0.71, 1.2: 0.69, 1.5: 0.66})
    three = panel({1.0: 0.74, 1.1: 0.70, 1.2: 0.69, 1.5: 0.67})
    assert sim.fairest_on_target([one, three], 0.01) == 1.2  # 1.1 meets it for three reviewers only
    assert sim.fairest_on_target([three], 0.01) == 1.1
    assert sim.fairest_on_target([panel({1.0: 0.8})], 0.01) is None  # the no-ageing row does not count
