"""bench scheduler: a simulated review queue, judged on what the scheduler optimises.

The fixes are a run's accepted fixes, each with its check, applicability,
static E[t], verifier prior p, risk and images. One seeded world is drawn, and
every policy meets the same one:

- **The reviewers' truth differs from the priors.** They accept a check's
  fixes with a probability drawn from ``ACCEPT_RATE`` (the static prior is the
  verifier's record, near 1), and a fix of a check and applicability takes them
  its static E[t] times a factor drawn from LogNormal(0, ``EFFORT_SPREAD``).
  Each review's minutes scatter around that mean. Outcome and minutes are drawn
  once per fix and attempt, so all policies see the same reviews.
- **Arrivals come in bursts.** All fixes of one manifest file arrive together:
  a repository onboarded (in the corpus's the-stack every file comes from its
  own repository). A ``start_share`` of the files wait at the start; the rest
  arrive at uniform times over the horizon. The horizon is the time k reviewers
  need for all the corpus's review work at the given ``load``.
- **A CVE is published** at a time drawn in the first half of the horizon: one
  image (drawn with the weight of its fixes) gets a known-exploited CVE with
  EPSS ``KEV_EPSS``. Its fixes turn KEV and their R rises as risk/score.py
  computes it.
- **Rejected fixes come back**, revised, at the next round, until the queue's
  ``MAX_ATTEMPTS``, as ``queue fail`` does.
- **k reviewers** each take the next item in the policy's order when free.

Policies: ``fifo`` (first arrival first), ``risk`` (highest R), ``shortest``
(lowest static E[t]), ``static`` (the scheduler's score with the static
priors), ``scheduler`` (the same score learning p and E[t] from the reviews
finished before each round, as ``schedule --history`` does), and ``oracle``
(the score with the true p and E[t]). Every policy breaks ties by first
arrival. The scheduler's terms come from schedule/score.py itself, ageing
included: each round is a schedule, which sets every waiting fix's T from the
policy's own p and E[t] (the oracle's: the true ones) and k reviewers' capacity.

Measured: risk-hours (the integral of the risk waiting, from arrival until a
fix is accepted; unmerged fixes count until the horizon), the time until 50%
and 90% of the risk is removed, P50/P95 waits overall and for the top decile
by R, and the longest wait.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..checks.aliases import normalise
from ..config import ScheduleSettings
from ..contracts import Applicability, Detection, RiskRecord, ScheduleItem
from ..risk.score import risk_value
from ..schedule.score import ReviewEvidence, acceptance, ageing, ageing_limit, base_score, drain_ahead, expected_minutes, exploration, review_work

ACCEPT_RATE = (0.4, 0.95)  # reviewers' true acceptance of a check's fixes: uniform in this range
EFFORT_SPREAD = 0.5  # true minutes of a check and applicability: static E[t] x LogNormal(0, this)
REVIEW_SPREAD = 0.5  # one review's minutes around that mean: LogNormal(-s^2/2, s), mean 1
KEV_EPSS = 0.9  # the published CVE's EPSS (known-exploited CVEs mostly score above)
MAX_ATTEMPTS = 3  # `queue fail`'s default: rejected three times, failed for good
CHECKPOINTS = 10  # points of the horizon at which the learning is reported
CURVE_POINTS = 200


@dataclass(frozen=True)
class Fix:
    index: int  # the position in id order: the last tie-break
    id: str
    check: str
    applicability: Applicability
    effort: float  # static E[t], minutes
    prior_p: float  # the verifier's record of the check
    risk: float
    risk_exploited: float  # R once one of its images has a known-exploited CVE
    kev: bool
    unit: str  # the manifest file: its fixes arrive together
    images: tuple[str, ...]


class FixClass(NamedTuple):
    """Everything a policy ranks by: fixes of one class are interchangeable but for their age."""

    check: str
    applicability: Applicability
    effort: float
    prior_p: float
    risk: float
    kev: bool


def fixes_of(schedule: Sequence[ScheduleItem], detections: Sequence[Detection], risks: Sequence[RiskRecord]) -> list[Fix]:
    """The fixes of a schedule made without history (as `run` makes it): its p and E[t] are the static priors."""
    unit = {d.id: d.manifest_path for d in detections}
    risk_by_id = {r.id: r for r in risks}
    fixes = []
    for index, item in enumerate(sorted(schedule, key=lambda s: s.id)):
        record = risk_by_id.get(item.id)
        exploited = risk_value(record.severity_weight, record.exposure, max(record.max_epss, KEV_EPSS)) if record else item.R
        fixes.append(
            Fix(index, item.id, normalise(item.policy_id), item.applicability, item.Et, item.p, item.R, max(item.R, exploited), item.kev,
                unit.get(item.id, item.id), tuple(record.images) if record else ())
        )
    return fixes


@dataclass
class Truth:
    """The reviewers' behaviour, drawn once: what the priors do not know."""

    accept_rate: dict[str, float]
    effort_factor: dict[tuple[str, Applicability], float]
    reviews: list[list[tuple[bool, float]]]  # per fix, per attempt: (accepted, minutes)
    start_fraction: list[float]  # per fix: arrival as a fraction of the horizon
    cve_fraction: float
    cve_image: str | None

    def work_hours(self, index: int | None = None) -> float:
        """The review time of every attempt until a fix is accepted or fails for good: of one fix, or of all."""
        total = 0.0
        for attempts in self.reviews if index is None else [self.reviews[index]]:
            for accepted, minutes in attempts:
                total += minutes / 60
                if accepted:
                    break
        return total


