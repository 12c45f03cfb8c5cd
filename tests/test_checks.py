"""Each check on minimal objects: it fires with kube-linter's message, and it
stays quiet on the fixed object."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from k8s_auto_fix.checks import REGISTRY, Kinds, KubeLinter
from k8s_auto_fix.engines.builtin import run_checks
from k8s_auto_fix.manifests.context import Application
from k8s_auto_fix.manifests.objects import K8sObject

# The checks the pinned kube-linter (v0.8.3) enables by default.
KUBE_LINTER_DEFAULTS = {
    "dangling-service", "deprecated-service-account-field", "docker-sock", "drop-net-raw-capability",
    "duplicate-env-var", "env-var-secret", "host-ipc", "host-network", "host-pid", "invalid-target-ports",
    "job-ttl-seconds-after-finished", "latest-tag", "liveness-port", "mismatching-selector", "no-anti-affinity",
    "no-extensions-v1beta", "no-read-only-root-fs", "non-existent-service-account", "pdb-max-unavailable",
    "pdb-min-available", "pdb-unhealthy-pod-eviction-policy", "privilege-escalation-container",
    "privileged-container", "readiness-port", "run-as-non-root", "sensitive-host-mounts", "ssh-port",
    "startup-port", "unsafe-sysctls", "unset-cpu-requirements", "unset-memory-requirements",
}


def objects(text: str) -> list[K8sObject]:
    docs = [d for d in yaml.safe_load_all(textwrap.dedent(text)) if d]
    return [K8sObject("app.yaml", i, 1, d) for i, d in enumerate(docs)]


def messages(check_id: str, text: str) -> list[tuple[str, str | None]]:
    objs = objects(text)
    app = Application("app", objs)
    return [(f.violation.message, f.violation.container) for f in run_checks(app, [REGISTRY[check_id]]) if f.obj is objs[0]]


def pod(container: str = "", pod_spec: str = "", kind: str = "Pod", api: str = "") -> str:
    """A workload with one container named app; extra YAML is indented in place."""
    container = textwrap.indent(textwrap.dedent(container).strip(), " " * 4) if container.strip() else ""
    pod_spec = textwrap.indent(textwrap.dedent(pod_spec).strip(), " " * 2) if pod_spec.strip() else ""
    api = api or {"Pod": "v1", "Job": "batch/v1"}.get(kind, "apps/v1")
    body = f"""\
