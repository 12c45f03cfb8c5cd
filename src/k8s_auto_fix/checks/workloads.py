"""Workload controllers: selectors, replicas, scheduling spread, rollout, Jobs."""

from __future__ import annotations

from pydantic import Field

from ..contracts import Applicability, Severity
from ..manifests.selectors import (
    SelectorError,
    from_label_selector,
    from_match_labels,
    go_map,
    labels_string,
)
from .common import WORKLOADS, as_dict, as_list, string_matcher
from .patching import append, set_value
from .registry import Fix, FixContext, Kinds, KubeLinter, Proposal, Violation, check, setting, template

HOSTNAME = "kubernetes.io/hostname"


def workload_selector(obj) -> tuple[bool, object]:
    """(found, selector) as kube-linter extracts it; Pods and RCs have none."""
    spec = as_dict(obj.data.get("spec"))
    if obj.kind == "DeploymentConfig":
        selector = spec.get("selector")
        return True, None if selector is None else {"matchLabels": selector}
    if obj.kind == "CronJob":
        return True, as_dict(as_dict(spec.get("jobTemplate")).get("spec")).get("selector")
    if obj.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return True, spec.get("selector")
    return False, None


def replicas(obj) -> int | None:
    """spec.replicas where the kind has it (unset means 1); None for kinds without it."""
    if obj.kind not in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "DeploymentConfig"):
        return None
    value = as_dict(obj.data.get("spec")).get("replicas")
    if value is None:
        return 1
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _gogo_selector(selector: dict) -> str:
    """The generated String() of *metav1.LabelSelector, as kube-linter prints it."""
    labels = as_dict(selector.get("matchLabels"))
    label_part = "".join(f"{k}: {labels[k]}," for k in sorted(labels, key=str))
    expressions = "".join(
        "LabelSelectorRequirement{Key:%s,Operator:%s,Values:[%s],}," % (e.get("key", ""), e.get("operator", ""), " ".join(map(str, as_list(e.get("values")))))
        for e in map(as_dict, as_list(selector.get("matchExpressions")))
    )
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{label_part}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )


@template("mismatching-selector")
def mismatching_selector():
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        found, selector = workload_selector(obj)
        if not found:
            return
        selector = as_dict(selector) if selector is not None else None
        at = (*obj.pod_spec_segments[:-2], "selector")  # next to the pod template
        if not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions")):
            if obj.kind not in ("Job", "CronJob"):
                yield Violation("object has no selector specified", path=at)
            return
        try:
            parsed = from_label_selector(selector)
        except SelectorError as err:
            yield Violation(f"object has invalid label selector: {err}", path=at)
            return
        if not parsed.matches(obj.pod_labels):
            yield Violation(
                f"labels in pod spec ({go_map(obj.pod_labels)}) do not match labels in selector ({_gogo_selector(selector)})", path=at
            )

    return detect


def _plural(count: int) -> str:
    return "replicas" if count > 1 else "replica"


@template("anti-affinity")
def anti_affinity(minReplicas=2, topologyKey=""):
    topology_matches = string_matcher(topologyKey) if topologyKey else (lambda key: key == HOSTNAME)

    def term_problem(term: dict, obj) -> str | None:
        namespaces = [str(n) for n in as_list(term.get("namespaces"))]
        if namespaces and obj.namespace not in namespaces:
            return f"pod's namespace \"{obj.namespace}\" not found in anti-affinity's namespaces [{', '.join(namespaces)}]"
        try:
            selector = from_label_selector(term.get("labelSelector"))
        except SelectorError as err:
            return str(err)
        key = str(term.get("topologyKey", ""))
        if not topology_matches(key):
            return f"anti-affinity's topology key does not match \"{key}\""
        if not selector.matches(obj.pod_labels):
            return f"pod's labels \"{labels_string(obj.pod_labels)}\" do not match with anti-affinity's labels \"{selector}\""
        return None

    def detect(obj, app):
        count = replicas(obj)
        if not obj.is_deployment_like or count is None or count < minReplicas:
            return
        anti = as_dict(obj.pod_spec.get("affinity")).get("podAntiAffinity")
        at = (*obj.pod_spec_segments, "affinity", "podAntiAffinity")
        if not isinstance(anti, dict):
            yield Violation(f"object has {count} {_plural(count)} but does not specify inter pod anti-affinity", path=at)
            return
        preferred = [as_dict(as_dict(t).get("podAffinityTerm")) for t in as_list(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))]
        required = [as_dict(t) for t in as_list(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))]
        if not preferred and not required:
            yield Violation(
                f"object has {count} {_plural(count)} but does not specify preferred or required inter pod anti-affinity during scheduling", path=at
            )
            return
        problems = [term_problem(term, obj) for term in preferred + required]
        if all(problems):
            yield from (Violation(p, path=at) for p in problems)

    return detect