def draw_truth(fixes: Sequence[Fix], seed: int, start_share: float) -> Truth:
    """One random stream per part of the world, so that changing the arrivals
    (``start_share``) leaves the reviewers and the CVE as they were."""

    def stream(part: str) -> random.Random:
        return random.Random(f"{seed}:{part}")

    people, reviewing, arriving, cve = stream("reviewers"), stream("reviews"), stream("arrivals"), stream("cve")
    checks = sorted({f.check for f in fixes})
    accept_rate = {c: people.uniform(*ACCEPT_RATE) for c in checks}
    groups = sorted({(f.check, f.applicability) for f in fixes})
    effort_factor = {g: people.lognormvariate(0.0, EFFORT_SPREAD) for g in groups}
    reviews = []
    for fix in fixes:
        mean = fix.effort * effort_factor[fix.check, fix.applicability]
        reviews.append([
            (reviewing.random() < accept_rate[fix.check], mean * reviewing.lognormvariate(-REVIEW_SPREAD**2 / 2, REVIEW_SPREAD))
            for _ in range(MAX_ATTEMPTS)
        ])
    units = sorted({f.unit for f in fixes})
    draws = {u: (arriving.random(), arriving.random()) for u in units}
    unit_start = {u: 0.0 if waiting < start_share else when for u, (waiting, when) in draws.items()}
    weights = Counter(image for f in fixes for image in f.images)
    images = sorted(weights)
    cve_image = cve.choices(images, weights=[weights[i] for i in images])[0] if images else None
    return Truth(accept_rate, effort_factor, reviews, [unit_start[f.unit] for f in fixes], cve.uniform(0.0, 0.5), cve_image)


@dataclass
class Scenario:
    """The truth on a time axis for k reviewers: the horizon is k reviewers' time for all the work at ``load``."""

    truth: Truth
    reviewers: int
    horizon: float
    round_hours: float

    @classmethod
    def of(cls, truth: Truth, reviewers: int, load: float, round_hours: float) -> Scenario:
        return cls(truth, reviewers, truth.work_hours() / (reviewers * load), round_hours)

    def arrival(self, fix: Fix) -> float:
        return self.truth.start_fraction[fix.index] * self.horizon

    @property
    def cve_at(self) -> float:
        return self.truth.cve_fraction * self.horizon

    def exploited(self, fix: Fix) -> bool:
        return self.truth.cve_image is not None and self.truth.cve_image in fix.images


# --- policies -----------------------------------------------------------------------


@dataclass
class Policy:
    """Serves the class whose oldest fix has the highest rank + ageing, the
    schedule's alpha * max(0, wait - T). ``effort`` is the policy's E[t] of a
    class and ``p`` its acceptance, from which T (each fix's slack) is computed at each schedule."""

    name: str
    rank: Callable[[FixClass, ReviewEvidence], float]
    settings: ScheduleSettings | None = None  # alpha, ageing_threshold, review_capacity; None: no ageing
    learns: bool = False
    effort: Callable[[FixClass, ReviewEvidence], float] | None = None
    p: Callable[[FixClass, ReviewEvidence], float] | None = None

    @property
    def ages(self) -> bool:
        return self.settings is not None and self.settings.alpha > 0


def baselines() -> list[Policy]:
    return [
        Policy("fifo", lambda c, e: 0.0),
        Policy("risk", lambda c, e: c.risk),
        Policy("shortest", lambda c, e: -c.effort),
    ]


