"""The model proposer against a local chat-completions server (no internet)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import write

from k8s_auto_fix.bench.chat_server import ScriptedChat
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import EndpointSettings, RunConfig
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.manifests.store import ObjectStore
from k8s_auto_fix.propose.llm.client import ChatClient, RateBudget
from k8s_auto_fix.propose.llm.guards import GuardError, check_patch, extract_json_array
from k8s_auto_fix.propose.llm.loop import ModelProposer
from k8s_auto_fix.verify.verifier import Verifier, VerifyOptions

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
  - name: app
    image: example.com/shop/web:1.25
    env:
    - {name: DB_PASSWORD, value: hunter2-planted-9f3a}
    - {name: MODE, value: production}
"""
SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData:
  token: planted-token-77c1d0
data:
  key: cGxhbnRlZC1iYXNlNjQtNDQ0
"""
GOOD = json.dumps([{"op": "add", "path": "/spec/containers/0/securityContext", "value": {"readOnlyRootFilesystem": True}}])


def run_model(
    tmp_path, server: ScriptedChat, check: str = "no-read-only-root-fs", rules: bool = False, timeout: float = 5.0, jobs: int = 1, extra: str = "",
    rpm: int | None = None, budget: RateBudget | None = None,
):
    write(tmp_path, "app.yaml", POD + "---" + SECRET + extra)
    checks = select_checks()
    found = [d for d in detect([str(tmp_path)], checks, DetectOptions(jobs=1)).detections if d.policy_id == check]
    config = RunConfig.model_validate({"max_attempts": 3, "proposer": {"retries": 2, "timeout_seconds": timeout}, "rules": {"enabled": rules}})
    endpoint = EndpointSettings(endpoint=server.url, model="test-model", api_key_env="TEST_KEY", requests_per_minute=rpm)
    client = ChatClient(endpoint, config.proposer, api_key="sk-test", budget=budget)
    store = ObjectStore()
    proposer = ModelProposer(client, config, Verifier(checks, VerifyOptions(), store), store, "vendor")
    try:
        return proposer.propose_all(found, jobs), found
    finally:
        client.close()


@pytest.mark.parametrize(
    "answer",
    [GOOD, f"```json\n{GOOD}\n```", f"Here is the fix you asked for:\n{GOOD}\nIt makes the root filesystem read-only."],
    ids=["plain", "fenced", "prose"],
)
def test_a_valid_patch_in_any_wrapping_is_accepted(tmp_path, answer):
    with ScriptedChat([{"content": answer}]) as server:
        result, _ = run_model(tmp_path, server)
    (patch,) = result.patches
    assert (patch.source, patch.endpoint) == ("model", "vendor") and patch.patch == json.loads(GOOD)
    assert patch.usage["attempts"] == 1 and result.usage.prompt_tokens == 100
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


def test_rejected_patch_is_retried_with_the_verifiers_errors(tmp_path):
    # Inside the remedy (the guard lets it through) and readable as a Pod, but a field the strict schema does not know.
    wrong_field = json.dumps([
        {"op": "add", "path": "/spec/containers/0/securityContext", "value": {"readOnlyRootFilesystem": True}},
        {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [{"name": "tmp", "mountPath": "/tmp", "readOnlyFs": True}]},
    ])
    with ScriptedChat([{"content": wrong_field}, {"content": GOOD}]) as server:
        result, _ = run_model(tmp_path, server)
    assert result.patches[0].patch == json.loads(GOOD) and result.patches[0].usage["attempts"] == 2
    retry = server.user_texts()[1]
    assert "rejected by the verifier" in retry and "schema:" in retry and "readOnlyFs" in retry


@pytest.mark.parametrize(
    "bad",
    ["this is not json", json.dumps([{"op": "replace", "path": "/spec/containers/0/securityContext/readOnlyRootFilesystem", "value": True}]),
     json.dumps([{"op": "add", "path": "/metadata/labels/x", "value": "y"}])],
    ids=["invalid-json", "wrong-path", "outside-the-finding"],
)
def test_guard_failures_are_fed_back_then_fall_back_to_the_rule_fix(tmp_path, bad):
    with ScriptedChat([{"content": bad}]) as server:
        result, _ = run_model(tmp_path, server, rules=True)
    (patch,) = result.patches
    assert len(server.requests) == 3  # max_attempts
    assert patch.source == "rules-fallback" and patch.patch
    assert "rejected" in server.user_texts()[1]


def test_unfixed_without_rules(tmp_path):
    with ScriptedChat([{"content": "[]"}]) as server:
        result, _ = run_model(tmp_path, server, rules=False)
    assert result.unfixed and result.patches[0].patch == [] and result.patches[0].explanation.startswith("unfixed")


def test_rule_fix_is_merged_in_as_guardrails(tmp_path):
    # The model gets the volume right but forgets readOnlyRootFilesystem itself.
    partial = json.dumps([{"op": "add", "path": "/spec/volumes", "value": [{"name": "tmp", "emptyDir": {}}]}])
    with ScriptedChat([{"content": partial}]) as server:
        result, _ = run_model(tmp_path, server, check="no-read-only-root-fs", rules=True)
    (patch,) = result.patches
    assert (patch.source, patch.endpoint) == ("model+rules", "vendor")
    assert patch.patch[0] == json.loads(partial)[0] and len(patch.patch) > 1


@pytest.mark.parametrize(
    "failure",
    [{"status": 429, "headers": {"Retry-After": "0.2"}}, {"status": 500}, {"sleep": 1.5}, {"raw": {"choices": []}}],
    ids=["429-retry-after", "500", "read-timeout", "empty-choices"],
)
def test_transient_failures_are_retried(tmp_path, failure):
    with ScriptedChat([failure, {"content": GOOD}]) as server:
        result, _ = run_model(tmp_path, server, timeout=0.5)
    assert result.patches[0].patch == json.loads(GOOD)
    assert len(server.requests) == 2
    if "headers" in failure:
        assert server.arrivals[1] - server.arrivals[0] >= 0.2


def test_no_secret_value_reaches_the_model(tmp_path):
    with ScriptedChat([{"content": "[]"}]) as server:
        run_model(tmp_path, server, check="no-read-only-root-fs")
        run_model(tmp_path, server, check="run-as-non-root")
    sent = json.dumps([r["body"] for r in server.requests])
    assert server.requests
    for planted in ("hunter2-planted-9f3a", "planted-token-77c1d0", "cGxhbnRlZC1iYXNlNjQtNDQ0"):
        assert planted not in sent
    assert "production" in sent  # non-secret values are kept


def test_a_patch_writing_a_placeholder_back_is_refused(tmp_path):
    write(tmp_path, "app.yaml", POD)
    obj = ObjectStore().object(str(tmp_path / "app.yaml"), 0)
    sneaky = json.dumps([{"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "X", "value": "<redacted-1>"}}])
    with pytest.raises(GuardError, match="placeholder"):
        check_patch(sneaky, obj, "app", 20, "no-read-only-root-fs")
    assert extract_json_array('noise [1, 2] tail') == [1, 2]


def test_concurrent_requests_share_the_budget(tmp_path):
    containers = "".join(f"\n  - name: c{i}\n    image: nginx:1.25" for i in range(12))
    many = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  containers:" + containers + "\n"

    def answer(body):
        text = body["messages"][1]["content"]
        index = int(text.split("Container: c")[1].split("\n")[0]) if "Container: c" in text else 0
        return {"content": json.dumps([{"op": "add", "path": f"/spec/containers/{index}/securityContext", "value": {"readOnlyRootFilesystem": True}}])}

    with ScriptedChat(responder=answer, delay=0.05) as server:
        result, found = run_model(tmp_path, server, jobs=8, extra=many)
    assert len(result.patches) == len(found) and server.max_in_flight >= 4


def test_rate_budget_paces_requests_and_tokens():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    budget = RateBudget(requests_per_minute=3, tokens_per_minute=100, clock=lambda: now[0], sleep=sleep)
    budget.acquire(10)
    budget.acquire(10)
    assert now[0] >= 20  # 3 a minute: 20 s apart
    budget.acquire(90)  # 10 + 10 + 90 > 100 tokens in the minute
    assert now[0] >= 60


class VirtualTime:
    """A clock that moves only when a thread sleeps on it: the budget's pacing
    is then exact, whatever the machine's load (no wall-clock in the test)."""

    def __init__(self):
        self.now = 0.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
        time.sleep(0)  # let the other threads run


