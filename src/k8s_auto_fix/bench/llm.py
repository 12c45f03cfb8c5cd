"""bench llm: the model proposer against a local chat-completions stub."""

from __future__ import annotations

import time

from ..config import EndpointSettings, RunConfig
from ..propose.llm.client import ChatClient
from ..propose.llm.loop import propose_with_model
from .chat_server import ScriptedChat


def bench_llm(detections, jobs: int, latency: float) -> str:
    settings = RunConfig()
    with ScriptedChat([{"content": "[]"}], delay=latency) as server:
        client = ChatClient(EndpointSettings(endpoint=server.url, model="stub"), settings.proposer)
        start = time.perf_counter()
        result = propose_with_model(client, settings, detections, "vendor", jobs=jobs)
        elapsed = time.perf_counter() - start
        client.close()
    return (
        f"{len(detections)} detection(s), --jobs {jobs}, stub latency {latency}s: {elapsed:.2f} s, "
        f"{len(server.requests)} request(s), at most {server.max_in_flight} in flight, {len(result.patches)} patch record(s)"
    )
