"""Health probes: missing ones, and ones aimed at ports the container does not expose."""

from __future__ import annotations

from ..contracts import Applicability, Severity
from .common import WORKLOADS, Hit, as_dict, as_list, go_quote, per_container
from .patching import append
from .registry import Fix, FixContext, KubeLinter, Proposal, check, template

REGULAR = ("containers",)  # kube-linter checks probes on regular containers only
_PROBE_DOCS = "https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/"


# --- no-liveness-probe, no-readiness-probe --------------------------------------------------


def _missing_probe(field: str, label: str):
    def rule(c, obj):
        if c.spec.get(field) is None:
            yield Hit(f"container {go_quote(c.name)} does not specify a {label} probe", (field,))

    return per_container(rule, REGULAR)


template("liveness-probe")(lambda: _missing_probe("livenessProbe", "liveness"))
template("readiness-probe")(lambda: _missing_probe("readinessProbe", "readiness"))
template("startup-probe")(lambda: _missing_probe("startupProbe", "startup"))

for _kind in ("liveness", "readiness"):
    check(
        f"no-{_kind}-probe", f"{_kind}-probe",
        severity=Severity.LOW,
        kinds=WORKLOADS,
        kube_linter=KubeLinter.OPTIONAL,
        description=f"Indicates when containers fail to specify a {_kind} probe.",
        remediation=f"Specify a {_kind} probe in your container. Refer to {_PROBE_DOCS} for details.",
    )


# --- liveness-port, readiness-port, startup-port ----------------------------------------------


def _exposed_ports(container) -> set:
    # Numbers and names of TCP ports; "" is in the set because an unnamed
    # port has the empty name, as in kube-linter.
    exposed: set = set()
    for port in as_list(container.spec.get("ports")):
        port = as_dict(port)
        if port.get("protocol") in (None, "", "TCP"):
            exposed.add(("int", port.get("containerPort", 0)))
            exposed.add(("str", str(port.get("name") or "")))
    return exposed


def _port_key(value: object) -> tuple[str, object]:
    """An IntOrString port; an absent one is Go's zero value, the int 0."""
    if value is None:
        return ("int", 0)
    return ("int", value) if isinstance(value, int) and not isinstance(value, bool) else ("str", str(value))


def _probe_port(field: str):
    def rule(c, obj):
        probe = c.spec.get(field)
        if not isinstance(probe, dict):
            return
        exposed = _exposed_ports(c)
        name = go_quote(c.name)
        for handler, label in (("httpGet", "HTTPGet"), ("tcpSocket", "TCPSocket")):
            action = probe.get(handler)
            if isinstance(action, dict) and _port_key(action.get("port")) not in exposed:
                port = _port_key(action.get("port"))[1]
                yield Hit(f"container {name} does not expose port {port} for the {label}", (field, handler, "port"), action.get("port"))
                return
        grpc = probe.get("grpc")
        if isinstance(grpc, dict) and ("int", grpc.get("port", 0)) not in exposed:
            yield Hit(f"container {name} does not expose port {grpc.get('port', 0)} for the GRPC check", (field, "grpc", "port"), grpc.get("port", 0))

    return per_container(rule, REGULAR)


def _fix_probe_port(field: str) -> Fix:
    """Declare the port the probe already uses; ports are informational, so
    this changes nothing at run time. A named port that does not exist needs
    a person to say which number it is."""

    def build(ctx: FixContext) -> Proposal | None:
        kind, port = _port_key(ctx.violation.value)
        if kind != "int" or not 0 < port < 65536:
            return Proposal.manual(f"the probe names port {port!r}, which no container port defines")
        return Proposal(append(ctx.obj.data, (*ctx.container.segments, "ports"), {"containerPort": port, "protocol": "TCP"}))

    return Fix(
        Applicability.SAFE,
        "Container ports are informational; declaring the probed one changes no behaviour.",
        build,
        remedy=("container.ports",),
    )


for _kind in ("liveness", "readiness", "startup"):
    template(f"{_kind}-port")(lambda field=f"{_kind}Probe": _probe_port(field))
    check(
        f"{_kind}-port", f"{_kind}-port",
        severity=Severity.MEDIUM,
        kinds=WORKLOADS,
        description=f"Indicates when containers have a {_kind} probe to a not exposed port.",
        remediation=f"Check which ports you've exposed and ensure they match what you have specified in the {_kind} probe.",
        fix=_fix_probe_port(f"{_kind}Probe"),
    )
