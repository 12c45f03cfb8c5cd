"""The model proposer on Ray (`propose --mode ENDPOINT --executor ray`), and over a stream of findings.

The findings are cut into one slice per CPU, grouped by application, as the
rules proposer's are; each slice is a Ray task running the model loop with its
own threads. The endpoint's limits (requests and tokens per minute) are one
budget for all of them: a single Ray actor holds the ``RateBudget`` and every
request of every worker takes its place there first, so N workers together
stay within what one process would send. The actor only says how long to
wait; workers sleep on their side, so it never blocks.

With JSON Lines (``propose_with_model_stream``) the findings are read as a
stream and cut into chunks of consecutive findings (whole small applications
together, a large one in pieces); each chunk's records are handed over, in
input order, as soon as it and the ones before it are done, so memory holds
a few chunks, never the input. Locally the chunks run one after another in
this process, on one client (one budget) with its threads; on Ray they are
tasks within the one budget actor.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from itertools import groupby

from ...checks.fixes import FixOptions
from ...config import RunConfig
from ...contracts import Detection
from ...manifests.store import store_for_findings
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
    order = sorted(range(len(detections)), key=lambda i: (detections[i].application_key, i))
    result = LLMResult()
    with executor_session(runner):
        actor = budget_actor(endpoint.requests_per_minute, endpoint.tokens_per_minute)
        size = max(1, -(-len(order) // parallelism(runner)))
        slices = [[detections[i] for i in order[start : start + size]] for start in range(0, len(order), size)]
        # The key travels with the task (workers on other nodes do not have the driver's environment).
        parts = list(map_ordered(_propose_slice, (config, name, api_key, options, jobs, actor, uuid.uuid4().hex), slices, runner))
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
    config, name, api_key, options, jobs, actor, pass_id = shared
    endpoint = config.endpoint(name)
    client = PROVIDERS[endpoint.api](endpoint, config.proposer, api_key)
    client.budget = SharedBudget(actor)
    try:
        return propose_with_model(client, config, detections, name, options, jobs, store=store_for_findings(detections, pass_id))
    finally:
        client.close()


# Findings per chunk of a stream: on Ray a few per worker thread, so that chunks
# spread over the workers; locally many, so that the threads rarely wait for
# the slowest answer of a chunk.
CHUNK_PER_THREAD_RAY = 8
CHUNK_LOCAL = 1000


def propose_with_model_stream(
    config: RunConfig, name: str, api_key: str | None, detections: Iterable[Detection], options: FixOptions, jobs: int, runner: RunnerOptions
) -> Iterator[LLMResult]:
    """Model patches for a stream of findings, chunk by chunk, each chunk's records (and its usage) in input order as it is done."""
    pass_id = uuid.uuid4().hex  # a large application's pieces in one process parse it once (store_for_application)
    if runner.executor == "ray":
        with executor_session(runner):
            endpoint = config.endpoint(name)
            actor = budget_actor(endpoint.requests_per_minute, endpoint.tokens_per_minute)
            shared = (config, name, api_key, options, jobs, actor, pass_id)
            yield from map_ordered(_propose_slice, shared, chunks(detections, max(1, jobs) * CHUNK_PER_THREAD_RAY), runner)
        return
    endpoint = config.endpoint(name)
    client = PROVIDERS[endpoint.api](endpoint, config.proposer, api_key)  # one client: one budget for every chunk
    try:
        for chunk in chunks(detections, CHUNK_LOCAL):
            client.usage = Usage()  # each chunk's own usage (no request is in flight between chunks)
            yield propose_with_model(client, config, chunk, name, options, jobs, store=store_for_findings(chunk, pass_id))
    finally:
        client.close()


def chunks(detections: Iterable[Detection], size: int) -> Iterator[list[Detection]]:
    """Consecutive findings in chunks of at most ``size``: small applications
    together, one larger than ``size`` in pieces of its own."""
    chunk: list[Detection] = []
    for _, group in groupby(detections, key=lambda d: d.application_key):
        found = list(group)
        if chunk and len(chunk) + len(found) > size:
            yield chunk
            chunk = []
        while len(found) > size:
            yield found[:size]
            found = found[size:]
        chunk += found
    if chunk:
        yield chunk

