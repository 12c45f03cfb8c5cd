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
from ..patch import PATCH_ERRORS, apply_patch
from .patching import CannotPatch
from .policies import is_policy_finding, mapped_checks, policy_fix, unmapped_explanation
from .registry import REGISTRY, Check, Fix, FixContext, Proposal, Violation, covers

FindingKey = tuple[str, str | None, str]  # check, container, message


@dataclass(frozen=True)
class FixOptions:
    """What fixes are given: the ``fixes:`` settings, the user's image pins, and the image facts."""

    settings: Any
    image_pins: Mapping[str, str] = field(default_factory=dict)
    facts: ImageFacts = field(default_factory=shipped_facts)


def fix_of(check_id: str):
    if is_policy_finding(check_id):
        return policy_fix(check_id)
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
    if is_policy_finding(key[0]):
        return propose_policy_fix(key, obj, app, options)
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


def propose_policy_fix(key: FindingKey, obj: K8sObject, app: Application, options: FixOptions) -> Proposal:
    """A policy rule's fix (checks/policies.py): every violation its mapped
    checks find on ``obj``, each fixed on the object as the previous fix
    left it. Manual when they find nothing they can change: the explanation
    says why, or what the policy asks."""
    policy_id, _, message = key
    if obj.template:
        return Proposal.manual("an unrendered Helm template: make the change in the chart (a value or the template), then render it again")
    current, ops, levels, reasons, manual = obj, [], [], [], []
    for check_id in mapped_checks(policy_id):
        check = REGISTRY[check_id]
        for found in list(check.detect(obj, app)):
            live = live_violation(check, current, app, (check_id, found.container, found.message))
            proposal = propose_fix((check_id, found.container, found.message), current, app, options, live) if live else None
            if proposal is None:
                continue  # an earlier fix of this rule took care of it
            if proposal.is_manual or proposal.creates is not None:
                manual.append(f"{check_id}: {proposal.explanation}")
                continue
            try:
                current = current.with_data(apply_patch(current.data, proposal.ops))
            except PATCH_ERRORS:
                continue
            ops += proposal.ops
            levels.append(proposal.applicability)
            reasons.append(proposal.explanation)
    if not ops:
        return Proposal.manual("; ".join(dict.fromkeys(manual)) or unmapped_explanation(policy_id, message))
    return Proposal(ops=ops, applicability=strictest(*levels), explanation=" ".join(dict.fromkeys(reasons)))


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


# What a model's patch never writes, whatever a check's remedy names: a model's
# answer is untrusted text, and these fields decide what runs (image, command,
# args, env, the list of containers), where and beside what it runs (node
# placement, tolerations, host aliases, shared namespaces), or whether it runs
# at all (replicas). Role paths as ``role_path`` spells them; ``*`` is any index.
MODEL_NEVER_WRITES = (
    "container.image", "container.command", "container.args", "container.env", "container.envFrom",
    "pod.containers", "pod.initContainers", "pod.ephemeralContainers",
    "pod.nodeName", "pod.nodeSelector", "pod.tolerations", "pod.hostAliases", "pod.shareProcessNamespace",
    "pod.hostNetwork", "pod.hostPID", "pod.hostIPC", "pod.volumes.*.hostPath",
    "object.spec.replicas",
)  # fmt: skip


def model_scope_errors(obj: K8sObject, container: str | None, fix: Fix | None, op: dict) -> list[str]:
    """Why a model's operation is outside what a model may change (empty when it
    is inside): only the paths the finding's check names as its remedy (the
    same allow-list the runnability gate holds every patch to), never a whole
    container or pod spec, never a field of ``MODEL_NEVER_WRITES``."""
    if op.get("op") == "test":
        return []  # reads only
    whole = _whole_container_or_pod(obj, container, op)
    if whole:
        return [whole]
    errors = []
    for role in _written_roles(obj, container, op):
        if any(covers(pattern, role) for pattern in MODEL_NEVER_WRITES):
            errors.append(f"{role} is never a model's to change")
        elif fix is None or not fix.allows(role):
            errors.append(f"{role} is not what the finding's remedy names")
    return errors


def _whole_container_or_pod(obj: K8sObject, container: str | None, op: dict) -> str | None:
    """An operation that writes or removes the pod spec, or one of its containers, as a whole."""
    pod = obj.pod_spec_pointer
    named = obj.container_named(container)
    for path in [op.get("path", "")] + ([op["from"]] if op.get("op") == "move" else []):
        if pod is not None and (pod == path or pod.startswith(path + "/")):
            return f"{path or '/'} replaces the whole pod spec"
        if named is not None and path == named.pointer:
            return f"{path} writes or removes the finding's whole container"
    return None


def _written_roles(obj: K8sObject, container: str | None, op: dict) -> list[str]:
    """The role paths an operation writes, down to every leaf of its value (list items as ``*``)."""
    roles = [role_path(obj, container, op["from"])] if op.get("op") == "move" else []
    base = role_path(obj, container, op.get("path", ""))
    if op.get("op") in ("add", "replace") and isinstance(op.get("value"), (dict, list)) and op["value"]:
        return roles + [f"{base}.{leaf}" for leaf in _all_leaves(op["value"])]
    return roles + [base]


def _all_leaves(value: dict | list) -> list[str]:
    items = value.items() if isinstance(value, dict) else (("*", child) for child in value)
    out = []
    for key, child in items:
        if isinstance(child, (dict, list)) and child:
            out += [f"{key}.{leaf}" for leaf in _all_leaves(child)]
        else:
            out.append(str(key))
    return out


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
