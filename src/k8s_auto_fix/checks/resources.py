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
GUESSED = "The value is a default from configs/run.yaml, not a measurement of this workload."


# --- unset-cpu-requirements ------------------------------------------------------------


def _fix_cpu_request(ctx: FixContext) -> Proposal | None:
    resources = as_dict(ctx.container.spec.get("resources"))
    request = ctx.settings.resources.cpu_request
    limit = parse_quantity(as_dict(resources.get("limits")).get("cpu"))
    if limit and limit < parse_quantity(request):
        request = as_dict(resources.get("limits"))["cpu"]  # a request above the limit is invalid
    return Proposal(set_value(ctx.obj.data, (*ctx.container.segments, "resources", "requests", "cpu"), request))


check(
    "unset-cpu-requirements", "cpu-requirements", {"lowerBoundMillis": 0, "requirementsType": "request", "upperBoundMillis": 0},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when containers do not have CPU requests and limits set.",
    remediation=(
        "Set CPU requests for your container based on its requirements. Refer to "
        "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#requests-and-limits for details."
    ),
    fix=Fix(Applicability.REVIEW, GUESSED, _fix_cpu_request, remedy=("container.resources.requests.cpu",)),
    guidance="""
Set `resources.requests.cpu` on the named container, for example `100m`. A request must not exceed the container's CPU
limit, if one is set. Only requests are checked.
""",
    aliases=("set-requests-limits",),
)


# --- unset-memory-requirements ------------------------------------------------------------


def _fix_memory_limit(ctx: FixContext) -> Proposal | None:
    resources = as_dict(ctx.container.spec.get("resources"))
    limit = ctx.settings.resources.memory_limit
    request = parse_quantity(as_dict(resources.get("requests")).get("memory"))
    if request and request > parse_quantity(limit):
        limit = as_dict(resources.get("requests"))["memory"]  # a limit below the request is invalid
    return Proposal(set_value(ctx.obj.data, (*ctx.container.segments, "resources", "limits", "memory"), limit))


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
        GUESSED + " A limit too low gets the container OOM-killed.",
        _fix_memory_limit,
        remedy=("container.resources.limits.memory",),
    ),
    guidance="""
Set `resources.limits.memory` on the named container, for example `512Mi`. A limit must not be lower than the
container's memory request, if one is set. Only limits are checked.
""",
)