def scheduler_policy(settings: ScheduleSettings, learns: bool) -> Policy:
    """The schedule command's score; without learning the evidence stays empty: the static priors."""

    def effort(c: FixClass, evidence: ReviewEvidence) -> float:
        return expected_minutes(c.effort, c.check, c.applicability, evidence, settings)

    def p(c: FixClass, evidence: ReviewEvidence) -> float:
        return acceptance(c.prior_p, c.check, evidence, settings)

    def rank(c: FixClass, evidence: ReviewEvidence) -> float:
        return base_score(c.risk, p(c, evidence), effort(c, evidence), exploration(c.check, evidence, settings), c.kev, settings)[0]

    return Policy("scheduler" if learns else "static", rank, settings, learns, effort, p)


def oracle_policy(truth: Truth, settings: ScheduleSettings) -> Policy:
    """The score with the true acceptance rate and minutes: nothing to learn, nothing to explore."""

    def effort(c: FixClass, evidence: ReviewEvidence) -> float:
        return c.effort * truth.effort_factor[c.check, c.applicability]

    def rank(c: FixClass, evidence: ReviewEvidence) -> float:
        return base_score(c.risk, truth.accept_rate[c.check], effort(c, evidence), 0.0, c.kev, settings)[0]

    return Policy("oracle", rank, settings, effort=effort, p=lambda c, evidence: truth.accept_rate[c.check])


# --- the simulation -----------------------------------------------------------------


@dataclass
class Run:
    merged_at: list[float | None]  # when the fix was accepted (None: not within the horizon)
    failed_at: list[float | None]  # when it was rejected for the last time (failed for good)
    attempts: list[int]
    index_error: list[tuple[float, float]] = field(default_factory=list)  # (time, mean relative error of p/E[t])
    rank_spread: float = 0.0  # the widest gap between two ranks the policy used, KEV bonus left out
    threshold_max: float = 0.0  # the largest L (hours) the policy aged by: no fix's T was larger
    peak_drain: float = 0.0  # the largest drain time of the backlog the policy estimated (hours)
    backlog_max: float = 0.0  # the largest review work (true hours, every attempt to come) waiting, per reviewer
    kev_hours: float = 0.0  # review time spent on known-exploited fixes
    reviews_learned: int = 0  # reviews the policy's ranks were learned from


class Queue:
    """Waiting fixes by class, each class oldest first. Fixes of a class differ
    only in their age, and ageing grows with the wait, so a class's oldest fix
    is its best: a pop compares the head of each non-empty class."""

    def __init__(self, policy: Policy, evidence: ReviewEvidence, reviewers: int):
        self.policy, self.evidence = policy, evidence
        # The bench's hours are the reviewers' working hours: k reviewers are a capacity of k.
        self.settings = policy.settings.model_copy(update={"review_capacity": reviewers}) if policy.ages else None
        self.waiting: dict[FixClass, list[tuple[float, int]]] = {}
        self.ranks: dict[FixClass, float] = {}
        self.heads: dict[FixClass, tuple[float, int]] = {}
        self.scheduled = False  # T is set by a schedule; before the first, there is none
        self.arrivals: list[float] = []  # the waiting fixes' arrivals at the last schedule, in order
        self.ahead: list[float] = []  # the drain time of the fixes arrived by then (what FIFO puts first)
        self.limit = self.peak = self.threshold_max = 0.0
        self.thresholds: dict[FixClass, float] = {}  # T of each class's oldest fix
        self.low, self.high = math.inf, -math.inf

    def push(self, cls: FixClass, arrival: float, index: int) -> None:
        if cls not in self.ranks:
            self._rank(cls)
        heap = self.waiting.setdefault(cls, [])
        heapq.heappush(heap, (arrival, index))
        self._head(cls)

    def pop(self, now: float) -> tuple[FixClass, int]:
        ranks, heads = self.ranks, self.heads
        if self.settings is None:
            cls = max(heads, key=lambda c: (ranks[c], -heads[c][0], -heads[c][1]))
        else:
            if not self.scheduled:
                self.schedule(now)
            settings, thresholds = self.settings, self.thresholds
            cls = max(heads, key=lambda c: (ranks[c] + ageing(now - heads[c][0], thresholds[c], settings), -heads[c][0], -heads[c][1]))
        _, index = heapq.heappop(self.waiting[cls])
        self._head(cls)
        return cls, index

    def _head(self, cls: FixClass) -> None:
        """A class's oldest fix, and its T, after a push or a pop."""
        heap = self.waiting[cls]
        if not heap:
            self.heads.pop(cls, None)
            return
        self.heads[cls] = heap[0]
        if self.scheduled:
            self.thresholds[cls] = self.threshold(heap[0][0])

    def threshold(self, arrival: float) -> float:
        """T of a fix that arrived then: L less the drain time of the fixes waiting at the last schedule that
        arrived no later (all of them, for a fix that arrived after it)."""
        at = bisect.bisect_right(self.arrivals, arrival)
        return self.limit - (self.ahead[at - 1] if at else 0.0)

    def schedule(self, now: float) -> None:
        """What `schedule` does when it runs: T of every waiting fix, from the policy's p and E[t] now."""
        if self.settings is None:
            return
        self.scheduled = True
        waiting = sorted((arrival, review_work(self.policy.p(cls, self.evidence), self.policy.effort(cls, self.evidence)))
                         for cls, heap in self.waiting.items() for arrival, _ in heap)
        self.arrivals = [arrival for arrival, _ in waiting]
        self.ahead = drain_ahead([now - arrival for arrival in self.arrivals], [work for _, work in waiting], self.settings)
        self.limit, self.peak = ageing_limit(self.ahead[-1] if self.ahead else 0.0, self.peak, self.settings)
        self.threshold_max = max(self.threshold_max, self.limit)
        self.thresholds = {cls: self.threshold(head[0]) for cls, head in self.heads.items()}

    def rerank(self) -> None:
        for cls in self.ranks:
            self._rank(cls)

    def drain(self) -> list[int]:
        """Every waiting fix, emptied out (to be pushed again under new classes)."""
        indexes = [index for heap in self.waiting.values() for _, index in heap]
        self.waiting.clear()
        self.heads.clear()
        return indexes

    def __bool__(self) -> bool:
        return bool(self.heads)

    def _rank(self, cls: FixClass) -> None:
        rank = self.ranks[cls] = self.policy.rank(cls, self.evidence)
        if self.policy.settings is not None:
            rank -= self.policy.settings.kev_bonus if cls.kev else 0.0
        self.low, self.high = min(self.low, rank), max(self.high, rank)


