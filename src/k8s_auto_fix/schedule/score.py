"""schedule: which verified fix a person should review next.

    S = R * p / E[t] + explore + alpha * max(0, wait - T) + KEV

R * p / E[t] is Smith's rule (weighted shortest processing time): the risk a
review is expected to remove, R * p, over the minutes it costs, E[t]. On one
reviewer, serving the highest first minimises the sum of risk times waiting,
the risk-hours that `bench scheduler` measures.

- R: the finding's risk (0..1, from risk.json; 0.5 when missing);
- p: the probability that a reviewer accepts a fix of this check. The static
  prior is the verifier's record of the check, Beta(prior_accepted,
  prior_rejected) updated with its verdicts. Reviews (``--history``) update it
  as a Beta posterior in which the prior counts as ``prior_reviews`` reviews,
  so the reviewers' accepts and rejects take over as they accumulate;
- E[t]: the expected review minutes: a base per applicability plus a cost per
  patch operation; with reviews, the posterior mean of the observed minutes of
  this check and applicability, the static estimate counting as
  ``prior_reviews`` of them;
- explore: optimism for checks with few reviews, R * p / E[t] times
  c * sqrt(ln(N + 1) / (n + 1)) for n reviews of the check out of N: zero
  before any review, shrinking as the check's evidence grows;
- alpha * max(0, wait - T): ageing, in hours since the item was first
  scheduled (kept from the previous schedule), so nothing starves. It starts
  only when the fix's slack runs out. T = L - the drain time of the fixes
  that have waited at least as long as this one (itself included): the hours
  the review capacity (``review_capacity``, reviewer-hours per hour) needs for
  their expected review work, E[t] / p minutes each (1 / p reviews until
  accepted). L, the wait the ageing aims to keep every fix within, is
  ``ageing_threshold`` times the largest drain time of the whole backlog seen
  so far (carried between schedules by ``--previous``): about the longest wait
  first-come-first-served gives. So Smith's order stands while a fix can still
  be reviewed in time behind everything older, and past that it gains alpha
  per hour. T comes from the team's own backlog and capacity, so the rule
  travels between teams and backlog sizes;
- KEV: a bonus when the workload runs an image with a known-exploited CVE.
Every term is kept in the output.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..checks.aliases import normalise
from ..config import ScheduleSettings
from ..contracts import Applicability, ReviewOutcome, RiskRecord, ScheduleItem, Verdict


@dataclass
class ReviewEvidence:
    """What reviewers did so far: accepts and reviews per check, minutes per
    check and applicability."""

    accepted: Counter = field(default_factory=Counter)
    reviewed: Counter = field(default_factory=Counter)
    minutes: Counter = field(default_factory=Counter)
    timed: Counter = field(default_factory=Counter)

    @classmethod
    def of(cls, reviews: Iterable[ReviewOutcome]) -> ReviewEvidence:
        evidence = cls()
        for review in reviews:
            evidence.add(normalise(review.policy_id), review.applicability, review.accepted, review.minutes)
        return evidence

    def add(self, check: str, applicability: Applicability, accepted: bool, minutes: float) -> None:
        self.reviewed[check] += 1
        self.accepted[check] += accepted
        self.timed[check, applicability] += 1
        self.minutes[check, applicability] += minutes

    @property
    def total(self) -> int:
        return sum(self.reviewed.values())


def static_minutes(applicability: Applicability, patch_ops: int, settings: ScheduleSettings) -> float:
    return settings.effort_minutes[applicability] + settings.minutes_per_op * patch_ops


def acceptance(prior: float, check: str, evidence: ReviewEvidence, settings: ScheduleSettings) -> float:
    """Posterior mean of Beta(w * prior, w * (1 - prior)) after the check's reviews."""
    weight = settings.prior_reviews
    return (weight * prior + evidence.accepted[check]) / (weight + evidence.reviewed[check])


def expected_minutes(prior: float, check: str, applicability: Applicability, evidence: ReviewEvidence, settings: ScheduleSettings) -> float:
    """Mean review minutes with the static estimate counting as ``prior_reviews`` observations
    (the posterior mean of an exponential's mean under its conjugate inverse-gamma prior)."""
    weight = settings.prior_reviews
    key = (check, applicability)
    return (weight * prior + evidence.minutes[key]) / (weight + evidence.timed[key])


def exploration(check: str, evidence: ReviewEvidence, settings: ScheduleSettings) -> float:
    """The relative optimism for a check: large while it has few of the reviews, zero before any."""
    return settings.explore * math.sqrt(math.log(evidence.total + 1) / (evidence.reviewed[check] + 1))


