"""Container and pod security settings: privileges, users, capabilities, sysctls.

One block per check: its template, its fix (with the reasoning behind its
applicability and the fields it may change), its guidance for a model, and
its declaration.
"""

from __future__ import annotations

from pydantic import Field

from ..contracts import Applicability, Severity
from .common import (
    WORKLOADS,
    Hit,
    as_dict,
    as_list,
    go_quote,
    go_quote_list,
    per_container,
    pod_level,
    string_matcher,
)
from .patching import Ops, append, remove_indices, set_value
from .registry import Fix, FixContext, KubeLinter, Proposal, Settings, check, setting, template

SAFE, REVIEW = Applicability.SAFE, Applicability.REVIEW


def _sc(ctx: FixContext) -> tuple:
    """The finding's container securityContext (container level: it overrides the pod's)."""
    return (*ctx.container.segments, "securityContext")


def _is_all(capability: object) -> bool:
    return str(capability).lower() == "all"


def _cap_name(capability: object) -> str:
    return str(capability).upper().removeprefix("CAP_")


# UID given by the fixes that must choose one (run-as-non-root over an
# explicit UID 0, run-as-root-uid).
setting("run_as_user", int, Field(10001, gt=0))


# --- no-read-only-root-fs -------------------------------------------------------------


class ReadOnlyRootFsSettings(Settings):
    # Most images write to /tmp; an emptyDir there keeps them working with a
    # read-only root filesystem.
    tmp_volume: bool = True
    tmp_mount_path: str = "/tmp"
    tmp_volume_name: str = "tmp"


setting("read_only_root_fs", ReadOnlyRootFsSettings, ReadOnlyRootFsSettings())


@template("read-only-root-fs")
def read_only_root_fs():
    def rule(c, obj):
        if c.security_context.get("readOnlyRootFilesystem") is not True:
            yield Hit(f"container {go_quote(c.name)} does not have a read-only root file system", ("securityContext", "readOnlyRootFilesystem"))

    return per_container(rule)


def _fix_read_only_root_fs(ctx: FixContext) -> Proposal | None:
    """A read-only root filesystem, with an emptyDir at /tmp and at every path
    the image is known to write (its cache, its pid file, its data)."""
    tmp = ctx.settings.read_only_root_fs
    fact = ctx.image_fact
    writable = [tmp.tmp_mount_path] if tmp.tmp_volume else []
    if fact is not None and isinstance(fact.writes, list):
        writable += fact.writes
    ops = Ops(ctx.obj.data).set((*_sc(ctx), "readOnlyRootFilesystem"), True)
    mounts = [str(as_dict(m).get("mountPath", "")).rstrip("/") for m in as_list(ctx.container.spec.get("volumeMounts"))]
    volumes = {as_dict(v).get("name"): as_dict(v) for v in as_list(ctx.obj.pod_spec.get("volumes"))}
    added = []
    for path in dict.fromkeys(writable):
        if any(path == m or path.startswith(m + "/") for m in mounts):
            continue  # already writable through a volume
        wanted = tmp.tmp_volume_name if path == tmp.tmp_mount_path else "rootfs" + path.replace("/", "-")
        name = _free_volume_name(volumes, wanted)
        if name not in volumes:
            volumes[name] = {"name": name, "emptyDir": {}}
            ops.append((*ctx.obj.pod_spec_segments, "volumes"), volumes[name])
        ops.append((*ctx.container.segments, "volumeMounts"), {"name": name, "mountPath": path})
        mounts.append(path)
        added.append(path)
    where = f", with a writable emptyDir at {', '.join(added)}" if added else ""
    risk = "; the tool knows nothing of this image: if it writes elsewhere, mount a volume there" if fact is None else ""
    return Proposal(ops.ops, explanation=f"readOnlyRootFilesystem: true{where}{risk}")


def _free_volume_name(volumes: dict, wanted: str) -> str:
    """``wanted``, reused if it is already an emptyDir, else a name not taken."""
    wanted = wanted.lower().strip("-")[:63].strip("-") or "rootfs"
    if wanted not in volumes or "emptyDir" in volumes[wanted]:
        return wanted
    n = 2
    while f"{wanted}-{n}" in volumes:
        n += 1
    return f"{wanted}-{n}"


