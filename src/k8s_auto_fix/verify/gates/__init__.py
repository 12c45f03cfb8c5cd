"""The gates, in the order they judge. Adding a gate is one module here and one line below."""

from __future__ import annotations

from .apply import APPLY
from .base import Gate
from .policy import POLICY
from .regression import REGRESSION
from .rescan import RESCAN
from .runnability import RUNNABILITY
from .safety import SAFETY
from .schema import SCHEMA

GATES: tuple[Gate, ...] = (APPLY, POLICY, REGRESSION, SCHEMA, SAFETY, RUNNABILITY, RESCAN)
GATE_NAMES: tuple[str, ...] = tuple(g.name for g in GATES)


def gate(name: str) -> Gate | None:
    return next((g for g in GATES if g.name == name), None)


__all__ = ["GATES", "GATE_NAMES", "Gate", "gate"]
