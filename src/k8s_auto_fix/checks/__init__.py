"""The check registry. Importing this package registers every built-in check."""

from . import env, host, images, probes, resources, security  # noqa: F401  (registration)
from .registry import REGISTRY, TEMPLATES, Check, KubeLinter, Severity, Violation

__all__ = ["REGISTRY", "TEMPLATES", "Check", "KubeLinter", "Severity", "Violation"]