@template("minimum-replicas")
def minimum_replicas(minReplicas=3):
    def detect(obj, app):
        count = replicas(obj)
        if obj.is_deployment_like and count is not None and count < minReplicas:
            message = f"object has {count} {'replicas' if count > 1 else 'replica'} but minimum required replicas is {minReplicas}"
            yield Violation(message, path=(*obj.pod_spec_segments[:-2], "replicas"))

    return detect


@template("restart-policy")
def restart_policy():
    accepted = ["Always", "OnFailure"]

    def detect(obj, app):
        if obj.is_deployment_like:
            policy = str(obj.pod_spec.get("restartPolicy") or "")
            if policy not in accepted:
                yield Violation(
                    f"object has a restart policy defined with '{policy}' but the only accepted restart policies are '[{' '.join(accepted)}]'",
                    path=(*obj.pod_spec_segments, "restartPolicy"),
                )

    return detect


@template("update-configuration")
def update_configuration(strategyTypeRegex="", **_bounds):
    type_matches = string_matcher(strategyTypeRegex)

    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        spec = as_dict(obj.data.get("spec"))
        field = "strategy" if obj.kind in ("Deployment", "DeploymentConfig") else "updateStrategy" if obj.kind in ("DaemonSet", "StatefulSet") else None
        if field is None:
            return
        kind = str(as_dict(spec.get(field)).get("type") or "")
        if not type_matches(kind):
            yield Violation(f"object has {kind or 'no'} strategy type but must match regex {strategyTypeRegex}", path=("spec", field, "type"))

    return detect


@template("priority-class-name")
def priority_class_name(acceptedPriorityClassNames=()):
    accepted = list(acceptedPriorityClassNames)

    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        name = str(obj.pod_spec.get("priorityClassName") or "")
        if name.strip() and name not in accepted:
            yield Violation(
                f"object has a priority class name defined with '{name}' but the only accepted priority class names are '[{' '.join(accepted)}]'",
                path=(*obj.pod_spec_segments, "priorityClassName"),
            )

    return detect


@template("no-node-affinity")
def no_node_affinity():
    def detect(obj, app):
        if obj.is_deployment_like and not as_dict(obj.pod_spec.get("affinity")).get("nodeAffinity"):
            yield Violation("object does not define any node affinity rules.", path=(*obj.pod_spec_segments, "affinity", "nodeAffinity"))

    return detect


@template("job-ttl-seconds-after-finished")
def job_ttl_seconds_after_finished():
    def detect(obj, app):
        if obj.api_version != "batch/v1":
            return
        spec = as_dict(obj.data.get("spec"))
        if obj.kind == "Job" and spec.get("ttlSecondsAfterFinished") is None:
            yield Violation("Standalone Job does not specify ttlSecondsAfterFinished", path=("spec", "ttlSecondsAfterFinished"))
        elif obj.kind == "CronJob" and as_dict(as_dict(spec.get("jobTemplate")).get("spec")).get("ttlSecondsAfterFinished") is not None:
            yield Violation(
                "Managed Job specifies ttlSecondsAfterFinished which might conflict with successfulJobsHistoryLimit and "
                "failedJobsHistoryLimit from CronJob that have default values. Final behaviour is determined by the strictest "
                "parameter, and therefore, setting ttlSecondsAfterFinished at the job level can result with unexpected "
                "behaviour with regard to finished jobs removal",
                path=("spec", "jobTemplate", "spec", "ttlSecondsAfterFinished"),
            )

    return detect


