"""risk, schedule, queue, metrics and run."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, write

from k8s_auto_fix.queue import open_queue
from k8s_auto_fix.queue.store import Queue, QueueError

SAMPLES = REPO / "examples"


def feeds(tmp_path):
    """Small feed files in the real formats; nginx:latest carries a known-exploited CVE."""
    epss = tmp_path / "epss.csv.gz"
    epss.write_bytes(gzip.compress(b"#model_version:v2025.03.14,score_date:2026-11-24T00:00:00+0000\ncve,epss,percentile\nCVE-2024-0001,0.97,0.999\nCVE-2023-1111,0.01,0.2\n"))
    kev = write(tmp_path, "kev.json", json.dumps({"title": "CISA Catalog of Known Exploited Vulnerabilities", "vulnerabilities": [{"cveID": "CVE-2024-0001", "vendorProject": "x"}]}))
    trivy = write(tmp_path, "trivy.json", json.dumps({
        "SchemaVersion": 2, "ArtifactName": "nginx:latest", "ArtifactType": "container_image",
        "Results": [{"Target": "nginx:latest (debian 12)", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl", "Severity": "CRITICAL"},
            {"VulnerabilityID": "CVE-2023-1111", "PkgName": "zlib", "Severity": "LOW"}]}]}))
    ubuntu = write(tmp_path, "trivy-ubuntu.json", json.dumps({"SchemaVersion": 2, "ArtifactName": "docker.io/library/ubuntu:22.04",
        "Results": [{"Target": "ubuntu", "Vulnerabilities": [{"VulnerabilityID": "CVE-2023-1111"}]}]}))
    return epss, kev, [trivy, ubuntu]


def test_run_writes_every_artefact_and_known_exploited_images_rank_first(tmp_path, cli):
    epss, kev, trivy = feeds(tmp_path)
    out = tmp_path / "o"
    args = ["run", str(SAMPLES), "--out", str(out), "--epss-csv", str(epss), "--kev-json", str(kev)]
    for report in trivy:
        args += ["--trivy-report", str(report)]
    code, stdout, stderr = cli(*args)
    assert code == 0, stderr
    for name in ("detections.json", "patches.json", "verified.json", "risk.json", "schedule.json", "queue.db", "metrics.json", "report.html"):
        assert (out / name).exists(), name
    schedule = json.loads((out / "schedule.json").read_text())
    detections = {d["id"]: d for d in json.loads((out / "detections.json").read_text())}
    kev_items = [i for i in schedule if i["kev"]]
    assert kev_items and schedule[: len(kev_items)] == kev_items  # known-exploited first
    assert {detections[i["id"]]["object"]["name"] for i in kev_items} == {"nginx-latest", "security-risk"}
    for item in schedule:
        assert set(item) >= {"id", "score", "R", "p", "Et", "wait", "kev", "explore"}
    risk = {r["id"]: r for r in json.loads((out / "risk.json").read_text())}
    assert risk[kev_items[0]["id"]]["max_epss"] == 0.97 and risk[kev_items[0]["id"]]["kev_cves"] == ["CVE-2024-0001"]
    # The queue serves the top-scored item; metrics agree with verified.json.
    code, stdout, _ = cli("queue", "next", "--db", str(out / "queue.db"))
    assert json.loads(stdout)["id"] == schedule[0]["id"]
    verified = json.loads((out / "verified.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["verified"] == len(verified) and metrics["accepted"] == sum(v["accepted"] for v in verified)
    assert metrics["detections"] == len(detections) and "failed_schema" in metrics
    page = (out / "report.html").read_text()
    for section in ('id="summary"', 'id="charts"', 'id="queue"', 'id="findings"', "<svg"):
        assert section in page
    assert "http://" not in page and "https://" not in page.split("kubernetes.io")[0]  # self-contained


@pytest.mark.parametrize(("name", "content", "message"), [
    ("kev.json", "{not json", "invalid JSON in KEV"),
    ("kev.json", '{"vulnerabilities": [{"x": 1}]}', "not a KEV catalogue"),
    ("epss.csv", "cve;score\n", "expected EPSS columns"),
])
def test_malformed_feeds_are_one_clear_error(tmp_path, cli, name, content, message):
    d = tmp_path / "d.json"
    cli("detect", str(SAMPLES), "--out", str(d))
    feed = write(tmp_path, name, content)
    option = "--kev-json" if name.startswith("kev") else "--epss-csv"
    code, _, stderr = cli("risk", "--detections", str(d), option, str(feed), "--out", str(tmp_path / "r.json"))
    assert code == 2 and message in stderr and str(feed) in stderr


def test_missing_or_malformed_verified_file(tmp_path, cli):
    d = tmp_path / "d.json"
    cli("detect", str(SAMPLES), "--out", str(d))
    code, _, stderr = cli("schedule", "--verified", str(tmp_path / "missing.json"), "--detections", str(d))
    assert code == 2 and "missing.json" in stderr
    bad = write(tmp_path, "v.json", '[{"id": "x"}]')
    code, _, stderr = cli("schedule", "--verified", str(bad), "--detections", str(d))
    assert code == 2 and "not a valid Verdict list" in stderr


def test_enqueue_is_idempotent(queue_url):
    queue = open_queue(queue_url, create=True)
    items = [{"id": f"i{n}", "policy_id": "c", "score": n} for n in range(5)]
    assert queue.enqueue(items) == (5, 0)
    assert queue.enqueue(items) == (0, 0)
    assert queue.enqueue([{**items[0], "score": 9}]) == (0, 1)  # a ready item takes the new score
    assert queue.next("w")["id"] == "i0"
    assert queue.enqueue([{**items[0], "score": 1}]) == (0, 0)  # a leased one keeps its state
    assert queue.stats() == {"ready": 4, "leased": 1, "done": 0, "failed": 0, "total": 5, "expired_leases": 0}
    queue.close()


def test_corrupt_queues_are_reported_not_reset(tmp_path):
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    with pytest.raises(QueueError, match="left as it is"):
        Queue(corrupt)
    assert corrupt.stat().st_size == 4096 + 16
    other = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(QueueError, match="not a k8s-auto-fix queue"):
        Queue(other)


def _drain(url: str, worker: str, results: str) -> None:
    queue = open_queue(url, lease_seconds=30)
    taken = []
    while (item := queue.next(worker)) is not None:
        taken.append(item["id"])
        queue.ack(item["id"], worker)
    with open(results, "w") as handle:
        json.dump(taken, handle)


def test_four_worker_processes_get_each_item_exactly_once(tmp_path, queue_url):
    queue = open_queue(queue_url, create=True)
    queue.enqueue([{"id": f"item-{n:03d}", "score": n % 17} for n in range(500)])
    queue.close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_drain, args=(queue_url, f"w{i}", str(tmp_path / f"w{i}.json"))) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    taken = [i for n in range(4) for i in json.loads((tmp_path / f"w{n}.json").read_text())]
    assert len(taken) == 500 and len(set(taken)) == 500
    assert open_queue(queue_url).stats()["done"] == 500


def test_a_worker_killed_while_holding_a_lease_loses_nothing(queue_url):
    queue = open_queue(queue_url, create=True)
    queue.enqueue([{"id": "only", "score": 1}])
    queue.close()
    code = f"""