def simulate(fixes: Sequence[Fix], scenario: Scenario, policy: Policy, watch: Callable[[ReviewEvidence], float] | None = None) -> Run:
    """Event by event: reviewers take the queue's best item when free; the world
    (rounds, the CVE, returns, arrivals) is brought up to each moment first.
    ``fixes[i].index`` is ``i``. A learning policy sees the reviews finished by
    each round (the others never do); ``watch`` is called with that evidence."""
    truth, horizon, step = scenario.truth, scenario.horizon, scenario.round_hours
    evidence = ReviewEvidence()
    queue = Queue(policy, evidence, scenario.reviewers)
    arrivals = sorted(fixes, key=lambda f: (scenario.arrival(f), f.index))
    run = Run([None] * len(fixes), [None] * len(fixes), [0] * len(fixes))
    exploited_now = False
    finished: list[tuple[float, int, bool, float]] = []  # reviews the learner has not seen yet
    returns: list[tuple[float, int]] = []
    next_arrival, next_round = 0, step
    free = [0.0] * scenario.reviewers
    # The review work of every attempt to come of the fixes arrived and not yet finished (true hours):
    # what can stand ahead of a fix once it has aged past everything that arrived later.
    backlog = 0.0

    def class_of(fix: Fix) -> FixClass:
        hit = exploited_now and scenario.exploited(fix)
        return FixClass(fix.check, fix.applicability, fix.effort, fix.prior_p, fix.risk_exploited if hit else fix.risk, fix.kev or hit)

    def enter(fix: Fix) -> None:
        queue.push(class_of(fix), scenario.arrival(fix), fix.index)

    def next_work() -> float:
        """When new work can appear: a rejected fix coming back, or an arrival."""
        times = [returns[0][0]] if returns else []
        if next_arrival < len(arrivals):
            times.append(scenario.arrival(arrivals[next_arrival]))
        return min(times, default=math.inf)

    def next_event() -> tuple[float, int]:
        """(time, kind) of the next change of the world: 0 a round, 1 the CVE, 2 new work."""
        cve = scenario.cve_at if truth.cve_image and not exploited_now else math.inf
        return min((next_round, 0), (cve, 1), (next_work(), 2))

    while True:
        now = free[0]
        while (event := next_event())[0] <= now:
            if event[1] == 0:
                if policy.learns:
                    while finished and finished[0][0] <= next_round:
                        _, index, accepted, minutes = heapq.heappop(finished)
                        evidence.add(fixes[index].check, fixes[index].applicability, accepted, minutes)
                    queue.rerank()
                    if watch:
                        run.index_error.append((next_round, watch(evidence)))
                queue.schedule(next_round)
                next_round += step
            elif event[1] == 1:
                exploited_now = True
                for index in queue.drain():  # their class changed: R and KEV
                    enter(fixes[index])
            elif returns and returns[0][0] <= now:
                enter(fixes[heapq.heappop(returns)[1]])
            else:
                enter(arrivals[next_arrival])
                backlog += truth.work_hours(arrivals[next_arrival].index)
                run.backlog_max = max(run.backlog_max, backlog / scenario.reviewers)
                next_arrival += 1
        if now >= horizon:
            break
        if not queue:
            if next_work() >= horizon:
                break
            heapq.heapreplace(free, next_work())  # idle until then
            continue
        cls, index = queue.pop(now)
        accepted, minutes = truth.reviews[index][run.attempts[index]]
        backlog -= minutes / 60
        run.attempts[index] += 1
        done = now + minutes / 60
        heapq.heapreplace(free, done)
        if policy.learns:
            heapq.heappush(finished, (done, index, accepted, minutes))
        if cls.kev:
            run.kev_hours += minutes / 60
        if accepted:
            run.merged_at[index] = done if done <= horizon else None
        elif run.attempts[index] < MAX_ATTEMPTS:
            heapq.heappush(returns, (math.floor(done / step + 1) * step, index))  # revised for the next round
        elif done <= horizon:
            run.failed_at[index] = done
    run.rank_spread = queue.high - queue.low if queue.high >= queue.low else 0.0
    run.threshold_max, run.peak_drain = queue.threshold_max, queue.peak
    run.reviews_learned = evidence.total
    return run


