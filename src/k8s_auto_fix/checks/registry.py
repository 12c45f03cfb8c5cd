"""One registry of checks: the unit of policy knowledge.

A check is data (id, description, remediation, severity, the kinds of object
it looks at, where it comes from) plus a ``detect`` function built from a
parameterised template, the way kube-linter defines its built-in checks:
``sensitive-host-mounts`` and ``docker-sock`` are both the ``host-mounts``
template with other parameters. Templates are registered by name so that
kube-linter config files can declare custom checks with them.

Everything else a check knows sits in the same declaration: its ``Fix`` (how,
how safe and why, and the fields the fix may change: its *remedy*), the
guidance a model gets for it, and older spellings of its id. Values a fix has
to choose are declared next to the checks that use them (``setting``), and
the run configuration's ``fixes:`` section is built from those declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, create_model

from ..contracts import Applicability, Severity
from ..manifests.images import ImageFact, ImageFacts
from ..manifests.profiles import Profile, profile_of

if TYPE_CHECKING:
    from ..manifests.context import Application
    from ..manifests.objects import Container, K8sObject


class KubeLinter(str, Enum):
    """Whether the pinned kube-linter has a check of the same id."""

    DEFAULT = "default"  # enabled by default there
    OPTIONAL = "optional"  # exists there, off by default
    NONE = "none"  # ours only


@dataclass(frozen=True)
class Kinds:
    """The objects a check looks at: kind names (empty: any object), and the
    API group when it matters for what the check reads."""

    names: tuple[str, ...] = ()
    group: str | None = None

    def __add__(self, other: Kinds) -> Kinds:
        return Kinds(self.names + other.names)

    def __str__(self) -> str:
        if not self.names:
            return "any object"
        return ", ".join(self.names) + (f" ({self.group})" if self.group else "")


class Violation(NamedTuple):
    """One thing a check found: the message (kube-linter's text), the container
    it is about, the JSON Pointer segments of the offending field (or of its
    nearest existing parent) from the object's root, and the offending value.
    (A named tuple: checks make hundreds of thousands of them on a corpus.)"""

    message: str
    container: str | None = None
    path: tuple[str | int, ...] = ()
    value: Any = None


DetectFn = Callable[["K8sObject", "Application"], Iterable[Violation]]


@dataclass(frozen=True)
class FixContext:
    """What a fix may look at: the object, its application, the finding."""

    obj: K8sObject
    app: Application
    violation: Violation
    container: Container | None  # the container the finding names, if any
    settings: Any  # the ``fixes:`` section of the run configuration (FixSettings)
    image_pins: dict[str, str] = field(default_factory=dict)
    facts: ImageFacts = field(default_factory=ImageFacts)

    @property
    def image_fact(self) -> ImageFact | None:
        """What is known about the finding's container image."""
        return self.facts.lookup(str(self.container.spec.get("image") or "")) if self.container else None

    @property
    def profile(self) -> frozenset[Profile]:
        return profile_of(self.obj, self.app)


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

    @property
    def is_manual(self) -> bool:
        return not self.ops and self.creates is None


@dataclass(frozen=True)
class Fix:
    """How a check's findings are fixed, how safe that is (and why), and the
    remedy: the fields the fix may change, as dotted paths from the finding's
    container (``container.``), its pod spec (``pod.``) or the object
    (``object.``); ``*`` stands for any list index, and a path covers
    everything below it."""

    applicability: Applicability
    reason: str
    build: Callable[[FixContext], Proposal | None]
    remedy: tuple[str, ...] = ()

    @classmethod
    def manual(cls, reason: str, explanation: str) -> Fix:
        """A check whose findings the tool cannot fix: the reason, and what to do."""
        return cls(Applicability.MANUAL, reason, lambda ctx: Proposal.manual(f"{reason} What to do: {explanation}."))

    def allows(self, role_path: str) -> bool:
        """Whether the remedy covers ``role_path`` (``container.image``, ``pod.volumes.*.name``...)."""
        return any(covers(pattern, role_path) for pattern in self.remedy)


def covers(pattern: str, path: str) -> bool:
    """``pattern`` names the role path ``path`` or one above it (``*`` is any list index, ``-`` too)."""
    wanted, actual = pattern.split("."), path.split(".")
    if len(actual) < len(wanted):
        return False
    return all(w == "*" or w == a for w, a in zip(wanted, actual))


@dataclass(frozen=True, eq=False)  # a check is itself: compared by identity, hashed by id()
class Check:
    id: str
    description: str
    remediation: str
    severity: Severity
    kinds: Kinds
    template: str
    detect: DetectFn
    params: dict[str, Any] = field(default_factory=dict)
    enabled_by_default: bool = True
    kube_linter: KubeLinter = KubeLinter.DEFAULT
    # Looks at other objects of the application (a Service's pods, a
    # workload's ServiceAccount); the others only need the object itself.
    cross_object: bool = False
    fix: Fix | None = None
    guidance: str = ""  # what a model is told about fixing it
    aliases: tuple[str, ...] = ()  # older spellings of the id (the prototype's)


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
    template: str,
    params: dict[str, Any] | None = None,
    *,
    severity: Severity,
    kinds: Kinds,
    description: str,
    remediation: str,
    kube_linter: KubeLinter = KubeLinter.DEFAULT,
    fix: Fix | None = None,
    guidance: str = "",
    aliases: tuple[str, ...] = (),
    default: bool | None = None,
) -> Check:
    """Declare a check from a template and its parameters. kube-linter's
    optional checks are off by default; its default ones and ours are on
    (unless ``default`` says otherwise)."""
    built = build_check(id, template, params or {}, description, remediation, severity, kinds)
    registered = Check(
        **{
            **built.__dict__,
            "enabled_by_default": kube_linter is not KubeLinter.OPTIONAL if default is None else default,
            "kube_linter": kube_linter,
            "fix": fix,
            "guidance": guidance.strip(),
            "aliases": aliases,
        }
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
    kinds: Kinds = Kinds(),
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
        kinds=kinds,
        template=template_name,
        detect=detect,
        params=params,
        enabled_by_default=False,
        kube_linter=KubeLinter.NONE,
        cross_object=template_name in CROSS_OBJECT_TEMPLATES,
    )


# --- values fixes choose ----------------------------------------------------------------


class Settings(BaseModel):
    """A group of fix settings (a nested block of ``fixes:``); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


SETTINGS: dict[str, tuple[Any, Any]] = {}  # key of ``fixes:`` -> (type, default or Field)


def setting(key: str, annotation: Any, default: Any) -> None:
    """Declare a value fixes must choose, under ``fixes.<key>`` in the run
    configuration (a plain type with a pydantic ``Field``, or a ``Settings`` model)."""
    if key in SETTINGS:
        raise ValueError(f"fix setting {key!r} declared twice")
    SETTINGS[key] = (annotation, default)


def settings_model() -> type[Settings]:
    """The ``fixes:`` section as one validated model, from every declared setting."""
    return create_model("FixSettings", __base__=Settings, **SETTINGS)
