"""Gate 6, runnability: the workload still starts and does its job.

A patch can be valid and less privileged and still break the workload. Each
invariant below compares the object before and after the change, with the
workload's profile (manifests/profiles.py) and the facts about its images
(manifests/images.py); a refusal turns the fix into a `manual` one whose
explanation is the reason given here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ...checks.fixes import fix_of, role_path
from ...checks.policies import is_policy_finding
from ...checks.resources import parse_quantity
from ...contracts import Reason
from ...manifests.images import ImageFacts
from ...manifests.objects import Container
from ...manifests.profiles import HOST_NAMESPACES, Profile, bound_service_accounts, host_path_volumes, profile_of
from ...patch import op_paths
from ..judging import Change, Judging
from .base import Gate

# Settings where this value is an author's explicit request for root or privilege.
EXPLICIT = {"runAsUser": 0, "runAsNonRoot": False, "readOnlyRootFilesystem": False, "privileged": True, "allowPrivilegeEscalation": True}
POD_LEVEL = ("runAsUser", "runAsNonRoot")  # of EXPLICIT, the ones a pod securityContext also holds
LINUX_ONLY = (
    "seccompProfile", "runAsNonRoot", "runAsUser", "runAsGroup", "readOnlyRootFilesystem", "capabilities", "procMount", "allowPrivilegeEscalation",
    "seLinuxOptions", "appArmorProfile", "allowPrivilegeEscalation",
)
TTL_PATHS = (("spec", "ttlSecondsAfterFinished"), ("spec", "jobTemplate", "spec", "ttlSecondsAfterFinished"))

Invariant = Callable[[Change, ImageFacts], Iterator[str]]


class RunnabilityGate(Gate):
    name = "runnability"
    guidance = """