def estimate_error(fixes: Sequence[Fix], truth: Truth, settings: ScheduleSettings) -> Callable[[ReviewEvidence], float]:
    """How far the learned p / E[t] is from the true one, relative, averaged over the fixes."""
    groups = Counter((f.check, f.applicability, f.effort, f.prior_p) for f in fixes)

    def error(evidence: ReviewEvidence) -> float:
        total = 0.0
        for (check, applicability, effort, prior), count in groups.items():
            learned = acceptance(prior, check, evidence, settings) / expected_minutes(effort, check, applicability, evidence, settings)
            true = truth.accept_rate[check] / (effort * truth.effort_factor[check, applicability])
            total += count * abs(learned - true) / true
        return total / max(1, sum(groups.values()))

    return error


# --- measures -----------------------------------------------------------------------


@dataclass
class Stay:
    """One fix's time in the queue: risk ``before`` until ``switch`` (the CVE), ``after`` from then on.

    Its risk counts until it is accepted: a fix rejected for good leaves the
    queue (``left``) but its risk stays until the horizon, as that of a fix not
    yet reviewed does."""

    arrival: float
    end: float  # accepted, or the horizon
    left: float  # accepted, rejected for good, or the horizon: the end of its wait
    merged: bool
    before: float
    after: float
    switch: float

    def risk_at(self, t: float) -> float:
        return self.after if t >= self.switch else self.before

    def risk_hours(self, until: float = math.inf) -> float:
        end = min(self.end, until)
        if end <= self.arrival:
            return 0.0
        return self.before * (end - self.arrival) + (self.after - self.before) * max(0.0, end - max(self.arrival, self.switch))


def stays(fixes: Sequence[Fix], scenario: Scenario, run: Run) -> list[Stay]:
    cve = scenario.cve_at if scenario.truth.cve_image else math.inf
    found = []
    for fix in fixes:
        merged_at, failed_at = run.merged_at[fix.index], run.failed_at[fix.index]
        after = fix.risk_exploited if scenario.exploited(fix) else fix.risk
        end = merged_at if merged_at is not None else scenario.horizon
        left = failed_at if failed_at is not None else end
        found.append(Stay(scenario.arrival(fix), end, left, merged_at is not None, fix.risk, after, cve))
    return found


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_to_remove(found: Sequence[Stay], share: float) -> float | None:
    """When the accepted fixes' risk first reaches ``share`` of all the risk (None: not within the horizon)."""
    total = sum(s.risk_at(s.end) for s in found)
    removed = 0.0
    for stay in sorted((s for s in found if s.merged), key=lambda s: s.end):
        removed += stay.risk_at(stay.end)
        if removed >= share * total:
            return stay.end
    return None