check(
    "no-read-only-root-fs", "read-only-root-fs",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when containers are running without a read-only root filesystem.",
    remediation="Set readOnlyRootFilesystem to true in the container securityContext.",
    fix=Fix(
        REVIEW,
        "Images that write outside /tmp (caches, pid files, logs) fail with a read-only root filesystem.",
        _fix_read_only_root_fs,
        remedy=("container.securityContext.readOnlyRootFilesystem", "container.volumeMounts", "pod.volumes"),
    ),
    guidance="""
Set `securityContext.readOnlyRootFilesystem: true` on the named container (container level; the pod has no such
field). Most images still need a writable `/tmp`: add an `emptyDir` volume to the pod's `volumes` and mount it at
`/tmp` in that container, reusing an existing emptyDir named `tmp` if there is one. CIS Kubernetes Benchmark 5.7.x
recommends immutable root filesystems; Pod Security Standards do not require it.
""",
    aliases=("read-only-root-fs",),
)


# --- run-as-non-root ---------------------------------------------------------------


@template("run-as-non-root")
def run_as_non_root():
    # A positive UID (container's, else the pod's) is enough; otherwise
    # runAsNonRoot must be true, and then an explicit UID 0 contradicts it.
    def rule(c, obj):
        user = c.effective_security("runAsUser")
        if isinstance(user, int) and not isinstance(user, bool) and user > 0:
            return
        if c.effective_security("runAsNonRoot") is True:
            if user == 0:
                yield Hit(f"container {go_quote(c.name)} is set to runAsNonRoot, but runAsUser set to 0", ("securityContext", "runAsUser"), 0)
            return
        yield Hit(f"container {go_quote(c.name)} is not set to runAsNonRoot", ("securityContext", "runAsNonRoot"))

    return per_container(rule)


def _fix_run_as_non_root(ctx: FixContext) -> Proposal | None:
    """runAsNonRoot with a numeric runAsUser, which the kubelet needs to let
    the container start: the image's own non-root user when the facts know it,
    else the uid it is built to drop to, else the configured one."""
    fact = ctx.image_fact
    if fact is not None and fact.needs_root:
        variant = f": {fact.nonroot_variant} runs as non-root" if fact.nonroot_variant else ""
        return Proposal.manual(f"image {ctx.container.spec.get('image')} needs to run as root{variant}")
    if fact is not None and fact.runs_as_non_root:
        uid, applicability, why = fact.user, SAFE, f"uid {fact.user} is the image's own user"
    elif fact is not None and fact.nonroot_uid:
        uid, applicability, why = fact.nonroot_uid, REVIEW, f"the image starts as root and is built to run as uid {fact.nonroot_uid}"
    else:
        uid, applicability = ctx.settings.run_as_user, REVIEW
        why = f"uid {uid} is fixes.run_as_user: if the image needs root or owns its files as another user, it will not start"
    ops = Ops(ctx.obj.data).set((*_sc(ctx), "runAsNonRoot"), True).set((*_sc(ctx), "runAsUser"), uid).ops
    return Proposal(ops, applicability, f"runAsNonRoot: true and runAsUser: {uid}; {why}")


check(
    "run-as-non-root", "run-as-non-root",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when containers are not set to runAsNonRoot.",
    remediation=(
        "Set runAsUser to a non-zero number and runAsNonRoot to true in your pod or container securityContext. "
        "Refer to https://kubernetes.io/docs/tasks/configure-pod-container/security-context/ for details."
    ),
    fix=Fix(
        REVIEW,
        "The kubelet refuses to start a container whose image runs as root once runAsNonRoot is true, so a numeric "
        "runAsUser goes with it; with an image the facts do not know, that uid is a guess.",
        _fix_run_as_non_root,
        remedy=("container.securityContext.runAsNonRoot", "container.securityContext.runAsUser"),
    ),
    guidance="""
Set `securityContext.runAsNonRoot: true` and a numeric non-zero `securityContext.runAsUser` (for example 10001) on the
named container: without a numeric user the kubelet refuses to start a container whose image's user is not numeric.
Never change a `runAsUser: 0` or `runAsNonRoot: false` the manifest sets (answer `[]`): the author asked for root. A
container-level setting overrides the pod's. Pod Security Standards (restricted) require runAsNonRoot.
""",
)


# --- privilege-escalation-container ---------------------------------------------------


