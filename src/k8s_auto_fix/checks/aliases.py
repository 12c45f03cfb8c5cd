"""Policy ids in one spelling: kube-linter's (and ours), whatever a file says.

Older artefacts (the original prototype's) spell checks in snake_case or by
other names; each check declares its old names, and the stages that group
findings by check (schedule, metrics) go through ``normalise``."""

from __future__ import annotations

from functools import lru_cache

from .registry import REGISTRY


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    return {alias: check.id for check in REGISTRY.values() for alias in check.aliases}


def normalise(policy_id: str) -> str:
    name = policy_id.strip().lower().replace("_", "-")
    return _aliases().get(name, name)