def measure(found: Sequence[Stay], run: Run) -> dict:
    waits = [s.left - s.arrival for s in found]
    cutoff = percentile([s.risk_at(s.end) for s in found], 0.9)
    top = [s.left - s.arrival for s in found if s.risk_at(s.end) >= cutoff]
    t50, t90 = time_to_remove(found, 0.5), time_to_remove(found, 0.9)
    return {
        "risk_hours": round(sum(s.risk_hours() for s in found), 3),
        "t50_h": round(t50, 1) if t50 is not None else None,
        "t90_h": round(t90, 1) if t90 is not None else None,
        "wait_p50_h": round(percentile(waits, 0.5), 1),
        "wait_p95_h": round(percentile(waits, 0.95), 1),
        "top_wait_p50_h": round(percentile(top, 0.5), 1),
        "top_wait_p95_h": round(percentile(top, 0.95), 1),
        "longest_wait_h": round(max(waits, default=0.0), 1),
        "merged": sum(s.merged for s in found),
        "failed": sum(1 for t in run.failed_at if t is not None),
    }


def risk_curve(found: Sequence[Stay], horizon: float, points: int = CURVE_POINTS) -> list[float]:
    """Risk waiting (arrived, not yet accepted) at ``points`` evenly spaced times, by a sweep over the changes."""
    changes = []
    for stay in found:
        changes.append((stay.arrival, stay.risk_at(stay.arrival)))
        if stay.arrival < stay.switch < stay.end:
            changes.append((stay.switch, stay.after - stay.before))
        if stay.merged:
            changes.append((stay.end, -stay.risk_at(stay.end)))
    changes.sort()
    curve, level, position = [], 0.0, 0
    for n in range(points):
        t = horizon * n / (points - 1)
        while position < len(changes) and changes[position][0] <= t:
            level += changes[position][1]
            position += 1
        curve.append(round(level, 2))
    return curve


# --- the bench ----------------------------------------------------------------------

TARGET_RATIO = 0.7  # the scheduler's risk-hours, at most this share of FIFO's
TARGET_GAP = 0.5  # the share of the static-to-oracle gap learning must close
THRESHOLDS = (1.0, 1.05, 1.1, 1.15, 1.2, 1.5)  # ageing_threshold values of the fairness table, at the configured alpha
ALPHAS = (0.001, 0.1)  # alpha values of the table, at the configured ageing_threshold (and 0: no ageing)
EXPLORES = (0.0, 0.05, 0.2)


def ageing_settings(settings: ScheduleSettings, alphas: Sequence[float] = ALPHAS, thresholds: Sequence[float] = THRESHOLDS) -> list[tuple[float, float]]:
    """The (alpha, ageing_threshold) rows of the fairness table: no ageing, each threshold at the
    configured alpha, each alpha at the configured threshold."""
    rows = [(0.0, settings.ageing_threshold)]
    rows += [(settings.alpha, m) for m in thresholds]
    rows += [(a, settings.ageing_threshold) for a in alphas]
    return list(dict.fromkeys(rows))


def bench_scheduler(
    fixes: Sequence[Fix],
    settings: ScheduleSettings,
    seed: int = 1337,
    reviewers: Sequence[int] = (1, 3),
    load: float = 0.9,
    start_share: float = 0.5,
    round_hours: float = 8.0,
    ageing: Sequence[tuple[float, float]] = (),
    explores: Sequence[float] = (),
) -> dict:
    truth = draw_truth(fixes, seed, start_share)
    report = {
        "fixes": len(fixes),
        "seed": seed,
        "load": load,
        "start_share": start_share,
        "round_hours": round_hours,
        "alpha": settings.alpha,
        "ageing_threshold": settings.ageing_threshold,
        "review_capacity": "the number of reviewers (the simulated hours are their working hours)",
        "explore": settings.explore,
        "prior_reviews": settings.prior_reviews,
        "truth": {
            "accept_rate": {c: round(p, 3) for c, p in sorted(truth.accept_rate.items())},
            "mean_prior_p": round(sum(f.prior_p for f in fixes) / max(1, len(fixes)), 4),
            "work_hours": round(truth.work_hours(), 1),
            "cve_image": truth.cve_image,
            "cve_fixes": sum(1 for f in fixes if truth.cve_image in f.images),
        },
        "reviewers": {},
    }
    for k in reviewers:
        report["reviewers"][str(k)] = bench_reviewers(fixes, truth, Scenario.of(truth, k, load, round_hours), settings, ageing, explores)
    report["target_ratio"] = TARGET_RATIO
    report["fairest_on_target"] = fairest_on_target(report["reviewers"].values(), settings.alpha)
    return report


