"""The model proposer on Ray (`propose --mode ENDPOINT --executor ray`).

The findings are cut into one slice per CPU, grouped by application, as the
rules proposer's are; each slice is a Ray task running the model loop with its
own threads. The endpoint's limits (requests and tokens per minute) are one
budget for all of them: a single Ray actor holds the ``RateBudget`` and every
request of every worker takes its place there first, so N workers together
stay within what one process would send. The actor only says how long to
wait; workers sleep on their side, so it never blocks.
"""

from __future__ import annotations

import time

from ...checks.fixes import FixOptions
from ...config import RunConfig
from ...contracts import Detection
from ...runner import RunnerOptions, executor_session, map_ordered, parallelism
from .client import RateBudget, Usage
from .loop import LLMResult, propose_with_model
from .providers import PROVIDERS


class SharedBudget:
    """``RateBudget.acquire`` against the one budget actor all workers share."""

    def __init__(self, actor):
        self.actor = actor

    def acquire(self, expected_tokens: int) -> float:
        """Wait until a request may start; returns that start time on the actor's clock."""
        import ray

        while True:
            wait, start = ray.get(self.actor.try_acquire.remote(expected_tokens))
            if wait <= 0:
                return start
            time.sleep(min(wait, 1.0))


def budget_actor(requests_per_minute: int | None, tokens_per_minute: int | None):
    """The shared budget: one actor (no CPU of its own: it only keeps the count)."""
    import ray

    return ray.remote(num_cpus=0)(RateBudget).remote(requests_per_minute, tokens_per_minute)


def propose_with_model_on_ray(config: RunConfig, name: str, api_key: str | None, detections: list[Detection], options: FixOptions, jobs: int, runner: RunnerOptions) -> LLMResult:
    """Model patches for ``detections`` on Ray, in the findings' order, within the endpoint's one budget."""
    endpoint = config.endpoint(name)
    order = sorted(range(len(detections)), key=lambda i: (detections[i].application or detections[i].manifest_path, i))
    result = LLMResult()
    with executor_session(runner):
        actor = budget_actor(endpoint.requests_per_minute, endpoint.tokens_per_minute)
        size = max(1, -(-len(order) // parallelism(runner)))
        slices = [[detections[i] for i in order[start : start + size]] for start in range(0, len(order), size)]
        # The key travels with the task (workers on other nodes do not have the driver's environment).
        parts = list(map_ordered(_propose_slice, (config, name, api_key, options, jobs, actor), slices, runner))
    usage = Usage()
    for part in parts:
        result.patches += part.patches
        result.unfixed += part.unfixed
        usage.add(part.usage)
    rank = {d.id: n for n, d in enumerate(detections)}
    result.patches.sort(key=lambda p: rank[p.id])
    result.usage = usage
    return result


def _propose_slice(shared: tuple, detections: list[Detection]) -> LLMResult:
    config, name, api_key, options, jobs, actor = shared
    endpoint = config.endpoint(name)
    client = PROVIDERS[endpoint.api](endpoint, config.proposer, api_key)
    client.budget = SharedBudget(actor)
    try:
        return propose_with_model(client, config, detections, name, options, jobs)
    finally:
        client.close()
