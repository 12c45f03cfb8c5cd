"""Issue 11, item 2: no secret reaches the model endpoint. Each secret below is
a canary that must not appear in any request body the model server records."""

from __future__ import annotations

import json

from conftest import write

from k8s_auto_fix.bench.chat_server import ScriptedChat
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import EndpointSettings, RunConfig
from k8s_auto_fix.detect import DetectOptions, detect
from k8s_auto_fix.manifests.store import ObjectStore
from k8s_auto_fix.propose.llm.client import ChatClient
from k8s_auto_fix.propose.llm.loop import ModelProposer
from k8s_auto_fix.propose.llm.redact import high_entropy, redact
from k8s_auto_fix.verify.verifier import Verifier, VerifyOptions

LAST_APPLIED = json.dumps(
    {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"env": [{"name": "DB_PASSWORD", "value": "lastapplied-canary-1a"}]}]}}}}
)
CANARIES = {
    "last-applied-configuration": "lastapplied-canary-1a",
    "env DB_PASS": "dbpass-canary-2b",
    "env CREDS": "creds-canary-3c",
    "DATABASE_URL userinfo": "url-canary-4d",
    "sk_live_ key": "sk_live_Canary5e5e5e5e5e5e",
    "Slack webhook": "slackcanary6f",
    "--db-password=": "argcanary7a",
    "--api-key VALUE": "argcanary8b",
    "mysql -p": "mysqlcanary9c",
    "ConfigMap db_url": "cmurlcanary10",
    "app.properties": "propcanary11",
    "high-entropy token": "Zx9Qw3Er7Ty1Ui5Op2As8Df4Gh6Jk0Lm",
    "query parameter": "querycanary12",
    "shell --token VALUE": "shellcanary13",
}
MANIFESTS = f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{LAST_APPLIED}'
    team: shop
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: example.com/shop/web:1.25
        command: ["sh", "-c", "mysql -uroot -pmysqlcanary9c -h db app && serve --token shellcanary13"]
        args: ["--db-password=argcanary7a", "--api-key", "argcanary8b", "--port=8080"]
        env:
        - {{name: DB_PASS, value: dbpass-canary-2b}}
        - {{name: CREDS, value: creds-canary-3c}}
        - {{name: DATABASE_URL, value: "postgres://app:url-canary-4d@db:5432/app"}}
        - {{name: PAYMENT, value: sk_live_Canary5e5e5e5e5e5e}}
        - {{name: NOTIFY, value: "https://hooks.slack.com/services/T0000/B0000/slackcanary6f"}}
        - {{name: SEED, value: Zx9Qw3Er7Ty1Ui5Op2As8Df4Gh6Jk0Lm}}
        - {{name: UPSTREAM, value: "http://api.internal/v1?user=app&password=querycanary12"}}
        - {{name: MODE, value: production}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data:
  db_url: "mysql://root:cmurlcanary10@db/app"
  app.properties: |
    spring.datasource.password=propcanary11
    server.port=8080
  LOG_LEVEL: debug
"""


def test_no_canary_reaches_the_model(tmp_path):
    write(tmp_path, "app.yaml", MANIFESTS)
    found = [d for d in detect([str(tmp_path)], select_checks(), DetectOptions(jobs=1)).detections if d.policy_id == "no-read-only-root-fs"]
    # The model sees the object of a finding: point one at the ConfigMap too.
    found.append(found[0].model_copy(update={"id": "configmap", "document_index": 1, "container": None}))
    config = RunConfig.model_validate({"max_attempts": 1, "proposer": {"retries": 0}, "rules": {"enabled": False}})
    store = ObjectStore()
    with ScriptedChat([{"content": "[]"}]) as server:
        client = ChatClient(EndpointSettings(endpoint=server.url, model="m"), config.proposer, api_key="k")
        try:
            ModelProposer(client, config, Verifier(select_checks(), VerifyOptions(), store), store, "vendor").propose_all(found)
        finally:
            client.close()
    sent = json.dumps([r["body"] for r in server.requests])
    assert len(server.requests) == 2 and "kind: ConfigMap" in sent
    leaked = [what for what, canary in CANARIES.items() if canary in sent]
    assert leaked == []
    # What is not secret still reaches the model, and the flags keep their names.
    for kept in ("production", "server.port=8080", "--port=8080", "--db-password=<redacted-", "team: shop", "debug"):
        assert kept in sent, kept
    assert "last-applied-configuration" not in sent


def test_entropy_rule_spares_digests_hostnames_and_words():
    for ordinary in ("sha256:" + "ab12" * 16, "my-service.default.svc.cluster.local", "ReadWriteOncePod", "TLS_ECDHE_RSA_WITH_AES"):
        assert not high_entropy(ordinary), ordinary
    assert high_entropy("Zx9Qw3Er7Ty1Ui5Op2As8Df4Gh6Jk0Lm")


def test_placeholders_are_never_redacted_twice():
    red = redact({"kind": "Pod", "spec": {"args": ["--password", "postgres://u:pw@h/db"]}})
    assert all(not original.startswith("<redacted-") for original in red.originals.values())
