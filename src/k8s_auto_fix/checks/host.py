"""What a pod shares with its node: namespaces, host paths, host and container ports."""

from __future__ import annotations

from ..contracts import Applicability
from ..manifests.objects import Container, K8sObject, pointer
from .common import (
    WORKLOADS,
    as_dict,
    as_list,
    go_quote,
    per_container,
    pod_level,
    string_matcher,
)
from .patching import remove, set_value
from .registry import (
    Fix,
    FixContext,
    KubeLinter,
    Proposal,
    Severity,
    Violation,
    check,
    template,
)


def _pod_flag(field: str, message: str):
    def rule(spec, obj):
        if spec.get(field) is True:
            yield message

    return pod_level(rule)


@template("host-network")
def host_network():
    return _pod_flag("hostNetwork", "resource shares host's network namespace (via hostNetwork=true).")


@template("host-pid")
def host_pid():
    return _pod_flag("hostPID", "object shares the host's process namespace (via hostPID=true).")


@template("host-ipc")
def host_ipc():
    return _pod_flag("hostIPC", "resource shares host's IPC namespace (via hostIPC=true).")


def _host_path_volumes(obj: K8sObject):
    """(volume, host path) for every hostPath volume of the pod, in order."""
    for volume in as_list(obj.pod_spec.get("volumes")):
        volume = as_dict(volume)
        host_path = volume.get("hostPath")
        if not isinstance(host_path, dict):
            continue
        path = str(host_path.get("path", ""))
        yield volume, path


def _mounts_of(container: Container, volume_name: object):
    return [m for m in as_list(container.spec.get("volumeMounts")) if as_dict(m).get("name") == volume_name]


@template("host-mounts")
def host_mounts(dirs=()):
    matchers = [string_matcher(d) for d in dirs]

    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        for volume, path in _host_path_volumes(obj):
            for matches in matchers:
                if not matches(path):
                    continue
                for container in obj.containers:
                    for _ in _mounts_of(container, volume.get("name")):
                        message = f"host system directory {go_quote(path)} is mounted on container {go_quote(container.name)}"
                        yield Violation(message, container.name)

    return detect


@template("writable-host-mount")
def writable_host_mount():
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        for volume, _path in _host_path_volumes(obj):
            for container in obj.containers:
                for mount in _mounts_of(container, volume.get("name")):
                    if as_dict(mount).get("readOnly") is not True:
                        message = f"container {container.name} mounts path {as_dict(mount).get('mountPath', '')} on the host as writable"
                        yield Violation(message, container.name)

    return detect


@template("host-path-volume")
def host_path_volume(allowedPaths=()):
    allowed = [string_matcher(p) for p in allowedPaths]

    def rule(spec, obj):
        for volume, path in _host_path_volumes(obj):
            if not any(m(path) for m in allowed):
                yield f"volume {go_quote(volume.get('name', ''))} mounts host path {go_quote(path)}"

    return pod_level(rule)


def _ports(container: Container):
    return [as_dict(p) for p in as_list(container.spec.get("ports"))]


@template("ports")
def ports(port=0, protocol=""):
    protocol_matches = string_matcher(protocol)

    def rule(c, obj):
        for p in _ports(c):
            proto = p.get("protocol") or "TCP"
            if p.get("containerPort") == port and protocol_matches(str(proto)):
                yield f"port {port} and protocol {proto} in container {go_quote(c.name)} found"

    return per_container(rule)


@template("privileged-ports")
def privileged_ports():
    def rule(c, obj):
        for p in _ports(c):
            number = p.get("containerPort")
            if isinstance(number, int) and 0 < number < 1024:
                yield f"port {number} is mapped in container {go_quote(c.name)}."

    return per_container(rule)


@template("host-port")
def host_port():
    def rule(c, obj):
        for p in _ports(c):
            number = p.get("hostPort")
            if isinstance(number, int) and number > 0:
                yield f"container {go_quote(c.name)} binds host port {number}"

    return per_container(rule)


# --- fixes -------------------------------------------------------------------


def _fix_pod_flag(field: str):
    def build(ctx: FixContext) -> Proposal | None:
        return Proposal(set_value(ctx.obj.data, (*ctx.obj.pod_spec_segments, field), False))

    return build


def _fix_host_path_volume(ctx: FixContext) -> Proposal | None:
    """Keep the volume (and every mount of it), swap its source for an emptyDir."""
    volumes = as_list(ctx.obj.pod_spec.get("volumes"))
    name = ctx.message.split('"')[1] if '"' in ctx.message else None
    for index, volume in enumerate(volumes):
        volume = as_dict(volume)
        if volume.get("name") == name and isinstance(volume.get("hostPath"), dict):
            base = (*ctx.obj.pod_spec_segments, "volumes", index)
            return Proposal([remove((*base, "hostPath")), {"op": "add", "path": pointer(*base, "emptyDir"), "value": {}}])
    return None


def _fix_host_port(ctx: FixContext) -> Proposal | None:
    ports = as_list(ctx.container.spec.get("ports"))
    indices = [i for i, p in enumerate(ports) if isinstance(as_dict(p).get("hostPort"), int) and as_dict(p)["hostPort"] > 0]
    return Proposal([remove((*ctx.container.segments, "ports", i, "hostPort")) for i in indices])


