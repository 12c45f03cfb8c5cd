"""schedule: which verified fix a person should review next.

    S = R * p / E[t] + explore + alpha * wait + KEV

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
- alpha * wait: ageing, in hours since the item was first scheduled (kept
  from the previous schedule), so nothing starves;
- KEV: a bonus when the workload runs an image with a known-exploited CVE.
Every term is kept in the output.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
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


def build_schedule(
    verdicts: Iterable[Verdict],
    risks: Iterable[RiskRecord],
    settings: ScheduleSettings,
    previous: Iterable[ScheduleItem] = (),
    now: datetime | None = None,
    history: Iterable[ReviewOutcome] = (),
) -> list[ScheduleItem]:
    verdicts = list(verdicts)
    now = now or datetime.now(timezone.utc)
    risk_by_id = {r.id: r for r in risks}
    first_seen = {item.id: item.first_seen for item in previous}
    evidence = ReviewEvidence.of(history)
    verified_ok, verified = Counter(), Counter()
    for v in verdicts:
        check = normalise(v.policy_id)
        verified[check] += 1
        verified_ok[check] += v.accepted
    items = []
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
        base, explore = base_score(r, p, effort, exploration(check, evidence, settings), kev, settings)
        seen = first_seen.get(v.id) or now.isoformat()
        wait = max(0.0, (now - datetime.fromisoformat(seen)).total_seconds() / 3600)
        items.append(
            ScheduleItem(
                id=v.id, policy_id=check, score=round(base + settings.alpha * wait, 6), R=r, p=round(p, 4), Et=round(effort, 3),
                wait=round(wait, 3), kev=kev, explore=round(explore, 6), first_seen=seen, applicability=v.applicability,
                reviews=evidence.reviewed[check],
            )
        )
    items.sort(key=lambda i: (-i.score, i.id))
    return items