def seed_summary(report: dict) -> list[dict]:
    """The headline numbers of one seed's report, per number of reviewers: how much the world's draw moves them."""
    rows = []
    for k, panel in report["reviewers"].items():
        policies = panel["policies"]
        unaged = next((row["ratio_to_fifo"] for row in panel["ageing"] if row["alpha"] == 0), None)
        rows.append({
            "seed": report["seed"],
            "reviewers": int(k),
            **{policy: policies[policy]["ratio_to_fifo"] for policy in ("risk", "shortest", "static", "scheduler", "oracle")},
            "scheduler_alpha_0": unaged,
            "gap_closed": panel["learning"][-1]["gap_closed"],
            "longest_wait_x_fifo": round(policies["scheduler"]["longest_wait_h"] / policies["fifo"]["longest_wait_h"], 3)
            if policies["fifo"]["longest_wait_h"] else None,
            "fairest_on_target": report["fairest_on_target"],
        })
    return rows


def fairest_on_target(panels, alpha: float) -> float | None:
    """The smallest ageing_threshold of the table (at ``alpha``) whose risk-hours are at most
    TARGET_RATIO of FIFO's for every number of reviewers: the least waiting allowed that still
    removes the risk the target asks for (None: no threshold of the table does)."""
    meets = None
    for panel in panels:
        ok = {row["ageing_threshold"] for row in panel["ageing"] if row["alpha"] == alpha and row["ratio_to_fifo"] <= TARGET_RATIO}
        meets = ok if meets is None else meets & ok
    return min(meets) if meets else None