spec:
{pod_spec}
  containers:
  - name: app
    image: example.com/acme/app:1.25
{container}
"""
    if kind == "Pod":
        return f"apiVersion: {api}\nkind: Pod\nmetadata:\n  name: w\n  labels: {{app: w}}\n{body}"
    template = textwrap.indent(body, "    ")
    return (
        f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: w\nspec:\n  selector:\n    matchLabels: {{app: w}}\n"
        f"  template:\n    metadata:\n      labels: {{app: w}}\n{template}"
    )


def test_registry_metadata_is_complete():
    for check in REGISTRY.values():
        assert check.description and check.remediation and isinstance(check.kinds, Kinds), check.id
    defaults = {c.id for c in REGISTRY.values() if c.kube_linter is KubeLinter.DEFAULT}
    assert defaults == KUBE_LINTER_DEFAULTS
    assert all(REGISTRY[c].enabled_by_default for c in defaults)


CASES = [
    # (check, bad manifest, expected message, good manifest)
    ("no-read-only-root-fs", pod(), 'container "app" does not have a read-only root file system',
     pod("securityContext: {readOnlyRootFilesystem: true}")),
    ("run-as-non-root", pod(), 'container "app" is not set to runAsNonRoot', pod(pod_spec="securityContext: {runAsNonRoot: true}")),
    ("run-as-non-root", pod("securityContext: {runAsNonRoot: true, runAsUser: 0}"),
     'container "app" is set to runAsNonRoot, but runAsUser set to 0', pod(pod_spec="securityContext: {runAsUser: 1000}")),
    ("privileged-container", pod("securityContext: {privileged: true}"), 'container "app" is privileged', pod()),
    ("privilege-escalation-container", pod("securityContext: {allowPrivilegeEscalation: true}"),
     'container "app" has AllowPrivilegeEscalation set to true.', pod("securityContext: {allowPrivilegeEscalation: false}")),
    ("privilege-escalation-container", pod("securityContext: {capabilities: {add: [SYS_ADMIN]}}"),
     'container "app" has SYS_ADMIN capability hence allows privilege escalation.', pod("securityContext: {}")),
    ("privilege-escalation-not-disabled", pod(), 'container "app" does not set allowPrivilegeEscalation to false',
     pod("securityContext: {allowPrivilegeEscalation: false}")),
    ("drop-net-raw-capability", pod("securityContext: {capabilities: {drop: [CHOWN]}}"),
     'container "app" has DROP capabilities: ["CHOWN"], but does not drop capability "NET_RAW" which is required',
     pod("securityContext: {capabilities: {drop: [ALL]}}")),
    ("unsafe-sysctls", pod(pod_spec="securityContext: {sysctls: [{name: net.core.somaxconn, value: '1024'}]}"),
     'resource specifies unsafe sysctl "net.core.somaxconn".', pod(pod_spec="securityContext: {sysctls: [{name: kernel.domainname, value: '1'}]}")),
    ("latest-tag", pod().replace("example.com/acme/app:1.25", "registry:5000/app"),
     'The container "app" is using an invalid container image, "registry:5000/app". Please use images that are not '
     'blocked by the `BlockList` criteria : [".*:(latest)$" "^[^:]*$" "(.*/[^:]+)$"]', pod().replace("example.com/acme/app:1.25", "registry:5000/app:1.0")),
    ("env-var-secret", pod("env: [{name: DB_SECRET, value: hunter2}]"), 'environment variable DB_SECRET in container "app" found',
     pod("env: [{name: DB_SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}]")),
    ("duplicate-env-var", pod("env: [{name: A, value: '1'}, {name: A, value: '2'}]"),
     'Duplicate environment variable A in container "app" found', pod("env: [{name: A, value: '1'}]")),
    ("sensitive-host-mounts", pod("volumeMounts: [{name: etc, mountPath: /host/etc}]", "volumes: [{name: etc, hostPath: {path: /etc}}]"),
     'host system directory "/etc" is mounted on container "app"', pod(pod_spec="volumes: [{name: etc, hostPath: {path: /etc/app}}]")),
    ("docker-sock", pod("volumeMounts: [{name: d, mountPath: /var/run/docker.sock}]", "volumes: [{name: d, hostPath: {path: /var/run/docker.sock}}]"),
     'host system directory "/var/run/docker.sock" is mounted on container "app"', pod()),
    ("host-network", pod(pod_spec="hostNetwork: true"), "resource shares host's network namespace (via hostNetwork=true).", pod()),
    ("host-pid", pod(pod_spec="hostPID: true"), "object shares the host's process namespace (via hostPID=true).", pod()),
    ("host-ipc", pod(pod_spec="hostIPC: true"), "resource shares host's IPC namespace (via hostIPC=true).", pod()),
    ("ssh-port", pod("ports: [{containerPort: 22}]"), 'port 22 and protocol TCP in container "app" found', pod("ports: [{containerPort: 2222}]")),
    ("unset-cpu-requirements", pod(), 'container "app" has cpu request 0', pod("resources: {requests: {cpu: 100m}}")),
    ("unset-memory-requirements", pod("resources: {limits: {memory: '0'}}"), 'container "app" has memory limit 0', pod("resources: {limits: {memory: 128Mi}}")),
    ("readiness-port", pod("readinessProbe: {httpGet: {port: http}}\nports: [{containerPort: 8080, name: web}]"),
     'container "app" does not expose port http for the HTTPGet', pod("readinessProbe: {httpGet: {port: web}}\nports: [{containerPort: 8080, name: web}]")),
    ("liveness-port", pod("livenessProbe: {tcpSocket: {port: 9090}}\nports: [{containerPort: 8080}]"),
     'container "app" does not expose port 9090 for the TCPSocket', pod("livenessProbe: {tcpSocket: {port: 8080}}\nports: [{containerPort: 8080}]")),
    ("startup-port", pod("startupProbe: {grpc: {port: 9090}}"), 'container "app" does not expose port 9090 for the GRPC check',
     pod("startupProbe: {exec: {command: [true]}}")),
    ("invalid-target-ports", pod("ports: [{containerPort: 80, name: Http--Port}]"),
     'port name "Http--Port" in container "app" must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
     pod("ports: [{containerPort: 80, name: http}]")),
    ("deprecated-service-account-field", pod(pod_spec="serviceAccount: old"),
     "serviceAccount is specified (old), but this field is deprecated; use serviceAccountName instead", pod(pod_spec="serviceAccountName: new")),
    ("mismatching-selector", pod(kind="Deployment").replace("matchLabels: {app: w}", "matchLabels: {app: other}"),
     "labels in pod spec (map[app:w]) do not match labels in selector (&LabelSelector{MatchLabels:map[string]string{app: other,},"
     "MatchExpressions:[]LabelSelectorRequirement{},})", pod(kind="Deployment")),
    ("no-anti-affinity", pod(kind="Deployment").replace("spec:\n  selector", "spec:\n  replicas: 3\n  selector"),
     "object has 3 replicas but does not specify inter pod anti-affinity", pod(kind="Deployment")),
    ("no-extensions-v1beta", "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\n",
     "disallowed API object found: extensions/v1beta1, Kind=Ingress", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n"),
    ("pdb-unhealthy-pod-eviction-policy", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {maxUnavailable: 1}\n",
     "unhealthyPodEvictionPolicy is not explicitly set",
     "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {maxUnavailable: 1, unhealthyPodEvictionPolicy: AlwaysAllow}\n"),
    ("pdb-max-unavailable", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {maxUnavailable: 0%}\n",
     "MaxUnavailable is set to 0", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {maxUnavailable: 10%}\n"),
    ("job-ttl-seconds-after-finished", pod(kind="Job", api="batch/v1"), "Standalone Job does not specify ttlSecondsAfterFinished",
     pod(kind="Job", api="batch/v1").replace("spec:\n  selector", "spec:\n  ttlSecondsAfterFinished: 100\n  selector")),
    # ours
    ("unset-seccomp-profile", pod(), 'container "app" does not set a seccomp profile (seccompProfile.type)',
     pod(pod_spec="securityContext: {seccompProfile: {type: RuntimeDefault}}")),
    ("capabilities-not-dropped", pod(), 'container "app" does not drop capabilities ALL', pod("securityContext: {capabilities: {drop: [all]}}")),
    ("sys-admin-capability", pod("securityContext: {capabilities: {add: [CAP_SYS_ADMIN]}}"), 'container "app" adds capability "CAP_SYS_ADMIN"', pod()),
    ("run-as-root-uid", pod(pod_spec="securityContext: {runAsUser: 0}"), 'container "app" runs as UID 0',
     pod("securityContext: {runAsUser: 1000}", "securityContext: {runAsUser: 0}")),
    ("host-path-volume", pod(pod_spec="volumes: [{name: d, hostPath: {path: /data}}]"), 'volume "d" mounts host path "/data"',
     pod(pod_spec="volumes: [{name: d, emptyDir: {}}]")),
    ("host-port", pod("ports: [{containerPort: 80, hostPort: 8080}]"), 'container "app" binds host port 8080', pod("ports: [{containerPort: 80}]")),
]


@pytest.mark.parametrize(("check_id", "bad", "message", "good"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_fires_on_bad_and_not_on_good(check_id, bad, message, good):
    assert message in [m for m, _ in messages(check_id, bad)]
    assert messages(check_id, good) == []


@pytest.mark.parametrize("context", ["{privileged: true}", "{capabilities: {add: [SYS_ADMIN]}}", "{allowPrivilegeEscalation: true}"])
def test_unset_privilege_escalation_is_left_to_privilege_escalation_container_where_false_cannot_be_set(context):
    # Kubernetes refuses allowPrivilegeEscalation: false beside privileged or SYS_ADMIN; an explicit true is the other check's.
    assert messages("privilege-escalation-not-disabled", pod(f"securityContext: {context}")) == []
    assert messages("privilege-escalation-container", pod(f"securityContext: {context}")) != []


def test_container_checks_cover_init_and_ephemeral_containers_but_probes_only_regular():
    text = pod(
        "readinessProbe: {httpGet: {port: 1}}",
        """
        initContainers:
        - {name: init, image: busybox:1, readinessProbe: {httpGet: {port: 1}}}
        ephemeralContainers:
        - {name: debug, image: busybox:1}
        """,
    )
    assert sorted(c for _, c in messages("no-read-only-root-fs", text)) == ["app", "debug", "init"]
    assert [c for _, c in messages("readiness-port", text)] == ["app"]


def test_cronjob_pod_template_is_found():
    text = """
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: c}
    spec:
      schedule: "* * * * *"
      jobTemplate:
        spec:
          template:
            spec:
              containers: [{name: job, image: "busybox:latest"}]
    """
    assert [c for _, c in messages("latest-tag", text)] == ["job"]


def test_container_security_context_overrides_the_pod():
    overridden = pod("securityContext: {runAsNonRoot: false}", "securityContext: {runAsNonRoot: true}")
    inherited = pod("", "securityContext: {runAsNonRoot: true}")
    assert messages("run-as-non-root", overridden) == [('container "app" is not set to runAsNonRoot', "app")]
    assert messages("run-as-non-root", inherited) == []


def test_extensions_workloads_are_not_deployment_like_but_are_flagged_as_deprecated():
    text = pod(kind="Deployment", api="extensions/v1beta1")
    assert messages("no-read-only-root-fs", text) == []
    assert messages("no-extensions-v1beta", text) == [("disallowed API object found: extensions/v1beta1, Kind=Deployment", None)]


def test_ignore_annotations_are_honoured():
    base = pod()
    one = base.replace("  labels: {app: w}", "  labels: {app: w}\n  annotations: {ignore-check.kube-linter.io/latest-tag: 'ok'}")
    every = base.replace("  labels: {app: w}", "  labels: {app: w}\n  annotations: {kube-linter.io/ignore-all: 'x'}")
    bad = one.replace("example.com/acme/app:1.25", "example.com/acme/app")
    assert messages("latest-tag", bad) == []
    assert messages("no-read-only-root-fs", one)
    assert messages("no-read-only-root-fs", every) == []


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: w}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_dangling_service_sees_pods_of_the_same_application_and_namespace():
    assert messages("dangling-service", SERVICE) == [("no pods found matching service labels (map[app:w])", None)]
    assert messages("dangling-service", SERVICE + "---\n" + pod(kind="Deployment")) == []
    other_ns = pod(kind="Deployment").replace("  name: w\n", "  name: w\n  namespace: other\n", 1)
    assert messages("dangling-service", SERVICE + "---\n" + other_ns) != []


def test_non_existent_service_account_and_the_default_one():
    workload = pod(pod_spec="serviceAccountName: robot")
    assert messages("non-existent-service-account", workload) == [('serviceAccount "robot" not found', None)]
    account = "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\n"
    assert messages("non-existent-service-account", workload + account) == []
    assert messages("non-existent-service-account", pod(pod_spec="serviceAccountName: default")) == []


def test_pdb_min_available_counts_replicas_of_the_selected_workload():
    deployment = pod(kind="Deployment").replace("spec:\n  selector", "spec:\n  replicas: 2\n  selector")
    pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: w}}\n"
    found = messages("pdb-min-available", pdb + "---\n" + deployment)
    assert found == [("The current number of replicas for deployment w is equal to or lower than the minimum number of replicas specified by its PDB.", None)]
    assert messages("pdb-min-available", pdb.replace("minAvailable: 2", "minAvailable: 1") + "---\n" + deployment) == []
