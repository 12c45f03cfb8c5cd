"""Issue 11, item 11: a fuzz test over mistyped fields, for every stage.

A seeded generator takes valid objects of many kinds, replaces the value of
one field (anywhere in the object) with a value of another type, and runs
detect, propose, verify, fix and run over the mutants plus one intact file.
No stage may raise or lose an application: each mistyped object is at most
its own error, and the intact file's findings are always there."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from conftest import write

from k8s_auto_fix.cli import app

BASE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}, annotations: {team: shop}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      securityContext: {runAsNonRoot: true, sysctls: [{name: net.ipv4.ip_forward, value: "1"}]}
      affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}
      tolerations: [{key: k, operator: Exists}]
      volumes: [{name: data, hostPath: {path: /var/data}}, {name: tmp, emptyDir: {}}]
      initContainers:
      - {name: init, image: busybox:1.36, command: [sh, -c, "true"]}
      containers:
      - name: app
        image: nginx:latest
        command: [nginx]
        args: [-g, daemon off;]
        ports: [{containerPort: 80, hostPort: 80, protocol: TCP}]
        env: [{name: MODE, value: prod}, {name: KEY, valueFrom: {secretKeyRef: {name: s, key: k}}}]
        envFrom: [{configMapRef: {name: cm}}]
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
        securityContext: {privileged: true, allowPrivilegeEscalation: true, capabilities: {add: [NET_ADMIN], drop: [NET_RAW]}, seccompProfile: {type: Unconfined}}
        volumeMounts: [{name: data, mountPath: /data}, {name: tmp, mountPath: /tmp}]
        livenessProbe: {httpGet: {path: /, port: 80}}
        readinessProbe: {exec: {command: [cat, /ready]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: 80, nodePort: 30080}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          hostNetwork: true
          containers: [{name: job, image: "busybox:1.36", securityContext: {runAsUser: 0}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: admin, namespace: shop}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: admin, namespace: shop}
subjects: [{kind: ServiceAccount, name: web, namespace: shop}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: admin}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {}}]}], policyTypes: [Ingress]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec: {minAvailable: 2, selector: {matchLabels: {app: web}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}, minReplicas: 1, maxReplicas: 3}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec: {rules: [{host: shop.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: shop}
data: {LOG: debug}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
"""
INTACT = """
apiVersion: v1
kind: Pod
metadata:
  name: intact
spec:
  containers:
    - name: app
      image: nginx:1.25
"""
WRONG_VALUES = ["ALL", 3, -1, 2.5, True, None, [], {}, ["x"], [3], {"a": 1}, {"a": [1]}, "", [None], [{"x": []}]]


def _paths(node, prefix=()):
    """Every place in an object that holds a value: (path, value)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        if prefix == () and key in ("apiVersion", "kind"):
            continue  # without them it is not an object at all (a note, already handled)
        yield (*prefix, key), child
        yield from _paths(child, (*prefix, key))


def _mutant(obj: dict, rng: random.Random) -> tuple[dict, str]:
    """``obj`` with one field's value replaced by one of another type."""
    mutant = json.loads(json.dumps(obj))
    path, value = rng.choice(list(_paths(mutant)))
    wrong = rng.choice([w for w in WRONG_VALUES if type(w) is not type(value)])
    parent = mutant
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = wrong
    return mutant, f"{'.'.join(map(str, path))} = {wrong!r}"


def _mutants(seed: int, count: int) -> list[tuple[dict, str]]:
    rng = random.Random(seed)
    objects = list(yaml.safe_load_all(BASE))
    return [_mutant(rng.choice(objects), rng) for _ in range(count)]


