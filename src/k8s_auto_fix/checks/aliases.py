"""Policy ids in one spelling: kube-linter's (and ours), whatever a file says.

Older artefacts (the original prototype's) spell checks in snake_case or by
other names; every stage that groups by check goes through ``normalise``."""

from __future__ import annotations

ALIASES = {
    "no-latest-tag": "latest-tag",
    "no-privileged": "privileged-container",
    "no-host-path": "host-path-volume",
    "no-host-ports": "host-port",
    "run-as-user": "run-as-root-uid",
    "enforce-seccomp": "unset-seccomp-profile",
    "drop-capabilities": "capabilities-not-dropped",
    "read-only-root-fs": "no-read-only-root-fs",
    "pdb-unhealthy-eviction-policy": "pdb-unhealthy-pod-eviction-policy",
    "set-requests-limits": "unset-cpu-requirements",
}


def normalise(policy_id: str) -> str:
    name = policy_id.strip().lower().replace("_", "-")
    return ALIASES.get(name, name)
