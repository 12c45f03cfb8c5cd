"""Safety invariants: what a fix must never do to a workload, whatever the check.

Each invariant compares the object before and after the patch. A few checks
are allowed to change what their fix is about (``latest-tag`` the image,
``host-port`` the host ports); nothing may remove a container, a volume or a
port, widen a privilege, or touch identity, labels or selectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..manifests.objects import K8sObject

# Fields whose change would move the object, or re-route traffic to or from it.
IDENTITY = ("apiVersion", "kind")
METADATA_FIELDS = ("name", "namespace", "generateName", "labels")
# check -> what its fix may change that the invariants otherwise protect
ALLOWED = {
    "latest-tag": {"image"},
    "host-port": {"hostPort"},
}
# Security settings where True is the weaker value, and where it is the stronger one.
WIDENED_IF_TRUE = ("privileged", "allowPrivilegeEscalation")
NARROWED_IF_TRUE = ("readOnlyRootFilesystem", "runAsNonRoot")
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def violations(before: K8sObject, after: K8sObject, check_ids: Iterable[str]) -> list[str]:
    """Broken invariants; ``check_ids`` are the checks whose fixes made the change."""
    allowed = set().union(*(ALLOWED.get(c, set()) for c in check_ids))
    return list(_violations(before, after, allowed))


def _violations(before: K8sObject, after: K8sObject, allowed: set[str]) -> Iterator[str]:
    for field in IDENTITY:
        if before.data.get(field) != after.data.get(field):
            yield f"{field} changed"
    for field in METADATA_FIELDS:
        if before.metadata.get(field) != after.metadata.get(field):
            yield f"metadata.{field} changed"
    spec_before, spec_after = before.data.get("spec"), after.data.get("spec")
    for field in ("selector",):
        if isinstance(spec_before, dict) and (spec_before.get(field) != (spec_after or {}).get(field)):
            yield f"spec.{field} changed"
    if before.pod_spec is None or before.pod_spec is after.pod_spec:
        return  # no pod template, or the very same one (untouched by the patch)
    if after.pod_spec is None:
        yield "the pod template was removed"
        return
    if before.pod_labels != after.pod_labels:
        yield "pod template labels changed"
    yield from _pod_invariants(before, after)
    yield from _container_invariants(before, after, allowed)


def _pod_invariants(before: K8sObject, after: K8sObject) -> Iterator[str]:
    for field in HOST_NAMESPACES:
        if before.pod_spec.get(field) is not True and after.pod_spec.get(field) is True:
            yield f"{field} turned on"
    volumes_before = {v.get("name") for v in before.pod_spec.get("volumes") or [] if isinstance(v, dict)}
    volumes_after = {v.get("name") for v in after.pod_spec.get("volumes") or [] if isinstance(v, dict)}
    for name in sorted(volumes_before - volumes_after, key=str):
        yield f"volume {name!r} removed"


def _container_invariants(before: K8sObject, after: K8sObject, allowed: set[str]) -> Iterator[str]:
    after_by_key = {(c.group, c.name): c for c in after.containers}
    for old in before.containers:
        new = after_by_key.get((old.group, old.name))
        if new is None:
            yield f"container {old.name!r} removed"
            continue
        if new.spec is old.spec and new.pod_spec.get("securityContext") is old.pod_spec.get("securityContext"):
            continue  # shared with the original: nothing in it changed
        if "image" not in allowed and old.spec.get("image") != new.spec.get("image"):
            yield f"container {old.name!r}: image changed"
        yield from _port_invariants(old, new, allowed)
        yield from _privilege_invariants(old, new)
        mounts_before = {(m.get("name"), m.get("mountPath")) for m in old.spec.get("volumeMounts") or [] if isinstance(m, dict)}
        mounts_after = {(m.get("name"), m.get("mountPath")) for m in new.spec.get("volumeMounts") or [] if isinstance(m, dict)}
        for name, path in sorted(mounts_before - mounts_after, key=str):
            yield f"container {old.name!r}: volume mount {name!r} at {path!r} removed"


def _port_invariants(old, new, allowed: set[str]) -> Iterator[str]:
    def ports(container, with_host: bool) -> set:
        found = set()
        for port in container.spec.get("ports") or []:
            if isinstance(port, dict):
                found.add((port.get("containerPort"), port.get("protocol") or "TCP", port.get("hostPort") if with_host else None))
        return found

    with_host = "hostPort" not in allowed
    for port, protocol, host in sorted(ports(old, with_host) - ports(new, with_host), key=str):
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
    added = {str(c).upper().removeprefix("CAP_") for c in caps_new.get("add") or []} - {
        str(c).upper().removeprefix("CAP_") for c in caps_old.get("add") or []
    }
    for cap in sorted(added):
        yield f"container {name!r}: capability {cap} added"
    dropped_old = {str(c).upper().removeprefix("CAP_") for c in caps_old.get("drop") or []}
    dropped_new = {str(c).upper().removeprefix("CAP_") for c in caps_new.get("drop") or []}
    for cap in sorted(dropped_old - dropped_new):
        yield f"container {name!r}: capability {cap} no longer dropped"
