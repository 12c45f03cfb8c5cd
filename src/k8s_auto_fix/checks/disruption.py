"""Availability during disruption: PodDisruptionBudgets and autoscalers."""

from __future__ import annotations

import math
import re

from pydantic import Field

from ..contracts import Applicability, Severity
from ..manifests.selectors import SelectorError, from_label_selector
from .common import as_dict
from .patching import set_value
from .registry import Fix, FixContext, Kinds, KubeLinter, Proposal, Violation, check, setting, template
from .workloads import replicas, workload_selector

PDB = Kinds(("PodDisruptionBudget",), "policy/v1")
HPA = Kinds(("HorizontalPodAutoscaler",), "autoscaling")
HPA_VERSIONS = {"autoscaling/v1", "autoscaling/v2", "autoscaling/v2beta1", "autoscaling/v2beta2"}


def _is_pdb(obj) -> bool:
    return obj.api_version == "policy/v1" and obj.kind == "PodDisruptionBudget"


def _spec(obj) -> dict:
    return as_dict(obj.data.get("spec"))


def _int_or_percent(value: object) -> tuple[int, bool]:
    """(number, is_percent) of an IntOrString; ValueError when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, False
    match = re.fullmatch(r"(-?\d+)%", str(value))
    if match:
        return int(match.group(1)), True
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value), False
    raise ValueError(f"invalid type: string {value!r} is not a percentage")


MAX_UNAVAILABLE, MIN_AVAILABLE = ("spec", "maxUnavailable"), ("spec", "minAvailable")


@template("pdb-unhealthy-pod-eviction-policy")
def pdb_unhealthy_pod_eviction_policy():
    def detect(obj, app):
        if _is_pdb(obj) and _spec(obj).get("unhealthyPodEvictionPolicy") is None:
            yield Violation("unhealthyPodEvictionPolicy is not explicitly set", path=("spec", "unhealthyPodEvictionPolicy"))

    return detect


@template("pdb-max-unavailable")
def pdb_max_unavailable():
    def detect(obj, app):
        if not _is_pdb(obj):
            return
        value = _spec(obj).get("maxUnavailable")
        if value is None:
            return
        if isinstance(value, str) and not value.endswith("%"):
            yield Violation(f"maxUnavailable has invalid value [{value}]", path=MAX_UNAVAILABLE)
            return
        try:
            number, _ = _int_or_percent(value)
        except ValueError:
            yield Violation(f"maxUnavailable has invalid value [{value}]", path=MAX_UNAVAILABLE)
            return
        if number == 0:
            yield Violation("MaxUnavailable is set to 0", path=MAX_UNAVAILABLE)

    return detect


def _label_map(selector: object) -> dict | None:
    """labels.ConvertSelectorToLabelsMap of a workload selector: only k=v terms."""
    if selector is None:
        return {}
    selector = as_dict(selector)
    if selector.get("matchExpressions"):
        return None
    return {str(k): str(v) for k, v in as_dict(selector.get("matchLabels")).items()}


@template("pdb-min-available", cross_object=True)
def pdb_min_available():
    def detect(obj, app):
        if not _is_pdb(obj):
            return
        spec = _spec(obj)
        value = spec.get("minAvailable")
        if value is None:
            return
        try:
            minimum, percent = _int_or_percent(value)
        except ValueError as err:
            yield Violation(f"PDB has invalid MinAvailable value: {err}", path=MIN_AVAILABLE)
            return
        if percent and minimum == 100:
            yield Violation("PDB has minimum available replicas set to 100 percent of replicas", path=MIN_AVAILABLE)
            return
        if spec.get("selector") is None:
            return  # kube-linter itself crashes on this; nothing to compare against
        try:
            pdb_selector = from_label_selector(spec.get("selector"))
        except SelectorError as err:
            yield Violation(f"PDB has invalid label selector: {err}", path=("spec", "selector"))
            return
        scalers = {
            str(as_dict(_spec(o).get("scaleTargetRef")).get("name", "")): o
            for o in app.objects
            if o.kind in ("HorizontalPodAutoscaler", "ScaledObject") and o.namespace == obj.namespace
        }
        for workload in app.pod_owners(obj.namespace):
            found, selector = workload_selector(workload)
            if not workload.is_deployment_like or not found:
                continue
            labels = _label_map(selector)
            if labels is None:
                yield Violation(
                    "Failed to retrieve deployments matching the PDB's label selector within namespace "
                    f"{obj.namespace}: couldn't convert the workload selector of {workload.name} to labels",
                    path=("spec", "selector"),
                )
                return
            if not pdb_selector.matches(labels):
                continue
            count = replicas(workload) or 0
            if count == 1 and workload.name in scalers:
                scaler = _spec(scalers[workload.name])
                count = scaler.get("minReplicas", scaler.get("minReplicaCount")) or 1
            needed = math.ceil(count * minimum / 100) if percent else minimum
            if count <= needed:
                yield Violation(
                    f"The current number of replicas for deployment {workload.name} is equal to or lower than the "
                    "minimum number of replicas specified by its PDB.",
                    path=MIN_AVAILABLE,
                )

    return detect


@template("dangling-horizontalpodautoscaler", cross_object=True)
def dangling_horizontalpodautoscaler():
    def detect(obj, app):
        if obj.kind != "HorizontalPodAutoscaler" or obj.api_version not in HPA_VERSIONS:
            return
        target = as_dict(_spec(obj).get("scaleTargetRef"))
        kind, name, api_version = (str(target.get(k, "")) for k in ("kind", "name", "apiVersion"))
        for other in app.objects:
            if other.pod_spec is not None and other.name == name and other.kind == kind and f"{other.group}/{other.api_version.rpartition('/')[2]}" == api_version:
                return
        yield Violation(f"no resources found matching HorizontalPodAutoscaler scaleTargetRef ({{{kind} {name} {api_version}}})", path=("spec", "scaleTargetRef"))

    return detect


@template("hpa-minimum-replicas")
def hpa_minimum_replicas(minReplicas=3):
    def detect(obj, app):
        if obj.kind != "HorizontalPodAutoscaler" or obj.api_version not in HPA_VERSIONS:
            return
        count = _spec(obj).get("minReplicas")
        count = 1 if count is None else count
        if isinstance(count, int) and count < minReplicas:
            message = f"object has {count} {'replicas' if count > 1 else 'replica'} but minimum required replicas is {minReplicas}"
            yield Violation(message, path=("spec", "minReplicas"))

    return detect


setting("pdb_unhealthy_pod_eviction_policy", str, Field("AlwaysAllow", pattern="^(AlwaysAllow|IfHealthyBudget)$"))


def _fix_eviction_policy(ctx: FixContext) -> Proposal | None:
    policy = ctx.settings.pdb_unhealthy_pod_eviction_policy
    # IfHealthyBudget is what an unset field means: spelling it out changes nothing.
    applicability = Applicability.SAFE if policy == "IfHealthyBudget" else None
    return Proposal(set_value(ctx.obj.data, ("spec", "unhealthyPodEvictionPolicy"), policy), applicability)


check(
    "pdb-unhealthy-pod-eviction-policy",
    template="pdb-unhealthy-pod-eviction-policy",
    description="Indicates when a PodDisruptionBudget does not explicitly set the unhealthyPodEvictionPolicy field.",
    remediation=(
        "Set unhealthyPodEvictionPolicy to AlwaysAllow. Refer to "
        "https://kubernetes.io/docs/tasks/run-application/configure-pdb/#unhealthy-pod-eviction-policy for more information."
    ),
    severity=Severity.MEDIUM,
    kinds=PDB,
    fix=Fix(
        Applicability.REVIEW,
        "AlwaysAllow lets drains evict crash-looping pods, which a workload may rely on keeping (safe with IfHealthyBudget).",
        _fix_eviction_policy,
        remedy=("object.spec.unhealthyPodEvictionPolicy",),
    ),
    guidance="""