def base_score(risk: float, p: float, effort: float, optimism: float, kev: bool, settings: ScheduleSettings) -> tuple[float, float]:
    """(every term but ageing, the explore term): R * p / E[t] * (1 + optimism) + KEV."""
    rate = risk * p / effort
    explore = rate * optimism
    return rate + explore + (settings.kev_bonus if kev else 0.0), explore


def review_work(p: float, effort: float) -> float:
    """The expected review minutes until a fix is accepted: E[t] per review, 1 / p reviews."""
    return effort / p


def drain_ahead(waits: Sequence[float], minutes: Sequence[float], settings: ScheduleSettings) -> list[float]:
    """Per fix, the hours the review capacity needs for every fix that has waited at
    least as long as it (itself included): what first-come-first-served puts before it."""
    capacity = 60 * settings.review_capacity
    order = sorted(range(len(waits)), key=lambda i: -waits[i])
    ahead = [0.0] * len(waits)
    total, start = 0.0, 0
    while start < len(order):  # fixes that have waited exactly as long go together
        end = start
        while end < len(order) and waits[order[end]] == waits[order[start]]:
            total += minutes[order[end]] / capacity
            end += 1
        for i in order[start:end]:
            ahead[i] = total
        start = end
    return ahead


def ageing_limit(drain: float, peak: float, settings: ScheduleSettings) -> tuple[float, float]:
    """(L, the new peak): L is ``ageing_threshold`` times the largest drain time of the backlog seen so far."""
    peak = max(peak, drain)
    return settings.ageing_threshold * peak, peak


def ageing(wait: float, threshold: float, settings: ScheduleSettings) -> float:
    """alpha * max(0, wait - T): nothing while a fix still has slack, then alpha per hour."""
    return settings.alpha * max(0.0, wait - threshold)


def build_schedule(
    verdicts: Iterable[Verdict],
    risks: Iterable[RiskRecord],
    settings: ScheduleSettings,
    previous: Iterable[ScheduleItem] = (),
    now: datetime | None = None,
    history: Iterable[ReviewOutcome] = (),
) -> list[ScheduleItem]:
    verdicts, previous = list(verdicts), list(previous)
    now = now or datetime.now(timezone.utc)
    risk_by_id = {r.id: r for r in risks}
    first_seen = {item.id: item.first_seen for item in previous}
    history = list(history)
    evidence = ReviewEvidence.of(history)
    verified_ok, verified = Counter(), Counter()
    for v in verdicts:
        check = normalise(v.policy_id)
        verified[check] += 1
        verified_ok[check] += v.accepted
    merged = {review.id for review in history if review.accepted}
    terms = []
    for v in verdicts:
        if not v.accepted:
            continue
        check = normalise(v.policy_id)
        risk = risk_by_id.get(v.id)
        r = risk.risk if risk else 0.5
        kev = bool(risk and risk.kev)
        prior = (settings.prior_accepted + verified_ok[check]) / (settings.prior_accepted + settings.prior_rejected + verified[check])
        p = acceptance(prior, check, evidence, settings)
        effort = expected_minutes(static_minutes(v.applicability, v.patch_ops, settings), check, v.applicability, evidence, settings)
        seen = first_seen.get(v.id) or now.isoformat()
        wait = max(0.0, (now - datetime.fromisoformat(seen)).total_seconds() / 3600)
        terms.append((v, check, r, kev, p, effort, seen, wait))
    # The backlog is every fix still to review (those the reviewers accepted are done); each fix's
    # T is the slack FIFO would leave it: L less the drain time of the fixes waiting at least as long.
    backlog = [t for t in terms if t[0].id not in merged]
    ahead = dict(zip((t[0].id for t in backlog), drain_ahead([t[7] for t in backlog], [review_work(t[4], t[5]) for t in backlog], settings)))
    limit, peak = ageing_limit(max(ahead.values(), default=0.0), max((item.drain_peak for item in previous), default=0.0), settings)
    items = []
    for v, check, r, kev, p, effort, seen, wait in terms:
        base, explore = base_score(r, p, effort, exploration(check, evidence, settings), kev, settings)
        threshold = limit - ahead.get(v.id, 0.0)
        items.append(
            ScheduleItem(
                id=v.id, policy_id=check, score=round(base + ageing(wait, threshold, settings), 6), R=r, p=round(p, 4), Et=round(effort, 3),
                wait=round(wait, 3), T=round(threshold, 3), kev=kev, explore=round(explore, 6), first_seen=seen, applicability=v.applicability,
                reviews=evidence.reviewed[check], drain_peak=round(peak, 3),
            )
        )
    items.sort(key=lambda i: (-i.score, i.id))
    return items
