"""The proposer service over real HTTP, and the rate probe against a scripted endpoint."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from k8s_auto_fix.bench.chat_server import ScriptedChat
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import EndpointSettings, RunConfig
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.propose.llm.client import ChatClient
from k8s_auto_fix.propose.llm.probe import probe
from k8s_auto_fix.propose.service import ServiceState, server_for

TOKEN = "s3rvice-token"
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: app, image: 'nginx:1.25'}\n"


@pytest.fixture
def serve():
    """Start the service as `serve` builds it (real uvicorn, real sockets); returns its URL."""
    servers = []

    def start(**settings) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        state = ServiceState(RunConfig(), TOKEN, "rules", None, **{"max_body_bytes": 64 * 1024, **settings})
        server = server_for(state, "127.0.0.1", port)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def service(serve):
    return serve()


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


# --- issue 11: the service as an attacker and a careless client use it -------------------------

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _post(url, body, **kwargs):
    return httpx.post(f"{url}/v1/propose", json=body, headers=AUTH, timeout=30, **kwargs)


def test_manifest_path_is_refused_by_default_and_no_oracle_of_files(service, tmp_path):
    body = {**a_detection(tmp_path), "manifest_yaml": None}
    answers = [_post(service, {**body, "manifest_path": path}) for path in ("/etc/shadow", "/etc/passwd", "/nonexistent", str(tmp_path / "pod.yaml"))]
    assert {(r.status_code, r.text) for r in answers} == {(403, answers[0].text)}


def test_allow_root_reads_only_files_under_it(serve, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "pod.yaml").write_text(POD)
    (root / "escape.yaml").symlink_to("/etc/passwd")
    url = serve(allow_root=root)
    body = {**a_detection(tmp_path), "manifest_yaml": None}
    assert _post(url, {**body, "manifest_path": str(root / "pod.yaml")}).json()["verdict"]["accepted"] is True
    assert _post(url, {**body, "manifest_path": "pod.yaml"}).status_code == 200  # relative to the root
    for outside in (str(root / "escape.yaml"), str(root / ".." / "pod.yaml"), "/etc/shadow", str(root / "missing.yaml")):
        assert _post(url, {**body, "manifest_path": outside}).status_code == 403, outside


def test_no_digest_of_an_object_holding_a_secret(service, tmp_path):
    body = a_detection(tmp_path)
    assert _post(service, body).json()["patch"]["object_digest"]
    secret_env = POD.replace("image: 'nginx:1.25'}", "image: 'nginx:1.25', env: [{name: DB_PASSWORD, value: hunter2}]}")
    assert _post(service, {**body, "manifest_yaml": secret_env}).json()["patch"]["object_digest"] is None


def test_a_chunked_body_is_refused_while_it_streams(service):
    with socket.create_connection(("127.0.0.1", int(service.rsplit(":", 1)[1])), timeout=20) as sock:
        head = f"POST /v1/propose HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        sock.sendall(head.encode())
        chunk = b"x" * 16384
        for _ in range(8):  # 128 KiB against a 64 KiB limit, and the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = sock.recv(4096)  # on a server that buffers first, no answer ever comes
    assert answer.startswith(b"HTTP/1.1 413")
    assert "k8s_auto_fix_requests_too_large_total 1" in httpx.get(f"{service}/metrics", headers=AUTH).text


@pytest.mark.parametrize("token", ["Bearer ü-not-ascii", "Bearer \u20ac"])
def test_a_non_ascii_token_is_401(service, token):
    response = httpx.post(f"{service}/v1/propose", content=b"{}", headers={"Authorization": token.encode("utf-8")})
    assert response.status_code == 401


def test_a_missing_or_null_container_is_not_a_500(service, tmp_path):
    body = a_detection(tmp_path)
    ghost = _post(service, {**body, "container": "ghost"})
    assert ghost.status_code == 422 and "ghost" in ghost.json()["detail"]
    null = _post(service, {**body, "container": None})
    assert null.status_code == 200 and null.json()["patch"]["applicability"] == "manual"


@pytest.mark.parametrize(
    "text, said",
    [("kind: Pod\nmetadata: [unclosed\n", "line"), ("- just\n- a list\n", "no Kubernetes object"), ("", "no Kubernetes object")],
    ids=["broken-yaml", "not-an-object", "empty"],
)
def test_a_bad_manifest_says_what_is_wrong(service, tmp_path, text, said):
    response = _post(service, {**a_detection(tmp_path), "manifest_yaml": text or " "})
    assert response.status_code == 422 and said in response.json()["detail"] and "manifest_yaml" in response.json()["detail"]


def test_idle_partial_requests_are_closed(serve, tmp_path):
    url = serve(header_timeout=0.5, body_timeout=0.5)
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"POST /v1/propose HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert sock.recv(4096) == b""  # closed by the server (a server without deadlines never answers: recv times out)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"POST /v1/propose HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")