import time, sys
sys.path.insert(0, {str(REPO / 'src')!r})
from k8s_auto_fix.queue import open_queue
q = open_queue({queue_url!r}, lease_seconds=1)
print(q.next("doomed")["id"], flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "only"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survivor = open_queue(queue_url, lease_seconds=30)
    assert survivor.next("survivor") is None  # still leased
    time.sleep(1.2)
    item = survivor.next("survivor")
    assert item["id"] == "only" and item["attempt"] == 2
    survivor.ack("only", "survivor")
    assert survivor.stats()["done"] == 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (scripts/setup.sh installs it where apt is available)")
def test_the_report_renders_in_headless_chromium(tmp_path, cli):
    out = tmp_path / "o"
    cli("run", str(SAMPLES), "--out", str(out))
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    for section in ("Summary", "Charts", "Ranked queue", "Findings and fixes"):
        assert section in dom


def test_bench_scheduler_reports_the_objective_for_every_policy_and_reviewer_count(tmp_path, cli):
    pytest.importorskip("matplotlib")
    code, stdout, stderr = cli("bench", "scheduler", str(SAMPLES), "--out", str(tmp_path / "b"), "--reviewers", "1", "--reviewers", "2",
                               "--alpha", "0.001", "--ageing-threshold", "1.0")
    assert code == 0, stderr
    report = json.loads((tmp_path / "b" / "scheduler-bench.json").read_text())
    assert (tmp_path / "b" / "scheduler-bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["fixes"] > 0 and set(report["reviewers"]) == {"1", "2"}
    policies = {"fifo", "risk", "shortest", "static", "scheduler", "oracle"}
    for panel in report["reviewers"].values():
        assert set(panel["policies"]) == policies and set(panel["curve"]) == policies | {"t_h"}
        assert panel["policies"]["fifo"]["ratio_to_fifo"] == 1.0
        assert all(row["risk_hours"] > 0 and row["longest_wait_h"] <= panel["horizon_h"] for row in panel["policies"].values())
        assert len(panel["learning"]) == 10
        assert [(row["alpha"], row["ageing_threshold"]) for row in panel["ageing"]] == [(0.0, 1.2), (0.01, 1.0), (0.001, 1.2)]
        assert all(row["longest_wait_h"] <= row["wait_bound_h"] for row in panel["ageing"] if row["alpha"] > 0)
        assert set(panel["targets"]) == {"ratio_to_fifo", "against_risk_only", "gap_closed", "longest_wait"}
    for heading in ("risk-hours and waits", "learning p and E[t]", "ageing against", "ratio_to_fifo"):
        assert heading in stdout
    code, _, stderr = cli("bench", "scheduler", str(SAMPLES), "--out", str(tmp_path / "c"), "--load", "0")
    assert code == 2 and "--load" in stderr
    code, stdout, stderr = cli("bench", "scheduler", str(SAMPLES), "--out", str(tmp_path / "d"), "--reviewers", "1", "--seed", "5", "--seed", "6")
    assert code == 0, stderr
    again = json.loads((tmp_path / "d" / "scheduler-bench.json").read_text())
    assert again["seed"] == 5 and [(row["seed"], row["reviewers"]) for row in again["seeds"]] == [(5, 1), (6, 1)]
    assert "every seed" in stdout


def test_scheduler_terms(tmp_path):
    from datetime import datetime, timedelta, timezone

    from k8s_auto_fix.config import ScheduleSettings
    from k8s_auto_fix.contracts import Applicability, Verdict
    from k8s_auto_fix.risk.score import RiskRecord
    from k8s_auto_fix.schedule.score import build_schedule

    verdicts = [
        Verdict(id="a", policy_id="latest-tag", accepted=True, applicability=Applicability.SAFE, patch_ops=1),
        Verdict(id="b", policy_id="no_latest_tag", accepted=False, patch_ops=1),
        Verdict(id="c", policy_id="host-port", accepted=True, applicability=Applicability.REVIEW, patch_ops=3),
    ]
    risks = [RiskRecord(id="a", policy_id="latest-tag", risk=0.5, severity="medium", severity_weight=0.5, exposure=0),
             RiskRecord(id="c", policy_id="host-port", risk=1.0, severity="critical", severity_weight=1, exposure=1, kev=True)]
    settings = ScheduleSettings()
    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    first = build_schedule(verdicts, risks, settings, now=now)
    assert [i.id for i in first] == ["c", "a"]  # KEV first; the rejected verdict is not scheduled
    a = next(i for i in first if i.id == "a")
    assert a.policy_id == "latest-tag" and a.p == (1 + 1) / (2 + 2)  # no_latest_tag counts as latest-tag history
    assert a.Et == settings.effort_minutes["safe"] + settings.minutes_per_op
    later = build_schedule(verdicts, risks, settings, previous=first, now=now + timedelta(hours=10))
    assert next(i for i in later if i.id == "a").wait == 10.0


def test_feeds_fetch_is_conditional_and_atomic(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from k8s_auto_fix.risk.feeds import FeedError, fetch_feeds, read_kev

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("If-None-Match"))
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            body = json.dumps({"vulnerabilities": [{"cveID": "CVE-2024-0001"}]}).encode()
            self.send_response(200)
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/kev.json"
    try:
        (path,) = fetch_feeds(tmp_path, sources=[(url, "kev.json")])
        assert read_kev(path) == {"CVE-2024-0001"}
        fetch_feeds(tmp_path, sources=[(url, "kev.json")])
        assert seen == [None, '"v1"']  # the second request was conditional
    finally:
        server.shutdown()
    with pytest.raises(FeedError, match="offline"):
        fetch_feeds(tmp_path, timeout=2, sources=[("http://127.0.0.1:9/none", "x.json")])


def test_exposure_through_load_balancers_ingresses_and_host_network(tmp_path, cli):
    write(tmp_path, "app.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: web, image: "nginx:1.25"}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api}
        spec:
          selector: {matchLabels: {app: api}}
          template:
            metadata: {labels: {app: api}}
            spec:
              containers: [{name: api, image: "nginx:1.25"}]
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              hostNetwork: true
              containers: [{name: agent, image: "busybox:1.36"}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: api}
        spec: {selector: {app: api}, ports: [{port: 80}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: api}
        spec:
          rules:
          - http:
              paths:
              - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
        """)
    d, r = tmp_path / "d.json", tmp_path / "r.json"
    cli("detect", str(tmp_path), "--out", str(d))
    code, _, stderr = cli("risk", "--detections", str(d), "--out", str(r))
    assert code == 0, stderr
    names = {x["id"]: x["object"]["name"] for x in json.loads(d.read_text())}
    exposure = {names[x["id"]]: (x["exposure"], x["exposure_reasons"]) for x in json.loads(r.read_text())}
    assert exposure["web"] == (1.0, ["Service web (LoadBalancer)"])
    assert exposure["api"] == (1.0, ["Ingress api -> Service api"])
    assert exposure["agent"] == (0.5, ["hostNetwork"])
