"""Which checks run: defaults, --include/--exclude, and kube-linter's config file.

The config file format is kube-linter's own, so an existing `.kube-linter.yaml`
works unchanged:

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

from pathlib import Path
from typing import Any

import yaml

from . import REGISTRY
from .registry import Check, CheckConfigError, Severity, build_check


class CheckSelectionError(ValueError):
    pass


def select_checks(
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    config_path: Path | None = None,
    all_checks: bool = False,
) -> list[Check]:
    config = _load_config(config_path) if config_path else {}
    checks_cfg = config.get("checks") or {}
    available = dict(REGISTRY)
    for custom in config.get("customChecks") or []:
        built = _custom_check(custom, config_path)
        available[built.id] = built

    if all_checks or checks_cfg.get("addAllBuiltIn"):
        selected = set(REGISTRY)
    elif checks_cfg.get("doNotAutoAddDefaults"):
        selected = set()
    else:
        selected = {c.id for c in REGISTRY.values() if c.enabled_by_default}
    selected |= {c["name"] for c in config.get("customChecks") or []}

    includes = [*(checks_cfg.get("include") or []), *(include or [])]
    excludes = [*(checks_cfg.get("exclude") or []), *(exclude or [])]
    for name in [*includes, *excludes]:
        if name not in available:
            raise CheckSelectionError(f"unknown check {name!r} (see `k8s-auto-fix checks`)")
    selected |= set(includes)
    selected -= set(excludes)
    return [available[name] for name in sorted(selected)]


def _load_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CheckSelectionError(f"{path}: cannot read: {err.strerror or err}") from None
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        raise CheckSelectionError(f"{path}:{line}: invalid YAML: {err.problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CheckSelectionError(f"{path}: a config file is a mapping with `checks` and `customChecks`")
    unknown = set(data) - {"checks", "customChecks"}
    if unknown:
        raise CheckSelectionError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    return data


def _custom_check(spec: Any, path: Path | None) -> Check:
    if not isinstance(spec, dict) or not spec.get("name") or not spec.get("template"):
        raise CheckSelectionError(f"{path}: every customChecks entry needs a name and a template")
    try:
        return build_check(
            spec["name"],
            spec["template"],
            spec.get("params") or {},
            description=spec.get("description", ""),
            remediation=spec.get("remediation", ""),
            severity=Severity.MEDIUM,
            scope="custom",
        )
    except CheckConfigError as err:
        raise CheckSelectionError(f"{path}: {err}") from None
