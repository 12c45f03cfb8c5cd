"""The proposer service over real HTTP, and the rate probe against a scripted endpoint."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from k8s_auto_fix.bench.chat_server import ScriptedChat
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import EndpointSettings, RunConfig
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.propose.llm.client import ChatClient
from k8s_auto_fix.propose.llm.probe import probe
from k8s_auto_fix.propose.service import ServiceState, create_app

TOKEN = "s3rvice-token"
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: app, image: 'nginx:1.25'}\n"


@pytest.fixture
def service():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = ServiceState(RunConfig(), TOKEN, "rules", None, max_body_bytes=64 * 1024)
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def a_detection(tmp_path) -> dict:
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    found = detect([str(path)], select_checks(), DetectOptions(jobs=1)).detections
    d = next(x for x in found if x.policy_id == "no-read-only-root-fs")
    return {**d.model_dump(by_alias=True, mode="json"), "manifest_yaml": POD, "manifest_path": "elsewhere/pod.yaml"}


def test_auth_size_limit_and_a_verified_proposal(service, tmp_path):
    body = a_detection(tmp_path)
    assert httpx.get(f"{service}/healthz").json()["status"] == "ok"
    assert httpx.post(f"{service}/v1/propose", json=body).status_code == 401
    assert httpx.post(f"{service}/v1/propose", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    huge = {**body, "manifest_yaml": POD + "#" * 100_000}
    assert httpx.post(f"{service}/v1/propose", json=huge, headers=auth).status_code == 413
    response = httpx.post(f"{service}/v1/propose", json=body, headers=auth, timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["patch"]["patch"][0]["path"].startswith("/spec/containers/0/")
    assert result["verdict"]["accepted"] is True and result["verdict"]["id"] == body["id"]
    metrics = httpx.get(f"{service}/metrics", headers=auth).text
    assert "k8s_auto_fix_proposals_accepted_total 1" in metrics and "k8s_auto_fix_requests_unauthorized_total 2" in metrics
    assert httpx.post(f"{service}/v1/propose", json={"nope": 1}, headers=auth).status_code == 422


def test_probe_finds_the_concurrency_limit():
    def answer(body):  # called under the server's lock
        return {"status": 429} if server.in_flight > 4 else {"content": "[]"}

    with ScriptedChat(responder=answer, delay=0.05) as server:
        config = RunConfig.model_validate({"proposer": {"retries": 0}})
        client = ChatClient(EndpointSettings(endpoint=server.url, model="m"), config.proposer)
        report = probe(client, max_concurrency=32, rounds=2)
        client.close()
    assert report["max_concurrency_without_429"] == 4
    assert report["levels"][-1]["rate_limited"] > 0 and report["levels"][0]["p50_s"] >= 0.05
    json.dumps(report)
