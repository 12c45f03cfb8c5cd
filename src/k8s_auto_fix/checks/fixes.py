"""The fix step: one finding on one object in, one resolved proposal out.

Every proposer (the rules, the model modes' guardrails and fallback, the fix
engine applying several fixes in a row, the service) goes through
``propose_fix``. It finds the check, runs it again on the object as it is
now (so a fix always sees the finding's live data, and a finding that an
earlier fix already removed is reported as gone), builds the context, turns
"cannot patch" into a manual fix, and resolves the applicability and the
explanation the check declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contracts import Applicability
from ..manifests.context import Application
from ..manifests.images import ImageFacts, shipped_facts
from ..manifests.objects import K8sObject
from .patching import CannotPatch
from .registry import REGISTRY, Check, FixContext, Proposal, Violation

FindingKey = tuple[str, str | None, str]  # check, container, message


@dataclass(frozen=True)
class FixOptions:
    """What fixes are given: the ``fixes:`` settings, the user's image pins, and the image facts."""

    settings: Any
    image_pins: Mapping[str, str] = field(default_factory=dict)
    facts: ImageFacts = field(default_factory=shipped_facts)


def fix_of(check_id: str):
    check = REGISTRY.get(check_id)
    return check.fix if check is not None else None


def live_violation(check: Check, obj: K8sObject, app: Application, key: FindingKey) -> Violation | None:
    """The violation behind ``key`` as the check finds it on ``obj`` now."""
    _, container, message = key
    return next((v for v in check.detect(obj, app) if v.container == container and v.message == message), None)


def propose_fix(key: FindingKey, obj: K8sObject, app: Application, options: FixOptions, violation: Violation | None = None) -> Proposal | None:
    """The check's fix for the finding ``key`` on ``obj``, with its applicability
    and explanation resolved. None when the finding does not fire on ``obj``
    (nothing to fix); a manual proposal when the check has no mechanical fix
    or the object's shape does not allow the edit. ``violation`` is the live
    violation when the caller has just detected it on this very object."""
    check = REGISTRY.get(key[0])
    if check is None or check.fix is None:
        return Proposal.manual("this check has no automatic fix")
    violation = violation or live_violation(check, obj, app, key)
    if violation is None:
        return None
    if obj.template:
        # What the template renders depends on its values: an edit of the text could change any of it.
        return Proposal.manual("an unrendered Helm template: make the change in the chart (a value or the template), then render it again")
    container = obj.container_named(violation.container)
    if violation.container is not None and container is None:
        return Proposal.manual(f"container {violation.container!r} not found")
    ctx = FixContext(obj, app, violation, container, options.settings, dict(options.image_pins), options.facts)
    try:
        proposal = check.fix.build(ctx)
    except CannotPatch as err:
        return Proposal.manual(f"cannot patch: {err}")
    if proposal is None:
        return Proposal.manual("nothing to change")
    return Proposal(
        ops=proposal.ops,
        creates=proposal.creates,
        applicability=proposal.applicability or check.fix.applicability,
        explanation=proposal.explanation or check.fix.reason,
    )


def strictest(*levels: Applicability) -> Applicability:
    return max(levels)


def op_role_paths(obj: K8sObject, container: str | None, op: dict) -> list[str]:
    """The remedy paths an operation writes: for a value that adds a whole
    map, each of its leaves (adding ``securityContext: {runAsNonRoot: true}``
    writes ``container.securityContext.runAsNonRoot``)."""
    paths = [role_path(obj, container, op["from"])] if op.get("op") == "move" else []
    base = role_path(obj, container, op.get("path", ""))
    if op.get("op") in ("add", "replace") and isinstance(op.get("value"), dict) and op["value"]:
        return paths + [f"{base}.{leaf}" for leaf in _leaves(op["value"])]
    return paths + [base]


def _leaves(value: dict) -> list[str]:
    out = []
    for key, child in value.items():
        if isinstance(child, dict) and child:
            out += [f"{key}.{leaf}" for leaf in _leaves(child)]
        else:
            out.append(str(key))
    return out


def role_path(obj: K8sObject, container: str | None, path: str) -> str:
    """A JSON Pointer on ``obj`` as a remedy path: ``container.<field>`` under
    the finding's container, ``pod.<field>`` under the pod spec, else
    ``object.<field>``; list indices become ``*``."""
    named = obj.container_named(container)
    for role, base in (("container", named.pointer if named else None), ("pod", obj.pod_spec_pointer)):
        if base and (path == base or path.startswith(base + "/")):
            return role + _dotted(path[len(base) :])
    return "object" + _dotted(path)


_INDEX = re.compile(r"/\d+(?=/|$)")


def _dotted(pointer_tail: str) -> str:
    """'/ports/0/hostPort' -> '.ports.*.hostPort' (keys unescaped, indices as *)."""
    dotted = _INDEX.sub("/*", pointer_tail).replace("/", ".")
    return dotted.replace("~1", "/").replace("~0", "~") if "~" in dotted else dotted
