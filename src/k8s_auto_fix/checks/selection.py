"""Which checks run: defaults, --include/--exclude, and kube-linter's config format.

The run configuration's ``checks:`` and ``customChecks:`` sections follow
kube-linter's config file, so an existing `.kube-linter.yaml` works unchanged
as ``--config``:

    checks:
      addAllBuiltIn: false        # enable every built-in check
      doNotAutoAddDefaults: false # start from nothing instead of the defaults
      include: [no-liveness-probe]
      exclude: [latest-tag]
    customChecks:
      - name: forbid-nodeport
        template: forbidden-service-types
        params: {forbiddenServiceTypes: [NodePort]}
        remediation: Use ClusterIP.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..contracts import Severity
from .registry import REGISTRY, Check, CheckConfigError, Kinds, build_check


class CheckSelectionError(ValueError):
    pass


class CheckSelection(BaseModel):
    """kube-linter's ``checks:`` block."""

    model_config = ConfigDict(extra="forbid")

    addAllBuiltIn: bool = False
    doNotAutoAddDefaults: bool = False
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    ignorePaths: list[str] = Field(default_factory=list)  # kube-linter's; paths are chosen on the command line here


class CustomCheck(BaseModel):
    """One of kube-linter's ``customChecks``: a registered template with parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    template: str
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    remediation: str = ""
    scope: dict[str, Any] = Field(default_factory=dict)  # kube-linter's objectKinds; templates know their kinds


def select_checks(
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    selection: CheckSelection | None = None,
    custom: list[CustomCheck] | None = None,
    all_checks: bool = False,
    only: list[str] | None = None,
) -> list[Check]:
    """The checks to run. ``only`` replaces the defaults with the checks it names."""
    selection = selection or CheckSelection()
    available = dict(REGISTRY)
    for spec in custom or []:
        available[spec.name] = _custom_check(spec)

    if all_checks or selection.addAllBuiltIn:
        selected = set(REGISTRY)
    elif selection.doNotAutoAddDefaults or only:
        selected = set()
    else:
        selected = {c.id for c in REGISTRY.values() if c.enabled_by_default}
    selected |= {spec.name for spec in custom or []}

    includes = [*selection.include, *(include or []), *(only or [])]
    excludes = [*selection.exclude, *(exclude or [])]
    for name in [*includes, *excludes]:
        if name not in available:
            raise CheckSelectionError(f"unknown check {name!r} (see `k8s-auto-fix checks`)")
    selected |= set(includes)
    selected -= set(excludes)
    return [available[name] for name in sorted(selected)]


def _custom_check(spec: CustomCheck) -> Check:
    try:
        return build_check(
            spec.name,
            spec.template,
            spec.params,
            description=spec.description,
            remediation=spec.remediation,
            severity=Severity.MEDIUM,
            kinds=Kinds(),
        )
    except CheckConfigError as err:
        raise CheckSelectionError(str(err)) from None
