"""Gate 5, safety: what a fix must never do to a workload, whatever the check.

Each invariant compares the object before and after the change. Nothing may
remove a container, a volume, a mount or a port, widen a privilege, or touch
identity, labels or selectors. A fix may change what its own check's remedy
names (``latest-tag`` the image, ``host-port`` the host ports), and nothing else
that these invariants protect.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...checks.fixes import fix_of
from ...contracts import Reason
from ...manifests.objects import K8sObject
from ..judging import Change, Judging
from .base import Gate

# Fields whose change would move the object, or re-route traffic to or from it.
IDENTITY = ("apiVersion", "kind")
METADATA_FIELDS = ("name", "namespace", "generateName", "labels")
# Security settings where True is the weaker value, and where it is the stronger one.
WIDENED_IF_TRUE = ("privileged", "allowPrivilegeEscalation")
NARROWED_IF_TRUE = ("readOnlyRootFilesystem", "runAsNonRoot")
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


class SafetyGate(Gate):
    name = "safety"
    guidance = """
A fix must not remove containers, volumes, volume mounts or ports, change images (unless asked to pin one), widen
privileges, or change names, namespaces, labels or selectors. Make the smallest change that fixes the finding.
"""

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        return [self.reason(v) for v in violations(change.before, change.after, change.check_ids)]


SAFETY = SafetyGate()


def _remedies_allow(check_ids: set[str], role_path: str) -> bool:
    return any(fix is not None and fix.allows(role_path) for fix in map(fix_of, check_ids))


def violations(before: K8sObject, after: K8sObject, check_ids: set[str]) -> list[str]:
    """Broken invariants; ``check_ids`` are the checks whose fixes made the change."""
    return list(_violations(before, after, check_ids))


def _violations(before: K8sObject, after: K8sObject, check_ids: set[str]) -> Iterator[str]:
    for field in IDENTITY:
        if before.data.get(field) != after.data.get(field):
            yield f"{field} changed"
    for field in METADATA_FIELDS:
        if before.metadata.get(field) != after.metadata.get(field):
            yield f"metadata.{field} changed"
    spec_before, spec_after = before.data.get("spec"), after.data.get("spec")
    if isinstance(spec_before, dict) and (spec_before.get("selector") != (spec_after or {}).get("selector")):
        yield "spec.selector changed"
    if before.pod_spec is None or before.pod_spec is after.pod_spec:
        return  # no pod template, or the very same one (untouched by the patch)
    if after.pod_spec is None:
        yield "the pod template was removed"
        return
    if before.pod_labels != after.pod_labels:
        yield "pod template labels changed"
    yield from _pod_invariants(before, after)
    yield from _container_invariants(before, after, check_ids)


def _pod_invariants(before: K8sObject, after: K8sObject) -> Iterator[str]:
    for field in HOST_NAMESPACES:
        if before.pod_spec.get(field) is not True and after.pod_spec.get(field) is True:
            yield f"{field} turned on"
    volumes_before = {v.get("name") for v in before.pod_spec.get("volumes") or [] if isinstance(v, dict)}
    volumes_after = {v.get("name") for v in after.pod_spec.get("volumes") or [] if isinstance(v, dict)}
    for name in sorted(volumes_before - volumes_after, key=str):
        yield f"volume {name!r} removed"


def _container_invariants(before: K8sObject, after: K8sObject, check_ids: set[str]) -> Iterator[str]:
    after_by_key = {(c.group, c.name): c for c in after.containers}
    image_may_change = _remedies_allow(check_ids, "container.image")
    host_ports_may_change = _remedies_allow(check_ids, "container.ports.*.hostPort")
    for old in before.containers:
        new = after_by_key.get((old.group, old.name))
        if new is None:
            yield f"container {old.name!r} removed"
            continue
        if new.spec is old.spec and new.pod_spec.get("securityContext") is old.pod_spec.get("securityContext"):
            continue  # shared with the original: nothing in it changed
        if not image_may_change and old.spec.get("image") != new.spec.get("image"):
            yield f"container {old.name!r}: image changed"
        yield from _port_invariants(old, new, host_ports_may_change)
        yield from _privilege_invariants(old, new)
        mounts_before = {(m.get("name"), m.get("mountPath")) for m in old.spec.get("volumeMounts") or [] if isinstance(m, dict)}
        mounts_after = {(m.get("name"), m.get("mountPath")) for m in new.spec.get("volumeMounts") or [] if isinstance(m, dict)}
        for name, path in sorted(mounts_before - mounts_after, key=str):
            yield f"container {old.name!r}: volume mount {name!r} at {path!r} removed"


def _port_invariants(old, new, host_ports_may_change: bool) -> Iterator[str]:
    def ports(container) -> set:
        found = set()
        for port in container.spec.get("ports") or []:
            if isinstance(port, dict):
                host = None if host_ports_may_change else port.get("hostPort")
                found.add((port.get("containerPort"), port.get("protocol") or "TCP", host))
        return found

    for port, protocol, host in sorted(ports(old) - ports(new), key=str):
        yield f"container {old.name!r}: port {port}/{protocol}{f' (hostPort {host})' if host else ''} removed"


def _privilege_invariants(old, new) -> Iterator[str]:
    name = old.name
    sc_old, sc_new = old.security_context, new.security_context
    for field in WIDENED_IF_TRUE:
        if sc_old.get(field) is not True and sc_new.get(field) is True:
            yield f"container {name!r}: {field} turned on"
    for field in NARROWED_IF_TRUE:
        if old.effective_security(field) is True and new.effective_security(field) is not True:
            yield f"container {name!r}: {field} turned off"
    user_old, user_new = old.effective_security("runAsUser"), new.effective_security("runAsUser")
    if user_new == 0 and user_old != 0:
        yield f"container {name!r}: now runs as UID 0"
    caps_old, caps_new = (sc.get("capabilities") or {} for sc in (sc_old, sc_new))
    added = {_cap(c) for c in caps_new.get("add") or []} - {_cap(c) for c in caps_old.get("add") or []}
    for cap in sorted(added):
        yield f"container {name!r}: capability {cap} added"
    dropped_old = {_cap(c) for c in caps_old.get("drop") or []}
    dropped_new = {_cap(c) for c in caps_new.get("drop") or []}
    for cap in sorted(dropped_old - dropped_new):
        yield f"container {name!r}: capability {cap} no longer dropped"


def _cap(capability: object) -> str:
    return str(capability).upper().removeprefix("CAP_")
