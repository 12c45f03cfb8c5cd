"""What a pod shares with its node: namespaces, host paths, host and container ports."""

from __future__ import annotations

from ..contracts import Severity
from ..manifests.objects import Container, K8sObject
from .common import (
    WORKLOADS,
    Hit,
    as_dict,
    as_list,
    go_quote,
    per_container,
    pod_level,
    string_matcher,
)
from .registry import Fix, KubeLinter, Violation, check, template

# --- host-network, host-pid, host-ipc ----------------------------------------------------

HOST_NAMESPACE_REASON = (
    "Sharing a node namespace is written by the author: node agents, CNI plugins and monitoring daemons share them on purpose."
)
HOST_NAMESPACE_GUIDANCE = """
`hostNetwork`, `hostPID` and `hostIPC` are set on purpose by node agents; a pod sharing them is a node agent, and
taking them away stops it doing its job. Answer with an empty array `[]`; a person decides.
"""


def _pod_flag(field: str, message: str):
    def rule(spec, obj):
        if spec.get(field) is True:
            yield Hit(message, (field,), True)

    return pod_level(rule)


def _host_namespace_fix(field: str) -> Fix:
    return Fix.manual(HOST_NAMESPACE_REASON, f"set {field}: false if the pod does not need the node's namespace")


template("host-network")(lambda: _pod_flag("hostNetwork", "resource shares host's network namespace (via hostNetwork=true)."))
template("host-pid")(lambda: _pod_flag("hostPID", "object shares the host's process namespace (via hostPID=true)."))
template("host-ipc")(lambda: _pod_flag("hostIPC", "resource shares host's IPC namespace (via hostIPC=true)."))

check(
    "host-network", "host-network",
    severity=Severity.CRITICAL,
    kinds=WORKLOADS,
    description="Alert on pods/deployment-likes with sharing host's network namespace",
    remediation="Ensure the host's network namespace is not shared.",
    fix=_host_namespace_fix("hostNetwork"),
    guidance=HOST_NAMESPACE_GUIDANCE,
)
check(
    "host-pid", "host-pid",
    severity=Severity.CRITICAL,
    kinds=WORKLOADS,
    description="Alert on pods/deployment-likes with sharing host's process namespace",
    remediation="Ensure the host's process namespace is not shared.",
    fix=_host_namespace_fix("hostPID"),
    guidance=HOST_NAMESPACE_GUIDANCE,
)
check(
    "host-ipc", "host-ipc",
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    description="Alert on pods/deployment-likes with sharing host's IPC namespace",
    remediation="Ensure the host's IPC namespace is not shared.",
    fix=_host_namespace_fix("hostIPC"),
    guidance=HOST_NAMESPACE_GUIDANCE,
)


# --- host mounts: sensitive-host-mounts, docker-sock, writable-host-mount ---------------------


def _host_path_volumes(obj: K8sObject):
    """(index, volume, host path) for every hostPath volume of the pod, in order."""
    for index, volume in enumerate(as_list(obj.pod_spec.get("volumes"))):
        volume = as_dict(volume)
        host_path = volume.get("hostPath")
        if isinstance(host_path, dict):
            yield index, volume, str(host_path.get("path", ""))


def _mounts_of(container: Container, volume_name: object):
    """(index, mount) of every mount of the volume in the container."""
    return [(i, m) for i, m in enumerate(as_list(container.spec.get("volumeMounts"))) if as_dict(m).get("name") == volume_name]


@template("host-mounts")
def host_mounts(dirs=()):
    matchers = [string_matcher(d) for d in dirs]

    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        for _, volume, path in _host_path_volumes(obj):
            for matches in matchers:
                if not matches(path):
                    continue
                for container in obj.containers:
                    for index, _ in _mounts_of(container, volume.get("name")):
                        message = f"host system directory {go_quote(path)} is mounted on container {go_quote(container.name)}"
                        yield Violation(message, container.name, (*container.segments, "volumeMounts", index), path)

    return detect


check(
    "sensitive-host-mounts", "host-mounts", {"dirs": ["^/$", "^/boot$", "^/dev$", "^/etc$", "^/lib$", "^/proc$", "^/sys$", "^/usr$"]},
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    description="Alert on deployments with sensitive host system directories mounted in containers",
    remediation="Ensure sensitive host system directories are not mounted in containers by removing those Volumes and VolumeMounts.",
)
check(
    "docker-sock", "host-mounts", {"dirs": ["docker.sock$"]},
    severity=Severity.CRITICAL,
    kinds=WORKLOADS,
    description="Alert on deployments with docker.sock mounted in containers. ",
    remediation=(
        "Ensure the Docker socket is not mounted inside any containers by removing the associated  Volume and VolumeMount "
        "in deployment yaml specification. If the Docker socket is mounted inside a container it could allow processes "
        "running within  the container to execute Docker commands which would effectively allow for full control of the host."
    ),
)