def _invoke(runner, *args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("seed", [int(s) for s in __import__("os").environ.get("FUZZ_SEEDS", "11,12,13").split(",")])
def test_mistyped_fields_never_crash_a_stage(tmp_path, runner, seed):
    folder = tmp_path / "in"
    mutants = _mutants(seed, 40)
    for index, (mutant, what) in enumerate(mutants):
        write(folder, f"m{index:02d}.yaml", f"# {what}\n" + yaml.safe_dump(mutant, sort_keys=False))
    write(folder, "intact.yaml", INTACT)
    stages = []
    detections, patches, verified = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "v.json"
    stages.append(("detect", _invoke(runner, "detect", str(folder), "--out", str(detections))))
    stages.append(("propose", _invoke(runner, "propose", "-d", str(detections), "--out", str(patches))))
    stages.append(("verify", _invoke(runner, "verify", "-p", str(patches), "-d", str(detections), "--out", str(verified))))
    stages.append(("fix", _invoke(runner, "fix", str(folder), "--diff", "--unsafe-fixes")))
    stages.append(("run", _invoke(runner, "run", str(folder), "--out", str(tmp_path / "run"))))
    for stage, (code, stdout, stderr) in stages:
        assert code in (0, 1, 2), (stage, code, stderr[-2000:])
        assert "Traceback" not in stderr and "could not process" not in stderr, (stage, stderr[-2000:])
    found = json.loads(detections.read_text())
    assert any(d["manifest_path"].endswith("intact.yaml") for d in found)  # nothing lost
    assert "intact.yaml" in stages[3][1][1]  # fix still fixes the intact file


BAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers:
      - name: app
        image: "nginx:1.25"
        securityContext: {capabilities: ALL}
---
apiVersion: v1
kind: Pod
metadata:
  name: mounts
spec:
  containers:
  - {name: app, image: "nginx:1.25", volumeMounts: 3}
---
apiVersion: v1
kind: Pod
metadata: hello
spec:
  containers:
  - {name: x, image: "nginx:1.25"}
"""


def test_the_reported_examples_are_their_objects_errors(tmp_path, cli):
    folder = tmp_path / "app"
    write(folder, "bad.yaml", BAD)
    write(folder, "intact.yaml", INTACT)
    code, _, stderr = cli("detect", str(folder), "--out", str(tmp_path / "d.json"))
    assert code == 2
    for line, said in ((12, "securityContext.capabilities: a string ('ALL') where an object belongs"), (20, "volumeMounts: a number (3) where a list belongs"),
                       (24, "metadata: a string ('hello') where an object belongs")):
        assert f"bad.yaml:{line}:" in stderr and said in stderr, said
    code, stdout, stderr = cli("fix", str(folder), "--diff")
    assert code == 2 and "intact.yaml" in stdout and "fixable in 1 file(s)" in stderr  # the application's other file is still fixed
    code, _, stderr = cli("run", str(folder), "--out", str(tmp_path / "run"))
    assert code == 2 and "Traceback" not in stderr


def test_a_patch_that_mistypes_a_field_is_refused_by_verify(tmp_path, runner):
    write(tmp_path, "in/intact.yaml", BASE)
    detections = tmp_path / "d.json"
    _invoke(runner, "detect", str(tmp_path / "in"), "--out", str(detections))
    found = json.loads(detections.read_text())
    objects = list(yaml.safe_load_all(BASE))
    rng = random.Random(7)
    records = []
    for index in range(60):
        finding = rng.choice(found)
        obj = objects[finding["document_index"]]
        path, value = rng.choice(list(_paths(obj)))
        wrong = rng.choice([w for w in WRONG_VALUES if type(w) is not type(value)])
        pointer = "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)
        records.append({"id": finding["id"], "policy_id": finding["policy_id"], "source": "rules", "applicability": "safe", "explanation": f"fuzz {index}",
                        "patch": [{"op": "replace", "path": pointer, "value": wrong}]})  # fmt: skip
    patches, verified = tmp_path / "p.json", tmp_path / "v.json"
    patches.write_text(json.dumps(records))
    code, _, stderr = _invoke(runner, "verify", "-p", str(patches), "-d", str(detections), "--include-errors", "--out", str(verified))
    verdicts = json.loads(verified.read_text())
    assert code in (0, 1) and len(verdicts) == len(records)
    assert sum("mistyped" in " ".join(v["errors"] or []) for v in verdicts) > 20
