"""One registry of checks: the unit of policy knowledge.

A check is data (id, description, remediation, severity, scope, whether
kube-linter knows it) plus a ``detect`` function built from a parameterised
template, the way kube-linter defines its built-in checks: ``sensitive-host-
mounts`` and ``docker-sock`` are both the ``host-mounts`` template with other
parameters. Templates are registered by name so that kube-linter config files
can declare custom checks with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..contracts import Applicability

if TYPE_CHECKING:
    from ..config import FixDefaults
    from ..manifests.context import Application
    from ..manifests.objects import Container, K8sObject


class Severity(str, Enum):
    """How bad a finding is, for ranking and for SARIF levels.

    critical: a direct path to the node or cluster (privileged, host PID,
    docker.sock); high: weakens isolation a lot (privilege escalation, host
    mounts, capabilities); medium: hardening or reliability gaps with a real
    failure mode (read-only root FS, resources, probes pointing nowhere);
    low: hygiene (labels, deprecated fields, anti-affinity).
    """

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def sarif_level(self) -> str:
        return {"critical": "error", "high": "error", "medium": "warning", "low": "note"}[self.value]


class KubeLinter(str, Enum):
    """Whether the pinned kube-linter has a check of the same id."""

    DEFAULT = "default"  # enabled by default there
    OPTIONAL = "optional"  # exists there, off by default
    NONE = "none"  # ours only


@dataclass(frozen=True)
class Violation:
    message: str
    container: str | None = None


DetectFn = Callable[["K8sObject", "Application"], Iterable[Violation]]


@dataclass(frozen=True)
class FixContext:
    """What a fix may look at: the object, its application, the finding."""

    obj: K8sObject
    app: Application
    container: Container | None  # the container the finding names, if any
    message: str
    settings: FixDefaults
    image_pins: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """A fix for one finding: operations, or an object to create, or nothing
    but an explanation (a `manual` fix the tool cannot make)."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    applicability: Applicability | None = None  # None: the fix's declared one
    explanation: str = ""
    creates: dict[str, Any] | None = None


    @classmethod
    def manual(cls, explanation: str) -> Proposal:
        """No patch: a person has to decide; says what to do."""
        return cls(applicability=Applicability.MANUAL, explanation=explanation)


@dataclass(frozen=True)
class Fix:
    """How a check's findings are fixed, and how safe that is (with why)."""

    applicability: Applicability
    reason: str
    build: Callable[[FixContext], Proposal | None]

    @classmethod
    def manual(cls, reason: str, explanation: str) -> Fix:
        """A check whose findings the tool cannot fix: the reason, and what to do."""
        return cls(Applicability.MANUAL, reason, lambda ctx: Proposal.manual(explanation))


@dataclass(frozen=True)
class Check:
    id: str
    description: str
    remediation: str
    severity: Severity
    scope: str  # the objects it looks at, in words (shown by `checks`)
    template: str
    detect: DetectFn
    params: dict[str, Any] = field(default_factory=dict)
    enabled_by_default: bool = True
    kube_linter: KubeLinter = KubeLinter.DEFAULT
    # Looks at other objects of the application (a Service's pods, a
    # workload's ServiceAccount); the others only need the object itself.
    cross_object: bool = False
    fix: Fix | None = None


class CheckConfigError(ValueError):
    pass


TemplateFactory = Callable[..., DetectFn]
TEMPLATES: dict[str, TemplateFactory] = {}
CROSS_OBJECT_TEMPLATES: set[str] = set()
REGISTRY: dict[str, Check] = {}


def template(name: str, cross_object: bool = False) -> Callable[[TemplateFactory], TemplateFactory]:
    """Register a template: a factory taking the check's parameters."""

    def register_template(factory: TemplateFactory) -> TemplateFactory:
        TEMPLATES[name] = factory
        if cross_object:
            CROSS_OBJECT_TEMPLATES.add(name)
        return factory

    return register_template


def check(
    id: str,
    *,
    template: str,
    description: str,
    remediation: str,
    severity: Severity,
    scope: str,
    params: dict[str, Any] | None = None,
    enabled_by_default: bool = True,
    kube_linter: KubeLinter = KubeLinter.DEFAULT,
    fix: Fix | None = None,
) -> Check:
    """Declare a check from a template and its parameters (and its fix)."""
    built = build_check(id, template, params or {}, description, remediation, severity, scope)
    registered = Check(
        **{**built.__dict__, "enabled_by_default": enabled_by_default, "kube_linter": kube_linter, "fix": fix}
    )
    if id in REGISTRY:
        raise ValueError(f"check {id!r} registered twice")
    REGISTRY[id] = registered
    return registered


def build_check(
    id: str,
    template_name: str,
    params: dict[str, Any],
    description: str = "",
    remediation: str = "",
    severity: Severity = Severity.MEDIUM,
    scope: str = "",
) -> Check:
    factory = TEMPLATES.get(template_name)
    if factory is None:
        raise CheckConfigError(f"check {id!r}: unknown template {template_name!r}")
    try:
        detect = factory(**params)
    except TypeError as err:
        raise CheckConfigError(f"check {id!r}: bad parameters for template {template_name!r}: {err}") from None
    return Check(
        id=id,
        description=description,
        remediation=remediation,
        severity=severity,
        scope=scope,
        template=template_name,
        detect=detect,
        params=params,
        enabled_by_default=False,
        kube_linter=KubeLinter.NONE,
        cross_object=template_name in CROSS_OBJECT_TEMPLATES,
    )