@template("writable-host-mount")
def writable_host_mount():
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        for _, volume, _path in _host_path_volumes(obj):
            for container in obj.containers:
                for index, mount in _mounts_of(container, volume.get("name")):
                    if as_dict(mount).get("readOnly") is not True:
                        message = f"container {container.name} mounts path {as_dict(mount).get('mountPath', '')} on the host as writable"
                        yield Violation(message, container.name, (*container.segments, "volumeMounts", index, "readOnly"))

    return detect


check(
    "writable-host-mount", "writable-host-mount",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
    description="Indicates when containers mount a host path as writable.",
    remediation="Set containers to mount host paths as readOnly, if you need to access files on the host.",
    fix=Fix.manual(
        "A pod mounting a host path is a node agent; log shippers and storage drivers write there on purpose.",
        "set readOnly: true on the mount if the container only reads the host path",
    ),
)


# --- host-path-volume (ours) -----------------------------------------------------------------


@template("host-path-volume")
def host_path_volume(allowedPaths=()):
    allowed = [string_matcher(p) for p in allowedPaths]

    def rule(spec, obj):
        for index, volume, path in _host_path_volumes(obj):
            if not any(m(path) for m in allowed):
                yield Hit(f"volume {go_quote(volume.get('name', ''))} mounts host path {go_quote(path)}", ("volumes", index, "hostPath"), volume.get("name"))

    return pod_level(rule)


check(
    "host-path-volume", "host-path-volume",
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates when pods use hostPath volumes, which expose the node's filesystem (Pod Security Standards, baseline).",
    remediation="Replace the hostPath volume with an emptyDir, a ConfigMap/Secret or a PersistentVolumeClaim.",
    fix=Fix.manual(
        "A hostPath gives the containers the node's files (a socket, /etc/localtime, /proc, /sys); an emptyDir in its place "
        "gives them an empty directory, and a file mount cannot even start.",
        "replace the hostPath with a ConfigMap, a Secret or a PersistentVolumeClaim holding what the container reads",
    ),
    guidance="""
A hostPath volume gives the containers the node's files; replacing it with an emptyDir gives them an empty directory
instead. Answer with an empty array `[]`; a person decides what should replace it.
""",
    aliases=("no-host-path",),
)


# --- ports: ssh-port, privileged-ports, host-port ---------------------------------------------


def _ports(container: Container):
    return [(i, as_dict(p)) for i, p in enumerate(as_list(container.spec.get("ports")))]


@template("ports")
def ports(port=0, protocol=""):
    protocol_matches = string_matcher(protocol)

    def rule(c, obj):
        for index, p in _ports(c):
            proto = p.get("protocol") or "TCP"
            if p.get("containerPort") == port and protocol_matches(str(proto)):
                yield Hit(f"port {port} and protocol {proto} in container {go_quote(c.name)} found", ("ports", index, "containerPort"), port)

    return per_container(rule)


check(
    "ssh-port", "ports", {"port": 22, "protocol": "TCP"},
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Indicates when deployments expose port 22, which is commonly reserved for SSH access.",
    remediation="Ensure that non-SSH services are not using port 22. Confirm that any actual SSH servers have been vetted.",
)


@template("privileged-ports")
def privileged_ports():
    def rule(c, obj):
        for index, p in _ports(c):
            number = p.get("containerPort")
            if isinstance(number, int) and 0 < number < 1024:
                yield Hit(f"port {number} is mapped in container {go_quote(c.name)}.", ("ports", index, "containerPort"), number)

    return per_container(rule)


check(
    "privileged-ports", "privileged-ports",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
    description="Alert on deployments with privileged ports mapped in containers",
    remediation="Ensure privileged ports [0, 1024] are not mapped within containers.",
)


@template("host-port")
def host_port():
    def rule(c, obj):
        for index, p in _ports(c):
            number = p.get("hostPort")
            if isinstance(number, int) and number > 0:
                yield Hit(f"container {go_quote(c.name)} binds host port {number}", ("ports", index, "hostPort"), number)

    return per_container(rule)


check(
    "host-port", "host-port",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.NONE,
    description="Indicates when containers bind a port on the node (hostPort), which limits scheduling and bypasses NetworkPolicy (Pod Security Standards, baseline).",
    remediation="Remove hostPort and expose the container through a Service instead.",
    fix=Fix.manual(
        "Clients reach the pod through the node's port: they must move to a Service first.",
        "expose the container through a Service, then remove hostPort",
    ),
    aliases=("no-host-ports",),
)