def bench_reviewers(fixes, truth: Truth, scenario: Scenario, settings: ScheduleSettings, ageing, explores) -> dict:
    watch = estimate_error(fixes, truth, settings)
    policies = [*baselines(), scheduler_policy(settings, learns=False), scheduler_policy(settings, learns=True), oracle_policy(truth, settings)]
    runs = {p.name: simulate(fixes, scenario, p, watch) for p in policies}
    found = {name: stays(fixes, scenario, run) for name, run in runs.items()}
    table = {name: measure(found[name], runs[name]) for name in runs}
    fifo = table["fifo"]["risk_hours"]
    # Fixes every review of which is drawn rejected are never merged by any order:
    # their risk-hours are the same under every policy; the second ratio leaves them out.
    hopeless = sum(s.risk_hours() for s, attempts in zip(found["fifo"], truth.reviews) if not any(accepted for accepted, _ in attempts))
    for row in table.values():
        row["ratio_to_fifo"] = round(row["risk_hours"] / fifo, 3) if fifo else None
        row["ratio_to_fifo_mergeable"] = round((row["risk_hours"] - hopeless) / (fifo - hopeless), 3) if fifo > hopeless else None
    horizon = scenario.horizon
    checkpoints = [horizon * n / CHECKPOINTS for n in range(1, CHECKPOINTS + 1)]
    learning = []
    for t in checkpoints:
        static, learned, oracle = (sum(s.risk_hours(t) for s in found[name]) for name in ("static", "scheduler", "oracle"))
        errors = [e for at, e in runs["scheduler"].index_error if at <= t]
        learning.append({
            "t_h": round(t, 1),
            "rounds": int(t // scenario.round_hours),
            "static": round(static, 1),
            "scheduler": round(learned, 1),
            "oracle": round(oracle, 1),
            "gap_closed": round((static - learned) / (static - oracle), 3) if static > oracle else None,
            "estimate_error": round(errors[-1] if errors else watch(ReviewEvidence()), 3),
        })
    fifo_longest = table["fifo"]["longest_wait_h"]
    sweep = [ageing_row(fixes, scenario, settings.model_copy(update={"alpha": a, "ageing_threshold": m}), fifo, fifo_longest) for a, m in ageing]
    explore_rows = [explore_row(fixes, scenario, settings.model_copy(update={"explore": c}), fifo) for c in explores]
    bound = wait_bound(runs["scheduler"], settings.alpha, scenario)
    return {
        "reviewers": scenario.reviewers,
        "horizon_h": round(horizon, 1),
        "cve_at_h": round(scenario.cve_at, 1) if truth.cve_image else None,
        "unmergeable_risk_hours": round(hopeless, 1),
        "policies": table,
        "curve": {"t_h": [round(horizon * n / (CURVE_POINTS - 1), 2) for n in range(CURVE_POINTS)], **{n: risk_curve(f, horizon) for n, f in found.items()}},
        "learning": learning,
        "static_estimate_error": round(watch(ReviewEvidence()), 3),
        "ageing": sweep,
        "explore": explore_rows,
        "wait_bound_h": bound,
        "L_max_h": round(runs["scheduler"].threshold_max, 1),
        "targets": targets(table, learning[-1], bound),
    }


def wait_bound(run: Run, alpha: float, scenario: Scenario) -> float | None:
    """The longest wait that ageing allows, from the run's L, peak drain time, rank spread and backlog.

    Let Δ be the widest gap between two ranks (KEV bonus left out) and L_max
    the largest L the schedules used. Every T is at most L, and T of a fix is at
    least L less the whole backlog's drain time (at most ``peak``). So once a
    fix has waited max(L_max, peak) + Δ / alpha hours, a fix can overtake it
    only if it is KEV or arrived less than peak + Δ / alpha hours after it,
    and all of those are in the system by then. From then on
    only KEV fixes and the backlog of that moment (at most the largest backlog,
    with every attempt to come, per reviewer) go first. So it waits at most
    max(L_max, peak) + Δ / alpha + the largest backlog per reviewer + the KEV
    review time per reviewer + a review in progress + its own returns (a round
    each) and reviews. Every run is checked against it."""
    if alpha <= 0:
        return None
    longest_review = max((minutes for attempts in scenario.truth.reviews for _, minutes in attempts), default=0.0) / 60
    own = (MAX_ATTEMPTS - 1) * scenario.round_hours + MAX_ATTEMPTS * longest_review
    aged = max(run.threshold_max, run.peak_drain) + run.rank_spread / alpha
    return round(aged + run.backlog_max + run.kev_hours / scenario.reviewers + longest_review + own, 1)


def ageing_row(fixes, scenario: Scenario, settings: ScheduleSettings, fifo: float, fifo_longest: float) -> dict:
    run = simulate(fixes, scenario, scheduler_policy(settings, learns=True))
    row = measure(stays(fixes, scenario, run), run)
    return {
        "alpha": settings.alpha,
        "ageing_threshold": settings.ageing_threshold,
        "risk_hours": row["risk_hours"],
        "ratio_to_fifo": round(row["risk_hours"] / fifo, 3) if fifo else None,
        "wait_p95_h": row["wait_p95_h"],
        "longest_wait_h": row["longest_wait_h"],
        "longest_wait_x_fifo": round(row["longest_wait_h"] / fifo_longest, 3) if fifo_longest else None,
        "L_max_h": round(run.threshold_max, 1),
        "wait_bound_h": wait_bound(run, settings.alpha, scenario),
    }


def explore_row(fixes, scenario: Scenario, settings: ScheduleSettings, fifo: float) -> dict:
    run = simulate(fixes, scenario, scheduler_policy(settings, learns=True))
    row = measure(stays(fixes, scenario, run), run)
    return {"explore": settings.explore, "risk_hours": row["risk_hours"], "ratio_to_fifo": round(row["risk_hours"] / fifo, 3) if fifo else None}


def targets(table: dict, last: dict, bound: float | None) -> dict:
    scheduler = table["scheduler"]
    return {
        "ratio_to_fifo": {"value": scheduler["ratio_to_fifo"], "target": f"<= {TARGET_RATIO}", "met": scheduler["ratio_to_fifo"] is not None and scheduler["ratio_to_fifo"] <= TARGET_RATIO},
        "against_risk_only": {
            "value": round(scheduler["risk_hours"] / table["risk"]["risk_hours"], 3) if table["risk"]["risk_hours"] else None,
            "target": "<= 1",
            "met": scheduler["risk_hours"] <= table["risk"]["risk_hours"],
        },
        "gap_closed": {"value": last["gap_closed"], "target": f">= {TARGET_GAP}", "met": last["gap_closed"] is not None and last["gap_closed"] >= TARGET_GAP},
        "longest_wait": {"value": scheduler["longest_wait_h"], "target": f"<= {bound} h" if bound is not None else "unbounded (alpha 0)",
                         "met": bound is not None and scheduler["longest_wait_h"] <= bound},
    }


def chart(report: dict, path: Path) -> None:
    """Risk waiting against time, one line per policy, one panel per number of reviewers (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = report["reviewers"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (k, data) in zip(axes[0], panels.items()):
        curve = data["curve"]
        for policy in data["policies"]:
            ax.plot(curve["t_h"], curve[policy], label=f"{policy} ({data['policies'][policy]['ratio_to_fifo']:.2f}x FIFO)",
                    linestyle="--" if policy == "oracle" else "-", linewidth=1.3)
        if data["cve_at_h"] is not None:
            ax.axvline(data["cve_at_h"], color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{k} reviewer{'s' if k != '1' else ''}: risk waiting for review")
        ax.set_xlabel("hours")
        ax.set_ylabel("sum of R not yet accepted")
        ax.legend(fontsize=8)
    fig.suptitle(f"{report['fixes']} fixes, seed {report['seed']}, load {report['load']}; ratio = risk-hours / FIFO's", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