def _fix_anti_affinity(ctx: FixContext) -> Proposal | None:
    """A preferred (never blocking) spread of this workload's pods over nodes."""
    labels = ctx.obj.pod_labels
    try:
        from_match_labels(labels)
    except SelectorError:
        labels = {}
    if not labels:
        return Proposal.manual("the pods have no valid labels to select them by")
    term = {
        "weight": 100,
        "podAffinityTerm": {"labelSelector": {"matchLabels": dict(labels)}, "topologyKey": HOSTNAME},
    }
    path = (*ctx.obj.pod_spec_segments, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution")
    return Proposal(append(ctx.obj.data, path, term))


setting("job_ttl_seconds_after_finished", int, Field(86400, ge=0))


def _fix_job_ttl(ctx: FixContext) -> Proposal | None:
    if ctx.obj.kind == "Job":
        return Proposal(set_value(ctx.obj.data, ("spec", "ttlSecondsAfterFinished"), ctx.settings.job_ttl_seconds_after_finished))
    return Proposal.manual(
        "the jobTemplate's ttlSecondsAfterFinished is written by the author; remove it if the CronJob's history limits should clean up its Jobs"
    )


check(
    "mismatching-selector",
    template="mismatching-selector",
    description="Indicates when deployment selectors fail to match the pod template labels.",
    remediation="Confirm that your deployment selector correctly matches the labels in its pod template.",
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    fix=Fix.manual(
        "A selector cannot be changed on a live Deployment and labels identify pods to Services; the author must choose.",
        "make spec.selector and the pod template labels agree",
    ),
)
check(
    "no-anti-affinity",
    template="anti-affinity",
    params={"minReplicas": 2},
    description=(
        "Indicates when deployments with multiple replicas fail to specify inter-pod anti-affinity, to ensure that "
        "the orchestrator attempts to schedule replicas on different nodes."
    ),
    remediation=(
        "Specify anti-affinity in your pod specification to ensure that the orchestrator attempts to schedule replicas "
        "on different nodes. Using podAntiAffinity, specify a labelSelector that matches pods for the deployment, and "
        "set the topologyKey to kubernetes.io/hostname. Refer to "
        "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#inter-pod-affinity-and-anti-affinity for details."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS,
    fix=Fix(
        Applicability.SAFE,
        "A preferred anti-affinity term only ranks nodes; it never keeps a pod from being scheduled.",
        _fix_anti_affinity,
        remedy=("pod.affinity.podAntiAffinity",),
    ),
    guidance="""
Append to `affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution` of the pod spec a term with
`weight: 100` and `podAffinityTerm: {labelSelector: {matchLabels: <the pod template's labels>}, topologyKey:
kubernetes.io/hostname}`. Preferred terms never block scheduling.
""",
)
check(
    "job-ttl-seconds-after-finished",
    template="job-ttl-seconds-after-finished",
    description=(
        "Indicates when standalone jobs do not set ttlSecondsAfterFinished and when jobs managed by cronjob do set "
        "ttlSecondsAfterFinished."
    ),
    remediation=(
        "Set Job.spec.ttlSecondsAfterFinished. Unset jobTemplate.spec.ttlSecondsAfterFinished if the Job is managed by a "
        "CronJob; the CronJob's history limits clean up its Jobs."
    ),
    severity=Severity.LOW,
    kinds=Kinds(("Job", "CronJob"), "batch/v1"),
    fix=Fix(
        Applicability.SAFE,
        "A finished Job's pods are garbage-collected after the TTL; its logs and status go with them. A CronJob's own TTL "
        "is the author's choice (manual).",
        _fix_job_ttl,
        remedy=("object.spec.ttlSecondsAfterFinished", "object.spec.jobTemplate.spec.ttlSecondsAfterFinished"),
    ),
    guidance="""
For a standalone Job set `spec.ttlSecondsAfterFinished` (for example 86400). For a CronJob, whose
`spec.jobTemplate.spec.ttlSecondsAfterFinished` the author wrote, answer with an empty array `[]`.
""",
)
check(
    "minimum-three-replicas",
    template="minimum-replicas",
    params={"minReplicas": 3},
    description="Indicates when a deployment uses less than three replicas",
    remediation=(
        "Increase be number of replicas in the deployment to at least three to increase the fault tolerancy of the deployment."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "restart-policy",
    template="restart-policy",
    description="Indicates when a deployment-like does not use a restart policy",
    remediation="Set up a restart policy for your deployment-like objects: Always or OnFailure.",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "no-rolling-update-strategy",
    template="update-configuration",
    params={"strategyTypeRegex": "^(RollingUpdate|Rolling)$"},
    description="Indicates when a deployment doesn't use a rolling update strategy",
    remediation=(
        "Use a rolling update strategy to avoid service disruption during an update. A rolling update strategy allows "
        "for pods to be systematicaly replaced in a controlled fashion to ensure no service disruption."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "priority-class-name",
    template="priority-class-name",
    params={"acceptedPriorityClassNames": ["system-cluster-critical", "system-node-critical"]},
    description="Indicates when a deployment-like object does not use a valid priority class name",
    remediation="Set up a priority class name for your deployment-like objects from the accepted list.",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "no-node-affinity",
    template="no-node-affinity",
    description="Alert on deployments that have no node affinity defined",
    remediation="Specify node-affinity in your pod specification to ensure that the orchestrator attempts to schedule replicas on specified nodes.",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)


@template("dnsconfig-options")
def dnsconfig_options(Key="", Value=""):
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        config = obj.pod_spec.get("dnsConfig")
        at = (*obj.pod_spec_segments, "dnsConfig", "options")
        if not isinstance(config, dict):
            yield Violation("Object does not define any DNSConfig rules.", path=at)
            return
        options = as_list(config.get("options"))
        if not options:
            yield Violation("Object does not define any DNSConfig Options.", path=at)
            return
        if not any(as_dict(o).get("name") == Key and str(as_dict(o).get("value", "")) == Value for o in options):
            yield Violation(f'DNSConfig Options "{Key}:{Value}" not found.', path=at)

    return detect


@template("scc-deny-privileged-container")
def scc_deny_privileged_container(AllowPrivilegedContainer=True):
    def detect(obj, app):
        if obj.api_version == "security.openshift.io/v1" and obj.kind == "SecurityContextConstraints":
            if obj.data.get("allowPrivilegedContainer") is AllowPrivilegedContainer:
                yield Violation(f"SCC has allowPrivilegedContainer set to {str(AllowPrivilegedContainer).lower()}", path=("allowPrivilegedContainer",))

    return detect


check(
    "dnsconfig-options",
    template="dnsconfig-options",
    params={"Key": "ndots", "Value": "2"},
    description="Alert on deployments that have no specified dnsConfig options",
    remediation="Specify dnsconfig options in your Pod specification to ensure the expected DNS setting on the Pod.",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "scc-deny-privileged-container",
    template="scc-deny-privileged-container",
    params={"AllowPrivilegedContainer": True},
    description="Indicates when allowPrivilegedContainer SecurityContextConstraints set to true",
    remediation="SecurityContextConstraints has AllowPrivilegedContainer set to \"true\". Using this option provides an opportunity for an adversary to gain full access to the host.",
    severity=Severity.HIGH,
    kinds=Kinds(("SecurityContextConstraints",), "security.openshift.io/v1"),
    kube_linter=KubeLinter.OPTIONAL,
)