class StartsRecorded(RateBudget):
    """The real budget; each start time it grants is kept."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.starts: list[float] = []

    def acquire(self, expected_tokens: int) -> float:
        start = super().acquire(expected_tokens)
        self.starts.append(start)
        return start


def test_requests_per_minute_is_respected_end_to_end(tmp_path):
    # The contract is on starts (see RateBudget): every request the server
    # receives was started by the budget, 60/rpm apart on the budget's clock.
    containers = "".join(f"\n  - name: c{i}\n    image: nginx:1.25" for i in range(6))
    many = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: many}\nspec:\n  containers:" + containers + "\n"
    virtual = VirtualTime()
    budget = StartsRecorded(600, None, clock=virtual.clock, sleep=virtual.sleep)
    with ScriptedChat([{"content": GOOD}]) as server:
        run_model(tmp_path, server, jobs=8, extra=many, rpm=600, budget=budget)
    starts = sorted(budget.starts)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(server.requests) == len(starts) >= 7  # 7 findings, 8 threads: nothing sent past the budget
    assert min(gaps) >= 0.1 - 1e-9  # 600 a minute: 0.1 s apart


def test_missing_api_key_is_one_line_and_sends_nothing(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    detections = write(tmp_path, "d.json", "[]")
    code, _, stderr = cli("propose", "--detections", str(detections), "--mode", "grok", "--out", str(tmp_path / "p.json"))
    assert code == 2 and "$XAI_API_KEY" in stderr and len(stderr.strip().splitlines()) == 1


def test_model_mode_with_json_lines_streams_chunks_within_one_budget(tmp_path, cli, monkeypatch):
    """propose --mode ENDPOINT --format jsonl reads the findings as a stream and
    writes each chunk's records as it is done: the records of the JSON array, in
    the same order, and one rate budget across chunks (measured at the server)."""
    import k8s_auto_fix.propose.llm.distributed as distributed

    for app in ("shop", "blog", "news"):
        containers = "".join(f"\n  - name: c{i}\n    image: example.com/shop/web:1.25" for i in range(3))
        write(tmp_path / "in" / app, "pod.yaml", f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {app}}}\nspec:\n  containers:{containers}\n")
    found = tmp_path / "d.jsonl"
    cli("detect", str(tmp_path / "in"), "--format", "jsonl", "--out", str(found))
    chosen = [line for line in found.read_text().splitlines() if '"no-read-only-root-fs"' in line]
    found.write_text("\n".join(chosen) + "\n")

    def answer(body):
        index = int(body["messages"][1]["content"].split("Container: c")[1].split("\n")[0])
        return {"content": json.dumps([{"op": "add", "path": f"/spec/containers/{index}/securityContext", "value": {"readOnlyRootFilesystem": True}}])}

    monkeypatch.setenv("TEST_KEY", "sk-test")
    made: list[int] = []
    real_chunks = distributed.chunks
    monkeypatch.setattr(distributed, "CHUNK_LOCAL", 4)
    monkeypatch.setattr(distributed, "chunks", lambda found, size: (made.append(len(c)) or c for c in real_chunks(found, size)))
    records = {}
    for fmt in ("json", "jsonl"):
        with ScriptedChat(responder=answer, delay=0.02) as server:
            config = write(tmp_path, "run.yaml", f"""
                endpoints:
                  vendor: {{endpoint: "{server.url}", model: test-model, api_key_env: TEST_KEY, requests_per_minute: 300}}
                """)
            out = tmp_path / f"p.{fmt}"
            code, _, stderr = cli("propose", "-d", str(found), "-o", str(out), "--mode", "vendor", "--config", str(config), "--jobs", "4", "--format", fmt)
        assert code == 0, stderr
        assert "9 patch record(s) for 9 finding(s) via test-model: 9 model; 0 unfixed; 9 request(s)" in stderr
        text = out.read_text()
        rows = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
        records[fmt] = [{k: v for k, v in r.items() if k != "usage"} for r in rows]  # usage holds the request's latency
        # 300 a minute: starts 0.2 s apart, with room for delivery jitter. A budget per chunk
        # (tried by breaking it) lets a chunk's first request follow the last one's answer, 0.05-0.07 s later.
        arrivals = sorted(server.arrivals)
        assert all(b - a >= 0.13 for a, b in zip(arrivals, arrivals[1:])), [round(b - a, 3) for a, b in zip(arrivals, arrivals[1:])]
    assert records["jsonl"] == records["json"] and [r["id"] for r in records["json"]] == [json.loads(line)["id"] for line in chosen]
    assert made == [3, 3, 3]  # three applications of three findings, chunks of at most 4: one application each


def test_a_streamed_model_run_stopped_midway_keeps_the_chunks_it_finished(tmp_path, cli, monkeypatch):
    """The answers already paid for are not thrown away: the chunks done before
    the run stopped are in the file, whole records; nothing after them."""
    import k8s_auto_fix.propose.llm.distributed as distributed

    for app in ("shop", "blog"):
        write(tmp_path / "in" / app, "pod.yaml", f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {app}}}\nspec:\n  containers:\n  - {{name: c0, image: example.com/web:1.2}}\n")
    found = tmp_path / "d.jsonl"
    cli("detect", str(tmp_path / "in"), "--include", "no-read-only-root-fs", "--format", "jsonl", "--out", str(found))
    found.write_text("".join(line + "\n" for line in found.read_text().splitlines() if '"no-read-only-root-fs"' in line))
    monkeypatch.setattr(distributed, "CHUNK_LOCAL", 1)
    real = distributed.propose_with_model
    calls = []

    def stops_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(distributed, "propose_with_model", stops_at_the_second)
    monkeypatch.setenv("TEST_KEY", "sk-test")
    out = tmp_path / "p.jsonl"
    with ScriptedChat([{"content": GOOD}]) as server:
        config = write(tmp_path, "run.yaml", f'endpoints:\n  vendor: {{endpoint: "{server.url}", model: test-model, api_key_env: TEST_KEY}}\n')
        code, _, _ = cli("propose", "-d", str(found), "-o", str(out), "--mode", "vendor", "--config", str(config), "--format", "jsonl")
    assert code == 130 and len(calls) == 2  # Ctrl-C: "Aborted!", 128 + SIGINT
    first = json.loads(found.read_text().splitlines()[0])
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in kept] == [first["id"]] and kept[0]["source"] == "model"
    assert not list(tmp_path.glob(".p.jsonl*"))  # no temporary file left behind