@template("privilege-escalation-container")
def privilege_escalation_container():
    def rule(c, obj):
        sc = c.spec.get("securityContext")
        if not isinstance(sc, dict):
            return
        name = go_quote(c.name)
        if sc.get("allowPrivilegeEscalation") is True:
            yield Hit(f"container {name} has AllowPrivilegeEscalation set to true.", ("securityContext", "allowPrivilegeEscalation"), True)
        elif sc.get("privileged") is True:
            yield Hit(f"container {name} is Privileged hence allows privilege escalation.", ("securityContext", "privileged"), True)
        elif "SYS_ADMIN" in as_list(as_dict(sc.get("capabilities")).get("add")):
            yield Hit(f"container {name} has SYS_ADMIN capability hence allows privilege escalation.", ("securityContext", "capabilities", "add"), "SYS_ADMIN")

    return per_container(rule)


def _fix_privilege_escalation(ctx: FixContext) -> Proposal | None:
    sc = ctx.container.security_context
    for field in ("allowPrivilegeEscalation", "privileged"):
        if sc.get(field) is True:
            return Proposal.manual(f"{field}: true is written in the manifest: the author asked for it; remove it if the container does not need it")
    added = as_list(as_dict(sc.get("capabilities")).get("add"))
    sys_admin = [i for i, cap in enumerate(added) if cap == "SYS_ADMIN"]
    # Without SYS_ADMIN, escalation is closed for good by allowPrivilegeEscalation: false.
    closed = set_value(ctx.obj.data, (*_sc(ctx), "allowPrivilegeEscalation"), False)
    return Proposal(remove_indices((*_sc(ctx), "capabilities", "add"), sys_admin, len(added)) + closed)


check(
    "privilege-escalation-container", "privilege-escalation-container",
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    description="Alert on containers of allowing privilege escalation that could gain more privileges than its parent process.",
    remediation=(
        "Ensure containers do not allow privilege escalation by setting allowPrivilegeEscalation=false, privileged=false "
        "and removing CAP_SYS_ADMIN capability. See https://kubernetes.io/docs/tasks/configure-pod-container/security-context/ "
        "for more details."
    ),
    fix=Fix(
        REVIEW,
        "An explicit allowPrivilegeEscalation: true or privileged: true is the author's choice (manual); removing an "
        "added SYS_ADMIN can break the mounts and namespaces the container makes.",
        _fix_privilege_escalation,
        remedy=("container.securityContext.capabilities.add", "container.securityContext.allowPrivilegeEscalation"),
    ),
    guidance="""
On the named container's `securityContext`: set `allowPrivilegeEscalation: false`, set `privileged: false` if it is
true, and remove `SYS_ADMIN` from `capabilities.add`. Kubernetes rejects `allowPrivilegeEscalation: false` together
with `privileged: true`, so change both when both are set. Pod Security Standards (restricted) require
allowPrivilegeEscalation to be false.
""",
)


# --- privilege-escalation-not-disabled --------------------------------------------------


@template("non-root-not-enforced")
def non_root_not_enforced():
    # The container runs as a positive UID (so run-as-non-root is content),
    # but nothing makes the kubelet refuse root if that UID is ever dropped:
    # Pod Security Standards (restricted) ask for runAsNonRoot: true itself.
    # An explicit runAsNonRoot: false is the author's choice, not a finding.
    def rule(c, obj):
        user = c.effective_security("runAsUser")
        if not (isinstance(user, int) and not isinstance(user, bool) and user > 0):
            return
        if c.effective_security("runAsNonRoot") is None:
            yield Hit(f"container {go_quote(c.name)} runs as uid {user} but does not set runAsNonRoot to true", ("securityContext", "runAsNonRoot"))

    return per_container(rule)


def _fix_non_root_not_enforced(ctx: FixContext) -> Proposal | None:
    return Proposal(Ops(ctx.obj.data).set((*_sc(ctx), "runAsNonRoot"), True).ops)


