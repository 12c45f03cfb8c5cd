"""The check registry. Importing this package registers every built-in check,
one module per family."""

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
from .registry import REGISTRY, TEMPLATES, Check, KubeLinter, Severity, Violation

__all__ = ["REGISTRY", "TEMPLATES", "Check", "KubeLinter", "Severity", "Violation"]
