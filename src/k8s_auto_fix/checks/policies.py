"""Policy rules (Kyverno, ValidatingAdmissionPolicy) fixed by built-in checks.

A finding of a policy engine names a rule, ``kyverno:<policy>/<rule>`` or
``vap:<policy>/<rule>``; the table below says which built-in checks look for
the same thing, so their fixes apply. A rule's fix is the mapped checks' fixes
of every violation they find on the object (every container), made one after
the other on the object as the previous one left it. Whether that satisfies
the policy is for the engine to say: the policy gate runs it again on the
patched object. A rule that is not in the table (or whose checks find
nothing to change) is a ``manual`` fix whose explanation is the rule's own
message, which the model modes take as guidance.

The keys are ``<policy>/<rule>`` without the engine, or ``<policy>`` alone
for every rule of the policy (the VAPs of examples/policies/vap/ each hold
one validation, ``vap:<policy>/1``).
"""

from __future__ import annotations

from functools import cache

from ..contracts import Applicability
from .registry import REGISTRY, Fix, Proposal

POLICY_ENGINES = ("kyverno:", "vap:")

# <policy>/<rule> -> the built-in checks whose fixes apply. Rules whose only
# fix is the author's decision (host namespaces, host paths, privileged) are
# mapped too: their checks' manual fixes say why and what to do.
POLICY_CHECKS: dict[str, tuple[str, ...]] = {
    # Pod Security Standards, restricted (and baseline, which shares the names)
    "disallow-capabilities-strict/require-drop-all": ("capabilities-not-dropped",),
    "disallow-capabilities/adding-capabilities": ("sys-admin-capability",),
    "disallow-host-namespaces/host-namespaces": ("host-network", "host-pid", "host-ipc"),
    "disallow-host-path/host-path": ("host-path-volume",),
    "disallow-host-ports/host-ports-none": ("host-port",),
    "disallow-privilege-escalation/privilege-escalation": ("privilege-escalation-not-disabled", "privilege-escalation-container"),
    "disallow-privileged-containers/privileged-containers": ("privileged-container",),
    "disallow-proc-mount/check-proc-mount": ("unsafe-proc-mount",),
    "require-run-as-nonroot/run-as-non-root": ("run-as-non-root", "non-root-not-enforced"),
    "require-run-as-non-root-user/run-as-non-root-user": ("run-as-root-uid",),
    "restrict-seccomp-strict/check-seccomp-strict": ("unset-seccomp-profile",),
    "restrict-seccomp/check-seccomp": ("unset-seccomp-profile",),
    "restrict-sysctls/check-sysctls": ("unsafe-sysctls",),
    "restrict-volume-types/restricted-volumes": ("host-path-volume",),
    # Kyverno's best practices
    "drop-all-capabilities/require-drop-all": ("capabilities-not-dropped",),
    "drop-cap-net-raw/require-drop-cap-net-raw": ("drop-net-raw-capability", "capabilities-not-dropped"),
    "disallow-latest-tag/require-image-tag": ("latest-tag",),
    "disallow-latest-tag/validate-image-tag": ("latest-tag",),
    "require-ro-rootfs/validate-readOnlyRootFilesystem": ("no-read-only-root-fs",),
    "require-requests-limits/validate-resources": ("unset-cpu-requirements", "unset-memory-requirements"),
    "disallow-container-sock-mounts/validate-docker-sock-mount": ("docker-sock",),
    "disallow-container-sock-mounts/validate-containerd-sock-mount": ("sensitive-host-mounts",),
    "disallow-container-sock-mounts/validate-crio-sock-mount": ("sensitive-host-mounts",),
    "disallow-container-sock-mounts/validate-dockerd-sock-mount": ("docker-sock",),
    # The ValidatingAdmissionPolicies of examples/policies/vap/ (restricted Pod Security, as CEL)
    "pss-privileged-containers": ("privileged-container",),
    "pss-privilege-escalation": ("privilege-escalation-not-disabled", "privilege-escalation-container"),
    "pss-drop-all-capabilities": ("capabilities-not-dropped",),
    "pss-add-capabilities": ("sys-admin-capability",),
    "pss-run-as-non-root": ("run-as-non-root", "non-root-not-enforced"),
    "pss-run-as-user": ("run-as-root-uid",),
    "pss-seccomp": ("unset-seccomp-profile",),
    "pss-host-namespaces": ("host-network", "host-pid", "host-ipc"),
    "pss-host-ports": ("host-port",),
    "pss-volume-types": ("host-path-volume",),
}


def is_policy_finding(policy_id: str) -> bool:
    return policy_id.startswith(POLICY_ENGINES)


def rule_of(policy_id: str) -> str:
    """``kyverno:<policy>/<rule>`` -> ``<policy>/<rule>``."""
    return policy_id.partition(":")[2]


def mapped_checks(policy_id: str) -> tuple[str, ...]:
    """The built-in checks whose fixes apply to a policy finding (none for an unmapped rule)."""
    rule = rule_of(policy_id)
    mapped = POLICY_CHECKS.get(rule) or POLICY_CHECKS.get(rule.split("/", 1)[0], ())
    return tuple(c for c in mapped if c in REGISTRY)


@cache
def policy_fix(policy_id: str) -> Fix | None:
    """The mapped checks' fixes as one: the strictest applicability, every
    remedy path (what the safety and runnability gates and the model scope
    allow). Proposals are made by ``propose_policy_fix`` in fixes.py, one
    violation at a time, never by this Fix's ``build``."""
    fixes = [REGISTRY[c].fix for c in mapped_checks(policy_id) if REGISTRY[c].fix is not None]
    if not fixes:
        return None
    return Fix(
        applicability=max(f.applicability for f in fixes),
        reason=" ".join(dict.fromkeys(f.reason for f in fixes)),
        build=lambda ctx: Proposal.manual("a policy rule's fix is built from its mapped checks' fixes"),
        remedy=tuple(dict.fromkeys(p for f in fixes for p in f.remedy)),
    )


def unmapped_explanation(policy_id: str, message: str) -> str:
    checks = mapped_checks(policy_id)
    if not checks:
        return f"no built-in check fixes {rule_of(policy_id)}; what the policy asks: {message}"
    return f"the checks mapped to {rule_of(policy_id)} ({', '.join(checks)}) find nothing they can change; what the policy asks: {message}"


def strictest(levels: list[Applicability]) -> Applicability:
    return max(levels)