check(
    "non-root-not-enforced", "non-root-not-enforced",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    default=False,  # run-as-non-root (like kube-linter) accepts a positive UID; Kyverno's PSS policies map here
    description="Indicates containers that run as a non-zero runAsUser without runAsNonRoot: true (Pod Security Standards, restricted, require both).",
    remediation="Set runAsNonRoot: true in the container securityContext.",
    fix=Fix(
        SAFE,
        "The container already runs as a non-zero numeric uid, so the kubelet's runAsNonRoot check passes and nothing changes at run time.",
        _fix_non_root_not_enforced,
        remedy=("container.securityContext.runAsNonRoot",),
    ),
    guidance="""
Set `securityContext.runAsNonRoot: true` on the named container; keep its runAsUser as it is.
""",
)


@template("privilege-escalation-not-disabled")
def privilege_escalation_not_disabled():
    def rule(c, obj):
        sc = c.security_context
        if sc.get("allowPrivilegeEscalation") is not None:
            return  # written: false is what we ask for; true is privilege-escalation-container's finding
        if sc.get("privileged") is True or "SYS_ADMIN" in as_list(as_dict(sc.get("capabilities")).get("add")):
            return  # privilege-escalation-container's finding; Kubernetes refuses false beside these
        yield Hit(f"container {go_quote(c.name)} does not set allowPrivilegeEscalation to false", ("securityContext", "allowPrivilegeEscalation"))

    return per_container(rule)


def _fix_disable_privilege_escalation(ctx: FixContext) -> Proposal | None:
    return Proposal(set_value(ctx.obj.data, (*_sc(ctx), "allowPrivilegeEscalation"), False))


check(
    "privilege-escalation-not-disabled", "privilege-escalation-not-disabled",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates containers that leave allowPrivilegeEscalation unset: a process can gain more privileges than its parent (setuid binaries).",
    remediation=(
        "Set allowPrivilegeEscalation: false in the container's securityContext. Pod Security Standards (restricted) require it; "
        "see https://kubernetes.io/docs/concepts/security/pod-security-standards/."
    ),
    fix=Fix(
        REVIEW,
        "no_new_privs stops setuid binaries (sudo, su, some ping builds) from raising privileges: a container that relies "
        "on them fails; most do not.",
        _fix_disable_privilege_escalation,
        remedy=("container.securityContext.allowPrivilegeEscalation",),
    ),
    guidance="""
On the named container's `securityContext`, set `allowPrivilegeEscalation: false`. Leave other fields alone.
""",
)


# --- privileged-container -------------------------------------------------------------


@template("privileged")
def privileged():
    def rule(c, obj):
        if c.security_context.get("privileged") is True:
            yield Hit(f"container {go_quote(c.name)} is privileged", ("securityContext", "privileged"), True)

    return per_container(rule)


check(
    "privileged-container", "privileged",
    severity=Severity.CRITICAL,
    kinds=WORKLOADS,
    description="Indicates when deployments have containers running in privileged mode.",
    remediation="Do not run your container as privileged unless it is required.",
    fix=Fix.manual(
        "privileged: true is always written by the author; CNI plugins, storage drivers and node agents run privileged on purpose.",
        "remove privileged: true, and grant the narrow capabilities the container needs instead",
    ),
    guidance="""
Set `securityContext.privileged: false` on the named container. Do not remove the container or its volumes. Pod
Security Standards (baseline) forbid privileged containers.
""",
    aliases=("no-privileged",),
)


# --- drop-net-raw-capability ------------------------------------------------------------


@template("verify-container-capabilities")
def verify_container_capabilities(forbiddenCapabilities=(), exceptions=()):
    forbidden = list(forbiddenCapabilities)
    if any(_is_all(f) for f in forbidden):
        if len(forbidden) != 1:
            raise TypeError("'all' must be the only forbidden capability")
        return per_container(_no_capabilities_at_all(list(exceptions)))
    if exceptions:
        raise TypeError("exceptions are only allowed when forbiddenCapabilities is ['all']")
    matchers = [(f, string_matcher(f)) for f in forbidden]

    def rule(c, obj):
        sc = c.spec.get("securityContext")
        if not isinstance(sc, dict) or not isinstance(sc.get("capabilities"), dict):
            return
        caps = sc["capabilities"]
        added, dropped = as_list(caps.get("add")), as_list(caps.get("drop"))
        name = go_quote(c.name)
        for _, matches in matchers:
            for cap in added:
                if matches(str(cap)) or _is_all(cap):
                    yield Hit(
                        f"container {name} has ADD capability: {go_quote(cap)}, which matched with the forbidden capability for containers",
                        ("securityContext", "capabilities", "add"),
                        cap,
                    )
        for wanted, matches in matchers:
            if not any(matches(str(cap)) or _is_all(cap) for cap in dropped):
                yield Hit(
                    f"container {name} has DROP capabilities: {go_quote_list(dropped)}, "
                    f"but does not drop capability {go_quote(wanted)} which is required",
                    ("securityContext", "capabilities", "drop"),
                    wanted,
                )

    return per_container(rule)


