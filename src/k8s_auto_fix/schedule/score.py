"""schedule: which verified fix a person should review next.

    S = R * p / E[t] + explore + alpha * wait + KEV

- R: the finding's risk (0..1, from risk.json; 0.5 when missing);
- p: the posterior probability that a fix of this check is accepted: a
  Beta(prior_accepted, prior_rejected) prior updated with the verified
  history of that check (accepted and rejected verdicts);
- E[t]: the expected review effort in minutes: a base per applicability
  (safe, review, manual) plus a cost per patch operation;
- explore: an upper-confidence bonus, c * sqrt(ln(N + 1) / (n + 1)), for
  checks with few verified patches (n of N);
- alpha * wait: ageing, in hours since the item was first scheduled (kept
  from the previous schedule), so nothing starves;
- KEV: a bonus when the workload runs an image with a known-exploited CVE.
Every term is kept in the output.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone

from ..checks.aliases import normalise
from ..config import ScheduleSettings
from ..contracts import RiskRecord, ScheduleItem, Verdict


def build_schedule(
    verdicts: Iterable[Verdict],
    risks: Iterable[RiskRecord],
    settings: ScheduleSettings,
    previous: Iterable[ScheduleItem] = (),
    now: datetime | None = None,
) -> list[ScheduleItem]:
    verdicts = list(verdicts)
    now = now or datetime.now(timezone.utc)
    risk_by_id = {r.id: r for r in risks}
    first_seen = {item.id: item.first_seen for item in previous}
    accepted, total = Counter(), Counter()
    for v in verdicts:
        check = normalise(v.policy_id)
        total[check] += 1
        accepted[check] += v.accepted
    n_all = sum(total.values())
    items = []
    for v in verdicts:
        if not v.accepted:
            continue
        check = normalise(v.policy_id)
        risk = risk_by_id.get(v.id)
        r = risk.risk if risk else 0.5
        kev = bool(risk and risk.kev)
        p = (settings.prior_accepted + accepted[check]) / (settings.prior_accepted + settings.prior_rejected + total[check])
        effort = settings.effort_minutes[v.applicability] + settings.minutes_per_op * v.patch_ops
        explore = settings.explore * math.sqrt(math.log(n_all + 1) / (total[check] + 1))
        seen = first_seen.get(v.id) or now.isoformat()
        wait = max(0.0, (now - datetime.fromisoformat(seen)).total_seconds() / 3600)
        score = r * p / effort + explore + settings.alpha * wait + (settings.kev_bonus if kev else 0.0)
        items.append(
            ScheduleItem(
                id=v.id, policy_id=check, score=round(score, 6), R=r, p=round(p, 4), Et=effort,
                wait=round(wait, 3), kev=kev, explore=round(explore, 6), first_seen=seen,
            )
        )
    items.sort(key=lambda i: (-i.score, i.id))
    return items