def _fix_writable_host_mount(ctx: FixContext) -> Proposal | None:
    host_volumes = {as_dict(v).get("name") for v, _ in _host_path_volumes(ctx.obj)}
    ops = []
    for index, mount in enumerate(as_list(ctx.container.spec.get("volumeMounts"))):
        if as_dict(mount).get("name") in host_volumes and as_dict(mount).get("readOnly") is not True:
            ops += set_value(ctx.obj.data, (*ctx.container.segments, "volumeMounts", index, "readOnly"), True)
    return Proposal(ops)


HOST_NAMESPACE_REASON = "Node agents, CNI plugins and monitoring daemons share host namespaces on purpose."
HOST_NETWORK_FIX = Fix(Applicability.REVIEW, HOST_NAMESPACE_REASON, _fix_pod_flag("hostNetwork"))
HOST_PID_FIX = Fix(Applicability.REVIEW, HOST_NAMESPACE_REASON, _fix_pod_flag("hostPID"))
HOST_IPC_FIX = Fix(Applicability.REVIEW, HOST_NAMESPACE_REASON, _fix_pod_flag("hostIPC"))
HOST_PATH_VOLUME_FIX = Fix(
    Applicability.REVIEW,
    "The volume and its mounts stay; its content no longer comes from the node, which the workload may rely on.",
    _fix_host_path_volume,
)
HOST_PORT_FIX = Fix(
    Applicability.REVIEW,
    "Clients reaching the pod through the node's port must move to a Service.",
    _fix_host_port,
)
WRITABLE_HOST_MOUNT_FIX = Fix(Applicability.REVIEW, "The workload may write to the host path on purpose.", _fix_writable_host_mount)


check(
    "host-network",
    template="host-network",
    description="Alert on pods/deployment-likes with sharing host's network namespace",
    remediation="Ensure the host's network namespace is not shared.",
    severity=Severity.CRITICAL,
    scope=WORKLOADS,
    fix=HOST_NETWORK_FIX,
)
check(
    "host-pid",
    template="host-pid",
    description="Alert on pods/deployment-likes with sharing host's process namespace",
    remediation="Ensure the host's process namespace is not shared.",
    severity=Severity.CRITICAL,
    scope=WORKLOADS,
    fix=HOST_PID_FIX,
)
check(
    "host-ipc",
    template="host-ipc",
    description="Alert on pods/deployment-likes with sharing host's IPC namespace",
    remediation="Ensure the host's IPC namespace is not shared.",
    severity=Severity.HIGH,
    scope=WORKLOADS,
    fix=HOST_IPC_FIX,
)
check(
    "sensitive-host-mounts",
    template="host-mounts",
    params={"dirs": ["^/$", "^/boot$", "^/dev$", "^/etc$", "^/lib$", "^/proc$", "^/sys$", "^/usr$"]},
    description="Alert on deployments with sensitive host system directories mounted in containers",
    remediation="Ensure sensitive host system directories are not mounted in containers by removing those Volumes and VolumeMounts.",
    severity=Severity.HIGH,
    scope=WORKLOADS,
)
check(
    "docker-sock",
    template="host-mounts",
    params={"dirs": ["docker.sock$"]},
    description="Alert on deployments with docker.sock mounted in containers. ",
    remediation=(
        "Ensure the Docker socket is not mounted inside any containers by removing the associated  Volume and VolumeMount "
        "in deployment yaml specification. If the Docker socket is mounted inside a container it could allow processes "
        "running within  the container to execute Docker commands which would effectively allow for full control of the host."
    ),
    severity=Severity.CRITICAL,
    scope=WORKLOADS,
)
check(
    "writable-host-mount",
    template="writable-host-mount",
    description="Indicates when containers mount a host path as writable.",
    remediation="Set containers to mount host paths as readOnly, if you need to access files on the host.",
    severity=Severity.MEDIUM,
    scope=WORKLOADS,
    enabled_by_default=False,
    kube_linter=KubeLinter.OPTIONAL,
    fix=WRITABLE_HOST_MOUNT_FIX,
)
check(
    "ssh-port",
    template="ports",
    params={"port": 22, "protocol": "TCP"},
    description="Indicates when deployments expose port 22, which is commonly reserved for SSH access.",
    remediation="Ensure that non-SSH services are not using port 22. Confirm that any actual SSH servers have been vetted.",
    severity=Severity.MEDIUM,
    scope=WORKLOADS,
)
check(
    "privileged-ports",
    template="privileged-ports",
    description="Alert on deployments with privileged ports mapped in containers",
    remediation="Ensure privileged ports [0, 1024] are not mapped within containers.",
    severity=Severity.LOW,
    scope=WORKLOADS,
    enabled_by_default=False,
    kube_linter=KubeLinter.OPTIONAL,
)

# Ours.
check(
    "host-path-volume",
    template="host-path-volume",
    description="Indicates when pods use hostPath volumes, which expose the node's filesystem (Pod Security Standards, baseline).",
    remediation="Replace the hostPath volume with an emptyDir, a ConfigMap/Secret or a PersistentVolumeClaim.",
    severity=Severity.HIGH,
    scope=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    fix=HOST_PATH_VOLUME_FIX,
)
check(
    "host-port",
    template="host-port",
    description="Indicates when containers bind a port on the node (hostPort), which limits scheduling and bypasses NetworkPolicy (Pod Security Standards, baseline).",
    remediation="Remove hostPort and expose the container through a Service instead.",
    severity=Severity.MEDIUM,
    scope=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    fix=HOST_PORT_FIX,
)