def _no_capabilities_at_all(exceptions: list[str]):
    allowed = [string_matcher(e) for e in exceptions]

    def rule(c, obj):
        sc = c.spec.get("securityContext")
        if not isinstance(sc, dict) or not isinstance(sc.get("capabilities"), dict):
            return
        caps = sc["capabilities"]
        name = go_quote(c.name)
        for cap in as_list(caps.get("add")):
            if not any(m(str(cap)) for m in allowed):
                yield Hit(
                    f"container {name} has ADD capability: {go_quote(cap)}, but no capabilities should be added "
                    "at all and this capability is not included in the exceptions list",
                    ("securityContext", "capabilities", "add"),
                    cap,
                )
        dropped = as_list(caps.get("drop"))
        if not any(_is_all(cap) for cap in dropped):
            yield Hit(
                f"container {name} has DROP capabilities: {go_quote_list(dropped)}, but in fact all capabilities are required to be dropped",
                ("securityContext", "capabilities", "drop"),
            )

    return rule


def _fix_drop_net_raw(ctx: FixContext) -> Proposal | None:
    caps = as_dict(ctx.container.security_context.get("capabilities"))
    ops, applicability = Ops(ctx.obj.data), SAFE
    added = [i for i, cap in enumerate(as_list(caps.get("add"))) if "NET_RAW" in str(cap) or _is_all(cap)]
    if added:
        ops.extend(remove_indices((*_sc(ctx), "capabilities", "add"), added, len(as_list(caps.get("add")))))
        applicability = REVIEW
    if not any("NET_RAW" in str(cap) or _is_all(cap) for cap in as_list(caps.get("drop"))):
        ops.append((*_sc(ctx), "capabilities", "drop"), "NET_RAW")
    return Proposal(ops.ops, applicability)


check(
    "drop-net-raw-capability", "verify-container-capabilities", {"forbiddenCapabilities": ["NET_RAW"]},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when containers do not drop NET_RAW capability",
    remediation=(
        "NET_RAW makes it so that an application within the container is able to craft raw packets, use raw sockets, "
        "and bind to any address. Remove this capability in the containers under containers security contexts."
    ),
    fix=Fix(
        SAFE,
        "Dropping NET_RAW only removes raw sockets (ping, packet crafting); removing an explicit ADD of it is review.",
        _fix_drop_net_raw,
        remedy=("container.securityContext.capabilities",),
    ),
    guidance="""
In the named container's `securityContext.capabilities`: remove `NET_RAW` (and `ALL`) from `add`, and add `NET_RAW`
to `drop` (create the `drop` list if it is missing). Dropping `ALL` also satisfies the check.
""",
)


# --- unsafe-sysctls ------------------------------------------------------------------


@template("unsafe-sysctls")
def unsafe_sysctls(unsafeSysCtls=()):
    prefixes = list(unsafeSysCtls)

    def rule(spec, obj):
        for index, sysctl in enumerate(as_list(as_dict(spec.get("securityContext")).get("sysctls"))):
            name = str(as_dict(sysctl).get("name", ""))
            for prefix in prefixes:
                if name.startswith(prefix):
                    yield Hit(f"resource specifies unsafe sysctl {go_quote(name)}.", ("securityContext", "sysctls", index), name)

    return pod_level(rule)


def _fix_unsafe_sysctls(ctx: FixContext) -> Proposal | None:
    sysctls = as_list(as_dict(ctx.obj.pod_spec.get("securityContext")).get("sysctls"))
    indices = [i for i, s in enumerate(sysctls) if as_dict(s).get("name") == ctx.violation.value]
    return Proposal(remove_indices((*ctx.obj.pod_spec_segments, "securityContext", "sysctls"), indices, len(sysctls)))


