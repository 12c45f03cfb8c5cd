"""bench scheduler: a simulated review queue, three orderings, the same items.

Items (accepted fixes with their risk, acceptance probability and effort)
arrive over time: a seeded share at the start, the rest spread over the
first ``horizon_h`` hours. One reviewer takes the next item by the policy's
order and spends E[t] minutes on it (divided by ``speed``). Policies:

- fifo: arrival order;
- risk: highest R first;
- bandit: the scheduler's score S = R * p / E[t] + explore + alpha * wait + KEV,
  recomputed with the current wait at every pick.

Reported per policy: rank and wait (hours) of the top-risk items (the top
``top_share`` by R, and every KEV item), P95 wait of the rest (fairness), and
throughput; written as JSON and a PNG chart.
"""

from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..config import ScheduleSettings
from ..contracts import ScheduleItem


@dataclass
class SimItem:
    id: str
    R: float
    p: float
    Et: float
    kev: bool
    explore: float
    arrival_h: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def simulate(items: list[SimItem], policy: str, settings: ScheduleSettings, speed: float) -> dict[str, tuple[int, float]]:
    """id -> (rank served, wait in hours).

    The ageing term adds the same alpha * now to every waiting item, so the
    bandit's order among waiting items is fixed by score - alpha * arrival:
    a heap serves each policy in O(n log n)."""

    def key(i: SimItem):
        if policy == "fifo":
            return (i.arrival_h, i.id)
        if policy == "risk":
            return (-i.R, i.arrival_h, i.id)
        base = i.R * i.p / i.Et + i.explore + (settings.kev_bonus if i.kev else 0.0)
        return (-(base - settings.alpha * i.arrival_h), i.id)

    upcoming = sorted(items, key=lambda i: (i.arrival_h, i.id))
    pending: list = []
    clock, served, rank, next_arrival = 0.0, {}, 0, 0
    while next_arrival < len(upcoming) or pending:
        while next_arrival < len(upcoming) and upcoming[next_arrival].arrival_h <= clock:
            item = upcoming[next_arrival]
            heapq.heappush(pending, (key(item), item.id, item))
            next_arrival += 1
        if not pending:
            clock = upcoming[next_arrival].arrival_h
            continue
        _, _, chosen = heapq.heappop(pending)
        rank += 1
        served[chosen.id] = (rank, clock - chosen.arrival_h)
        clock += chosen.Et / 60 / speed
    return served


def bench_scheduler(
    schedule: list[ScheduleItem],
    settings: ScheduleSettings,
    seed: int = 1337,
    start_share: float = 0.5,
    horizon_h: float = 24.0,
    speed: float = 1.0,
    top_share: float = 0.1,
) -> dict:
    rng = random.Random(seed)
    items = [
        SimItem(s.id, s.R, s.p, s.Et, s.kev, s.explore, 0.0 if rng.random() < start_share else rng.uniform(0, horizon_h))
        for s in sorted(schedule, key=lambda s: s.id)
    ]
    cutoff = percentile([i.R for i in items], 1 - top_share)
    top = {i.id for i in items if i.R >= cutoff or i.kev}
    report = {"items": len(items), "top_risk_items": len(top), "seed": seed, "speed": speed, "horizon_h": horizon_h, "policies": {}}
    for policy in ("fifo", "risk", "bandit"):
        served = simulate(items, policy, settings, speed)
        top_waits = [served[i][1] for i in top]
        top_ranks = [served[i][0] for i in top]
        rest_waits = [served[i.id][1] for i in items if i.id not in top]
        span = max(w + i.arrival_h for i, (_, w) in ((i, served[i.id]) for i in items)) if items else 0.0
        report["policies"][policy] = {
            "top_mean_rank": round(statistics.mean(top_ranks), 2) if top_ranks else None,
            "top_median_rank": statistics.median(top_ranks) if top_ranks else None,
            "top_p95_rank": percentile(top_ranks, 0.95),
            "top_mean_wait_h": round(statistics.mean(top_waits), 3) if top_waits else None,
            "top_median_wait_h": round(statistics.median(top_waits), 3) if top_waits else None,
            "top_p95_wait_h": round(percentile(top_waits, 0.95), 3),
            "rest_p95_wait_h": round(percentile(rest_waits, 0.95), 3),
            "throughput_per_h": round(len(items) / span, 2) if span else None,
        }
    return report


def chart(report: dict, path: Path) -> None:
    """P95 waits per policy as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(report["policies"])
    top = [report["policies"][p]["top_p95_wait_h"] for p in policies]
    rest = [report["policies"][p]["rest_p95_wait_h"] for p in policies]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = range(len(policies))
    ax.bar([i - 0.2 for i in x], top, width=0.4, label="top-risk items")
    ax.bar([i + 0.2 for i in x], rest, width=0.4, label="all other items")
    ax.set_xticks(list(x), policies)
    ax.set_ylabel("P95 wait (hours)")
    ax.set_title(f"Review queue simulation: {report['items']} fixes, {report['top_risk_items']} top-risk")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