Keep the workload able to start and do its job: never replace a hostPath volume, never set runAsNonRoot without a
numeric non-root runAsUser, never lower or change an existing resource request, never take privileges, host
namespaces, capabilities or host mounts from a node agent, never change an explicit author choice (runAsUser: 0,
privileged: true, allowPrivilegeEscalation: true, readOnlyRootFilesystem: false, runAsNonRoot: false) or an existing
ttlSecondsAfterFinished, never add a containerPort to a hostNetwork pod, never give a Windows pod Linux-only settings,
and change nothing the finding's remedy does not name. If no such fix exists, answer [].
"""

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        facts = judging.options.image_facts
        return [self.reason(message) for invariant in INVARIANTS for message in invariant(change, facts)]


RUNNABILITY = RunnabilityGate()


# --- the invariants ------------------------------------------------------------------------


def _finding_containers(detection, obj) -> list[str | None]:
    """The containers a finding is about: its own, or every container for a
    policy rule (a rule judges the whole object, and its fix may touch each)."""
    if detection.container is None and is_policy_finding(detection.policy_id):
        return [c.name for c in obj.containers] or [None]
    return [detection.container]


def host_paths_kept(change: Change, facts: ImageFacts) -> Iterator[str]:
    if not change.changes_any("/volumes"):
        return
    after = host_path_volumes(change.after)
    for name, path in host_path_volumes(change.before).items():
        if after.get(name) != path:
            yield (
                f"volume {name!r} gives the containers the node's {path}; replacing it (with an emptyDir, say) would give "
                "them an empty directory instead, so the hostPath stays"
            )


def non_root_has_a_user(change: Change, facts: ImageFacts) -> Iterator[str]:
    if not change.changes_any("runAsNonRoot", "runAsUser", "securityContext"):
        return
    for old, new in _container_pairs(change):
        fact = facts.lookup(str(new.spec.get("image") or ""))
        image = new.spec.get("image")
        newly_non_root = new.effective_security("runAsNonRoot") is True and old.effective_security("runAsNonRoot") is not True
        user = new.effective_security("runAsUser")
        new_user = user != old.effective_security("runAsUser")
        if fact is not None and fact.needs_root and (newly_non_root or (new_user and user != 0)):
            variant = f"; {fact.nonroot_variant} runs as non-root" if fact.nonroot_variant else ""
            yield f"container {new.name!r}: image {image} needs to run as root{variant}"
        elif newly_non_root and not _numeric_non_root(user) and not (fact is not None and fact.runs_as_non_root):
            yield (
                f"container {new.name!r}: runAsNonRoot without a numeric runAsUser, and image {image} is not known to run as a "
                "numeric non-root user: the kubelet would refuse to start it"
            )


def requests_kept(change: Change, facts: ImageFacts) -> Iterator[str]:
    if not change.changes_any("/resources"):
        return
    for old, new in _container_pairs(change):
        for resource in ("cpu", "memory"):
            before_request, before_limit = _quantities(old, resource)
            after_request, after_limit = _quantities(new, resource)
            effective_before = before_request if before_request is not None else before_limit
            effective_after = after_request if after_request is not None else after_limit
            if effective_before is not None and effective_after != effective_before:
                yield f"container {new.name!r}: the {resource} request the scheduler uses would change from {effective_before} to {effective_after}"
            elif before_limit is None and after_limit is not None and after_request is not None and after_limit < after_request:
                yield f"container {new.name!r}: a {resource} limit below the container's request"


def node_agents_keep_their_access(change: Change, facts: ImageFacts) -> Iterator[str]:
    if Profile.NODE_AGENT not in profile_of(change.before, change.app):
        return
    why = "it is a node agent (it shares the node's namespaces, mounts its paths, or runs privileged on every node)"
    before, after = change.before.pod_spec, change.after.pod_spec or {}
    for field in HOST_NAMESPACES:
        if before.get(field) is True and after.get(field) is not True:
            yield f"{field} stays: {why}"
    host_volumes = set(host_path_volumes(change.before))
    for old, new in _container_pairs(change):
        osc, nsc = old.security_context, new.security_context
        if osc.get("privileged") is True and nsc.get("privileged") is not True:
            yield f"container {new.name!r} stays privileged: {why}"
        if _caps(osc, "add") - _caps(nsc, "add") or _caps(nsc, "drop") - _caps(osc, "drop"):
            yield f"container {new.name!r} keeps its capabilities: {why}"
        if osc.get("allowPrivilegeEscalation") is None and nsc.get("allowPrivilegeEscalation") is False:
            yield f"container {new.name!r} may still raise its privileges (setuid tools): {why}"
        for mount in new.spec.get("volumeMounts") or []:
            if isinstance(mount, dict) and mount.get("name") in host_volumes and mount.get("readOnly") is True:
                was = next((m for m in old.spec.get("volumeMounts") or [] if isinstance(m, dict) and m.get("name") == mount.get("name")), {})
                if was.get("readOnly") is not True:
                    yield f"container {new.name!r} keeps write access to host path volume {mount.get('name')!r}: {why}"


def explicit_choices_kept(change: Change, facts: ImageFacts) -> Iterator[str]:
    if change.before.pod_spec is None or not change.changes_any("securityContext", *EXPLICIT):
        return
    pod_before = _dict(change.before.pod_spec.get("securityContext"))
    pod_after = _dict((change.after.pod_spec or {}).get("securityContext"))
    for field in POD_LEVEL:
        if _same(pod_before.get(field), EXPLICIT[field]) and not _same(pod_after.get(field), EXPLICIT[field]):
            yield f"the pod's explicit {field}: {_yaml(EXPLICIT[field])} is the author's choice"
    for old, new in _container_pairs(change):
        for field, value in EXPLICIT.items():
            was = old.effective_security(field) if field in POD_LEVEL else old.security_context.get(field)
            now = new.effective_security(field) if field in POD_LEVEL else new.security_context.get(field)
            if _same(was, value) and not _same(now, value):
                yield f"container {new.name!r}: the explicit {field}: {_yaml(value)} is the author's choice"


def ttl_kept(change: Change, facts: ImageFacts) -> Iterator[str]:
    for path in TTL_PATHS:
        before, after = _get(change.before.data, path), _get(change.after.data, path)
        if before is not None and not _same(before, after):
            yield f"{'.'.join(path)} is the author's choice ({before})"


def no_ports_on_host_network(change: Change, facts: ImageFacts) -> Iterator[str]:
    if (change.before.pod_spec or {}).get("hostNetwork") is not True:
        return
    for old, new in _container_pairs(change):
        if _ports(new) - _ports(old):
            yield f"container {new.name!r}: a containerPort on a hostNetwork pod reserves that port on the node"


def windows_stays_windows(change: Change, facts: ImageFacts) -> Iterator[str]:
    if Profile.WINDOWS not in profile_of(change.before, change.app):
        return
    pod_before = _dict(change.before.pod_spec.get("securityContext"))
    pod_after = _dict((change.after.pod_spec or {}).get("securityContext"))
    added = [f"pod {k}" for k in LINUX_ONLY if pod_before.get(k) is None and pod_after.get(k) is not None]
    for old, new in _container_pairs(change):
        added += [f"{new.name} {k}" for k in LINUX_ONLY if old.security_context.get(k) is None and new.security_context.get(k) is not None]
        mounts = {m.get("mountPath") for m in old.spec.get("volumeMounts") or [] if isinstance(m, dict)}
        added += [f"{new.name} mount at {m.get('mountPath')}" for m in new.spec.get("volumeMounts") or [] if isinstance(m, dict) and m.get("mountPath") not in mounts]
    if added:
        yield f"a Windows pod gets no Linux-only settings ({', '.join(added)})"


def written_paths_stay_writable(change: Change, facts: ImageFacts) -> Iterator[str]:
    if not change.changes_any("readOnlyRootFilesystem"):
        return
    for old, new in _container_pairs(change):
        if new.security_context.get("readOnlyRootFilesystem") is not True or old.security_context.get("readOnlyRootFilesystem") is True:
            continue
        image = str(new.spec.get("image") or "")
        fact = facts.lookup(image)
        if fact is None or fact.writes is None:
            continue
        if fact.writes_unknown_places:
            yield f"container {new.name!r}: image {image} writes outside /tmp in places the tool does not know"
            continue
        mounts = [str(m.get("mountPath", "")).rstrip("/") for m in new.spec.get("volumeMounts") or [] if isinstance(m, dict)]
        missing = [p for p in fact.writes if not any(p == m or p.startswith(m + "/") for m in mounts)]
        if missing:
            yield f"container {new.name!r}: image {image} writes to {', '.join(missing)}, which would be read-only"


def token_kept_for_bound_accounts(change: Change, facts: ImageFacts) -> Iterator[str]:
    for created in change.created:
        if created.kind == "ServiceAccount" and created.data.get("automountServiceAccountToken") is False:
            if created.name in bound_service_accounts(change.app):
                yield f"ServiceAccount {created.name!r} is named by a role binding: its pods call the API and need the token"


def anchors_untouched(change: Change, facts: ImageFacts) -> Iterator[str]:
    shared = change.before.shared_paths
    if not shared:
        return
    for op in change.ops:
        for path in op_paths(op):
            if any(path == s or path.startswith(s + "/") for s in shared):
                yield f"{path} is shared through a YAML anchor with another place of the file: an edit there changes both"
                return


def within_remedy(change: Change, facts: ImageFacts) -> Iterator[str]:
    fixes = [(fix_of(d.policy_id), container) for d in change.detections for container in _finding_containers(d, change.before)]
    outside = set()
    for path in change.changed_paths:
        roles = []
        for fix, container in fixes:
            role = role_path(change.before, container, path)
            if fix is not None and fix.allows(role):
                break
            roles.append(role)
        else:
            outside.add(roles[0] if roles else path)
    for role in sorted(outside):
        yield f"{role} is not what the finding's remedy names"


INVARIANTS: tuple[Invariant, ...] = (
    host_paths_kept,
    non_root_has_a_user,
    requests_kept,
    node_agents_keep_their_access,
    explicit_choices_kept,
    ttl_kept,
    no_ports_on_host_network,
    windows_stays_windows,
    written_paths_stay_writable,
    token_kept_for_bound_accounts,
    anchors_untouched,
    within_remedy,
)


# --- helpers -------------------------------------------------------------------------------


def _container_pairs(change: Change) -> list[tuple[Container, Container]]:
    return change.container_pairs


def _quantities(container: Container, resource: str):
    resources = _dict(container.spec.get("resources"))
    request = _dict(resources.get("requests")).get(resource)
    limit = _dict(resources.get("limits")).get(resource)
    return (parse_quantity(request) if request is not None else None), (parse_quantity(limit) if limit is not None else None)


def _caps(sc: dict, which: str) -> set[str]:
    return {str(c).upper().removeprefix("CAP_") for c in _dict(sc.get("capabilities")).get(which) or []}


def _ports(container: Container) -> set:
    return {(p.get("containerPort"), p.get("protocol") or "TCP") for p in container.spec.get("ports") or [] if isinstance(p, dict)}


def _numeric_non_root(user: object) -> bool:
    return isinstance(user, int) and not isinstance(user, bool) and user > 0


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b  # runAsUser 0 is not False


def _get(data: object, path: tuple[str, ...]) -> object:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _yaml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)

