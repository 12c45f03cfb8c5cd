"""Resource requests and limits."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ..contracts import Applicability, Severity
from .common import WORKLOADS, Hit, as_dict, go_quote, per_container
from .patching import set_value
from .registry import Fix, FixContext, Proposal, Settings, check, setting, template

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes resource quantity as a number of base units (cores, bytes)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number)
        return base * (Decimal(10) ** int(exponent[1:]) if exponent else _SUFFIX[suffix])
    except (InvalidOperation, ValueError):
        return None


def _resource(container, kind: str, resource: str) -> tuple[Decimal | None, str]:
    raw = as_dict(as_dict(container.spec.get("resources")).get(kind)).get(resource)
    return parse_quantity(raw), "0" if raw is None else str(raw)


def _requirements_template(resource: str, scale, unit_param: str):
    # kube-linter compares cpu as whole millicores and memory as whole bytes,
    # both rounded up; bounds are inclusive and a missing upper bound is open.
    def factory(requirementsType="any", **bounds):
        lower = bounds.get(f"lowerBound{unit_param}", 0)
        upper = bounds.get(f"upperBound{unit_param}")
        kinds = {"request": ["requests"], "limit": ["limits"], "any": ["requests", "limits"]}[requirementsType]

        def rule(c, obj):
            for kind in kinds:
                value, shown = _resource(c, kind, resource)
                if value is None:
                    continue
                scaled = scale(value)
                if lower * _unit(unit_param) <= scaled and (upper is None or scaled <= upper * _unit(unit_param)):
                    label = "request" if kind == "requests" else "limit"
                    yield Hit(f"container {go_quote(c.name)} has {resource} {label} {shown if scaled else '0'}", ("resources", kind, resource))

        return per_container(rule)

    return factory


def _unit(unit_param: str) -> int:
    return 1024 * 1024 if unit_param == "MB" else 1


template("cpu-requirements")(_requirements_template("cpu", lambda v: math.ceil(v * 1000), "Millis"))
template("memory-requirements")(_requirements_template("memory", lambda v: math.ceil(v), "MB"))


class ResourceSettings(Settings):
    # Guessed values: every fix that uses them is a `review` fix.
    cpu_request: str = "100m"
    memory_limit: str = "512Mi"


setting("resources", ResourceSettings, ResourceSettings())
GUESSED = "a default from the run configuration, not a measurement of this workload."


# --- unset-cpu-requirements ------------------------------------------------------------


def _fix_cpu_request(ctx: FixContext) -> Proposal | None:
    """A limits-only container gets its limit as its request, which is what
    Kubernetes already uses; only a container with neither gets the default."""
    resources = as_dict(ctx.container.spec.get("resources"))
    if "cpu" in as_dict(resources.get("requests")):
        return Proposal.manual("the cpu request of 0 is written in the manifest; set the request the container needs")
    limit = as_dict(resources.get("limits")).get("cpu")
    if limit is not None:
        return Proposal(_cpu_request_ops(ctx, limit), Applicability.SAFE, "the request is the limit, as Kubernetes already takes it")
    request = ctx.settings.resources.cpu_request
    return Proposal(_cpu_request_ops(ctx, request), explanation=f"cpu request {request}: {GUESSED}")


def _cpu_request_ops(ctx: FixContext, cpu) -> list:
    """requests.cpu, and a memory limit without a request written as the request
    too: Kubernetes already requests what it limits, and a new ``requests`` map
    without memory reads as "memory request missing" to other scanners (Checkov's
    CKV_K8S_12 goes from UNKNOWN to FAILED)."""
    resources = as_dict(ctx.container.spec.get("resources"))
    requests = {"cpu": cpu}
    memory_limit = as_dict(resources.get("limits")).get("memory")
    if memory_limit is not None and "memory" not in as_dict(resources.get("requests")):
        requests["memory"] = memory_limit
    base = (*ctx.container.segments, "resources", "requests")
    if not isinstance(resources.get("requests"), dict):
        return set_value(ctx.obj.data, base, requests)
    return [op for key, value in requests.items() for op in set_value(ctx.obj.data, (*base, key), value)]


check(
    "unset-cpu-requirements", "cpu-requirements", {"lowerBoundMillis": 0, "requirementsType": "request", "upperBoundMillis": 0},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when containers do not have CPU requests and limits set.",
    remediation=(
        "Set CPU requests for your container based on its requirements. Refer to "
        "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#requests-and-limits for details."
    ),
    fix=Fix(
        Applicability.REVIEW,
        "A container with only a limit gets the limit as its request (safe: Kubernetes already does that); one with neither "
        "gets fixes.resources.cpu_request, a default, not a measurement of this workload. A memory limit without a request is "
        "written as the request too (Kubernetes already takes it so).",
        _fix_cpu_request,
        remedy=("container.resources.requests.cpu", "container.resources.requests.memory"),
    ),
    guidance="""
Set `resources.requests.cpu` on the named container: to its CPU limit when it has one (Kubernetes already uses the
limit as the request), else for example `100m`. Never change a request the manifest sets. Only requests are checked.
""",
    aliases=("set-requests-limits",),
)


# --- unset-memory-requirements ------------------------------------------------------------


def _fix_memory_limit(ctx: FixContext) -> Proposal | None:
    """A requests-only container gets its request as its limit (never lower);
    only a container with neither gets the default."""
    resources = as_dict(ctx.container.spec.get("resources"))
    if "memory" in as_dict(resources.get("limits")):
        return Proposal.manual("the memory limit of 0 is written in the manifest; set the limit the container needs")
    request = as_dict(resources.get("requests")).get("memory")
    path = (*ctx.container.segments, "resources", "limits", "memory")
    if request is not None and parse_quantity(request):  # a request of 0 is no request
        return Proposal(set_value(ctx.obj.data, path, request), explanation="the limit is the request: the container can no longer use more than it asks for")
    limit = ctx.settings.resources.memory_limit
    return Proposal(set_value(ctx.obj.data, path, limit), explanation=f"memory limit {limit}: {GUESSED} A limit too low gets the container OOM-killed.")


check(
    "unset-memory-requirements", "memory-requirements", {"lowerBoundMB": 0, "requirementsType": "limit", "upperBoundMB": 0},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when containers do not have memory requests and limits set.",
    remediation=(
        "Set memory limits for your container based on its requirements. Refer to "
        "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#requests-and-limits for details."
    ),
    fix=Fix(
        Applicability.REVIEW,
        "A container with only a request gets the request as its limit; one with neither gets fixes.resources.memory_limit, "
        "a default, not a measurement of this workload. A limit too low gets the container OOM-killed.",
        _fix_memory_limit,
        remedy=("container.resources.limits.memory",),
    ),
    guidance="""
Set `resources.limits.memory` on the named container: to its memory request when it has one (never lower), else for
example `512Mi`. Never change a limit the manifest sets. Only limits are checked.
""",
)