check(
    "unsafe-sysctls", "unsafe-sysctls", {"unsafeSysCtls": ["kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.", "net."]},
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    description="Alert on deployments specifying unsafe sysctls that may lead to severe problems like wrong behavior of containers",
    remediation=(
        "Ensure container does not allow unsafe allocation of system resources by removing unsafe sysctls configurations. "
        "For more details see https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/ "
        "https://docs.docker.com/engine/reference/commandline/run/#configure-namespaced-kernel-parameters-sysctls-at-runtime."
    ),
    fix=Fix(REVIEW, "The workload asked for the sysctl; it may depend on it.", _fix_unsafe_sysctls, remedy=("pod.securityContext.sysctls",)),
)


# --- unsafe-proc-mount ----------------------------------------------------------------


@template("unsafe-proc-mount")
def unsafe_proc_mount():
    def rule(c, obj):
        if str(c.security_context.get("procMount", "")).lower() == "unmasked":
            yield Hit(f"container {go_quote(c.name)} exposes /proc unsafely (via procMount=Unmasked).", ("securityContext", "procMount"))

    return per_container(rule)


def _fix_unsafe_proc_mount(ctx: FixContext) -> Proposal | None:
    return Proposal(set_value(ctx.obj.data, (*_sc(ctx), "procMount"), "Default"))


check(
    "unsafe-proc-mount", "unsafe-proc-mount",
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
    description="Alert on deployments with unsafe /proc mount (procMount=Unmasked) that will bypass the default masking behavior of the container runtime",
    remediation=(
        "Ensure container does not unsafely exposes parts of /proc by setting procMount=Default.  Unmasked ProcMount bypasses "
        "the default masking behavior of the container runtime. See https://kubernetes.io/docs/concepts/security/pod-security-standards/ "
        "for more details."
    ),
    fix=Fix(
        REVIEW,
        "Default is the masking every other container runs with; procMount: Unmasked is asked for explicitly, by nested container runtimes.",
        _fix_unsafe_proc_mount,
        remedy=("container.securityContext.procMount",),
    ),
)


# --- unset-seccomp-profile (ours) -----------------------------------------------------

setting("seccomp_profile", str, Field("RuntimeDefault", pattern="^(RuntimeDefault|Localhost)$"))


@template("seccomp-profile")
def seccomp_profile(allowedTypes=("RuntimeDefault", "Localhost")):
    allowed = set(allowedTypes)

    def rule(c, obj):
        profile = c.effective_security("seccompProfile")
        kind = as_dict(profile).get("type")
        if kind is None:
            yield Hit(f"container {go_quote(c.name)} does not set a seccomp profile (seccompProfile.type)", ("securityContext", "seccompProfile"))
        elif kind not in allowed:
            yield Hit(
                f"container {go_quote(c.name)} uses seccomp profile {go_quote(kind)}, expected one of {', '.join(sorted(allowed))}",
                ("securityContext", "seccompProfile", "type"),
                kind,
            )

    return per_container(rule)


def _fix_seccomp(ctx: FixContext) -> Proposal | None:
    return Proposal(set_value(ctx.obj.data, (*_sc(ctx), "seccompProfile"), {"type": ctx.settings.seccomp_profile}))


check(
    "unset-seccomp-profile", "seccomp-profile",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates when containers run without a RuntimeDefault or Localhost seccomp profile (Pod Security Standards, restricted).",
    remediation="Set securityContext.seccompProfile.type to RuntimeDefault in the pod (or container) securityContext.",
    fix=Fix(
        SAFE,
        "RuntimeDefault is the container runtime's default profile; well-behaved workloads run under it unchanged.",
        _fix_seccomp,
        remedy=("container.securityContext.seccompProfile",),
    ),
    guidance="""
Set `securityContext.seccompProfile: {type: RuntimeDefault}` on the named container (it overrides the pod's).
`Unconfined` is not allowed. Pod Security Standards (restricted) require RuntimeDefault or Localhost.
""",
    aliases=("enforce-seccomp",),
)


# --- capabilities-not-dropped (ours) ---------------------------------------------------


@template("required-drop-capabilities")
def required_drop_capabilities(capabilities=("ALL",)):
    required = list(capabilities)

    def rule(c, obj):
        dropped = [str(cap).upper() for cap in as_list(as_dict(c.security_context.get("capabilities")).get("drop"))]
        if "ALL" in dropped:
            return
        missing = [cap for cap in required if cap.upper() not in dropped]
        if missing:
            yield Hit(f"container {go_quote(c.name)} does not drop capabilities {', '.join(missing)}", ("securityContext", "capabilities", "drop"))

    return per_container(rule)


