"""The check registry. Importing this package registers every built-in check,
one module per family, each check in one block of its module."""

from . import (  # noqa: F401  (imported to register their checks)
    apis,
    disruption,
    env,
    host,
    images,
    networking,
    probes,
    rbac,
    resources,
    security,
    services,
    workloads,
)
from .registry import REGISTRY, TEMPLATES, Check, Fix, Kinds, KubeLinter, Proposal, Violation, settings_model

__all__ = ["REGISTRY", "TEMPLATES", "Check", "Fix", "Kinds", "KubeLinter", "Proposal", "Violation", "settings_model"]