Set `spec.unhealthyPodEvictionPolicy` of the PodDisruptionBudget to `AlwaysAllow` (or `IfHealthyBudget`). Change
nothing else.
""",
    aliases=("pdb-unhealthy-eviction-policy",),
)
check(
    "pdb-max-unavailable",
    template="pdb-max-unavailable",
    description="Indicates when a PodDisruptionBudget has a maxUnavailable value that will always prevent disruptions of pods created by related deployment-like objects.",
    remediation=(
        "Change the PodDisruptionBudget to have maxUnavailable set to a value greater than 0. Refer to "
        "https://kubernetes.io/docs/tasks/run-application/configure-pdb/ for more information."
    ),
    severity=Severity.MEDIUM,
    kinds=PDB,
    fix=Fix.manual(
        "maxUnavailable: 0 is written by the author to block voluntary evictions; the right budget depends on the replica count.",
        "allow at least one disruption (maxUnavailable: 1 or a percentage) once the workload tolerates losing a pod",
    ),
)
check(
    "pdb-min-available",
    template="pdb-min-available",
    description="Indicates when a PodDisruptionBudget sets a minAvailable value that will always prevent disruptions of pods created by related deployment-like objects.",
    remediation=(
        "Change the PodDisruptionBudget to have minAvailable set to a number lower than the number of replicas in the "
        "related deployment-like objects. Refer to https://kubernetes.io/docs/tasks/run-application/configure-pdb/ for more information."
    ),
    severity=Severity.MEDIUM,
    kinds=PDB,
)
check(
    "dangling-horizontalpodautoscaler",
    template="dangling-horizontalpodautoscaler",
    description="Indicates when HorizontalPodAutoscalers target a missing resource.",
    remediation="Confirm that your HorizontalPodAutoscaler's scaleTargetRef correctly matches one of your deployments.",
    severity=Severity.LOW,
    kinds=HPA,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "hpa-minimum-three-replicas",
    template="hpa-minimum-replicas",
    params={"minReplicas": 3},
    description="Indicates when a HorizontalPodAutoscaler targets less than three minReplicas",
    remediation="Increase the number of min replicas in your HorizontalPodAutoscaler to at least three to increase fault tolerance.",
    severity=Severity.LOW,
    kinds=HPA,
    kube_linter=KubeLinter.OPTIONAL,
)