def _fix_drop_all(ctx: FixContext) -> Proposal | None:
    return Proposal(append(ctx.obj.data, (*_sc(ctx), "capabilities", "drop"), "ALL"))


check(
    "capabilities-not-dropped", "required-drop-capabilities", {"capabilities": ["ALL"]},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates when containers do not drop ALL capabilities (Pod Security Standards, restricted).",
    remediation="Add ALL to securityContext.capabilities.drop and add back only the capabilities the container needs.",
    fix=Fix(
        REVIEW,
        "Dropping ALL removes default capabilities (CHOWN, SETUID, NET_BIND_SERVICE) that root images often use.",
        _fix_drop_all,
        remedy=("container.securityContext.capabilities.drop",),
    ),
    guidance="""
Add `ALL` to the named container's `securityContext.capabilities.drop`, creating the lists as needed. Keep any `add`
entries the container needs. Pod Security Standards (restricted) require dropping ALL.
""",
    aliases=("drop-capabilities",),
)


# --- sys-admin-capability (ours) ----------------------------------------------------------


@template("forbidden-added-capabilities")
def forbidden_added_capabilities(capabilities=("SYS_ADMIN",)):
    # Kubernetes accepts both spellings; the CAP_ prefix is the kernel's.
    forbidden = {_cap_name(cap) for cap in capabilities}

    def rule(c, obj):
        for index, cap in enumerate(as_list(as_dict(c.security_context.get("capabilities")).get("add"))):
            if _cap_name(cap) in forbidden or _is_all(cap):
                yield Hit(f"container {go_quote(c.name)} adds capability {go_quote(cap)}", ("securityContext", "capabilities", "add", index), cap)

    return per_container(rule)


def _fix_sys_admin(ctx: FixContext) -> Proposal | None:
    added = as_list(as_dict(ctx.container.security_context.get("capabilities")).get("add"))
    indices = [i for i, cap in enumerate(added) if _cap_name(cap) == "SYS_ADMIN" or _is_all(cap)]
    return Proposal(remove_indices((*_sc(ctx), "capabilities", "add"), indices, len(added)))


check(
    "sys-admin-capability", "forbidden-added-capabilities", {"capabilities": ["SYS_ADMIN"]},
    severity=Severity.CRITICAL,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates when containers add CAP_SYS_ADMIN (or ALL), which is close to full root on the node.",
    remediation="Remove SYS_ADMIN from securityContext.capabilities.add; grant the narrow capability the workload needs instead.",
    fix=Fix(
        REVIEW,
        "The container asked for SYS_ADMIN; it may need it (mounts, namespaces).",
        _fix_sys_admin,
        remedy=("container.securityContext.capabilities.add",),
    ),
    guidance="""
Remove `SYS_ADMIN` or `CAP_SYS_ADMIN` (and `ALL`) from the named container's `securityContext.capabilities.add`. Do
not add anything else.
""",
)


# --- run-as-root-uid (ours) ---------------------------------------------------------------


@template("run-as-uid")
def run_as_uid(forbiddenUIDs=(0,)):
    forbidden = set(forbiddenUIDs)

    def rule(c, obj):
        user = c.effective_security("runAsUser")
        if user in forbidden and not isinstance(user, bool):
            yield Hit(f"container {go_quote(c.name)} runs as UID {user}", ("securityContext", "runAsUser"), user)

    return per_container(rule)


check(
    "run-as-root-uid", "run-as-uid", {"forbiddenUIDs": [0]},
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates when containers explicitly run as UID 0 (root), in the container or pod securityContext.",
    remediation="Set runAsUser to a non-zero UID (and runAsNonRoot: true) in the pod or container securityContext.",
    fix=Fix.manual(
        "runAsUser: 0 is written by the author: init containers that chown or chmod, and images that need root, ask for it.",
        "set a non-zero runAsUser that owns the files the container uses, or keep root and accept the finding",
    ),
    guidance="""
`runAsUser: 0` is written in the manifest: the author asked for root (init containers that chown, images that need
root). Answer with an empty array `[]`; a person decides.
""",
    aliases=("run-as-user",),
)
