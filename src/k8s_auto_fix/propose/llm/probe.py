"""`llm probe`: how fast is an endpoint, and how much concurrency does it take?

Sends a tiny request at growing concurrency (1, 2, 4, ...), without retries,
and stops at the first level that draws a 429. Reports latency per level and
the highest concurrency that drew none.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from .client import ModelError
from .providers import ModelClient

PING = [{"role": "system", "content": "Answer with the JSON array [] and nothing else."}, {"role": "user", "content": "[]"}]


def probe(client: ModelClient, max_concurrency: int = 16, rounds: int = 2) -> dict:
    levels, best = [], 0
    level = 1
    while level <= max_concurrency:
        outcomes = _burst(client, level, level * rounds)
        latencies = sorted(t for status, t in outcomes if status == 200)
        limited = sum(1 for status, _ in outcomes if status == 429)
        levels.append(
            {
                "concurrency": level,
                "requests": len(outcomes),
                "ok": len(latencies),
                "rate_limited": limited,
                "errors": len(outcomes) - len(latencies) - limited,
                "p50_s": round(statistics.median(latencies), 3) if latencies else None,
                "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3) if latencies else None,
            }
        )
        if limited:
            break
        best = level
        level *= 2
    return {"endpoint": client.endpoint.endpoint, "model": client.endpoint.model, "max_concurrency_without_429": best, "levels": levels}


def _burst(client: ModelClient, concurrency: int, count: int) -> list[tuple[int, float]]:
    def one(_):
        start = time.perf_counter()
        try:
            client.complete(PING)
            return 200, time.perf_counter() - start
        except ModelError as err:
            return err.status or 0, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(count)))
