"""Workload profiles: what a pod template is for, read from the manifests alone.

A fix that is right for a web server can stop a node agent doing its job, so
fixes and the runnability gate consult the profile:

- node agent: it shares a host namespace, mounts a host path, or is a
  DaemonSet that runs privileged or adds capabilities (CNI plugins, storage
  drivers, log shippers, node exporters);
- API controller: a RoleBinding or ClusterRoleBinding of the application names
  its ServiceAccount, so it calls the Kubernetes API;
- batch: a Job, a CronJob, or a Pod that is not restarted;
- web server: a Service of the application selects it, or it declares an HTTP port;
- Windows: it is scheduled on Windows nodes, or sets Windows options.
"""

from __future__ import annotations

from enum import Enum

from .context import Application
from .objects import K8sObject

HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
OS_LABELS = ("kubernetes.io/os", "beta.kubernetes.io/os")
HTTP_PORT_NAMES = {"http", "https", "web", "http-web", "metrics-http"}
HTTP_PORTS = {80, 443, 8080, 8443}


class Profile(str, Enum):
    NODE_AGENT = "node-agent"
    API_CONTROLLER = "api-controller"
    BATCH = "batch"
    WEB_SERVER = "web-server"
    WINDOWS = "windows"


def profile_of(obj: K8sObject, app: Application) -> frozenset[Profile]:
    """The profiles of a workload (empty for objects without a pod template)."""
    if obj.pod_spec is None:
        return frozenset()
    cache = app.__dict__.setdefault("_profiles", {})
    key = id(obj)
    if key not in cache or cache[key][0] is not obj:
        cache[key] = (obj, frozenset(_profiles(obj, app)))
    return cache[key][1]


def _profiles(obj: K8sObject, app: Application):
    if is_node_agent(obj):
        yield Profile.NODE_AGENT
    if service_account(obj) in bound_service_accounts(app):
        yield Profile.API_CONTROLLER
    if obj.kind in ("Job", "CronJob") or (obj.kind == "Pod" and obj.pod_spec.get("restartPolicy") in ("Never", "OnFailure")):
        yield Profile.BATCH
    if _serves_http(obj, app):
        yield Profile.WEB_SERVER
    if is_windows(obj):
        yield Profile.WINDOWS


def is_node_agent(obj: K8sObject) -> bool:
    spec = obj.pod_spec or {}
    if any(spec.get(ns) is True for ns in HOST_NAMESPACES) or host_path_volumes(obj):
        return True
    if obj.kind == "DaemonSet":
        for c in obj.containers:
            caps = c.security_context.get("capabilities")
            if c.security_context.get("privileged") is True or (isinstance(caps, dict) and caps.get("add")):
                return True
    return False


def host_path_volumes(obj: K8sObject) -> dict[str, str]:
    """Volume name -> host path, for every hostPath volume of the pod."""
    found = {}
    for volume in (obj.pod_spec or {}).get("volumes") or []:
        if isinstance(volume, dict) and isinstance(volume.get("hostPath"), dict):
            found[str(volume.get("name"))] = str(volume["hostPath"].get("path", ""))
    return found


def service_account(obj: K8sObject) -> str:
    spec = obj.pod_spec or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


def bound_service_accounts(app: Application) -> set[str]:
    """Names of the ServiceAccounts a RoleBinding or ClusterRoleBinding of the
    application names. By name alone, whatever namespace: a namespace is often
    given at deploy time, and a token kept by mistake is safer than one taken."""
    names = app.__dict__.get("_bound_accounts")
    if names is None:
        names = {
            str(subject.get("name"))
            for binding in app.objects
            if binding.kind in ("RoleBinding", "ClusterRoleBinding")
            for subject in binding.data.get("subjects") or []
            if isinstance(subject, dict) and subject.get("kind") == "ServiceAccount"
        }
        app.__dict__["_bound_accounts"] = names
    return names


def is_windows(obj: K8sObject) -> bool:
    spec = obj.pod_spec or {}
    selector = spec.get("nodeSelector") if isinstance(spec.get("nodeSelector"), dict) else {}
    if any(str(selector.get(label, "")).lower() == "windows" for label in OS_LABELS):
        return True
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or [] if isinstance(required, dict) else []:
        for expression in (term or {}).get("matchExpressions") or []:
            if isinstance(expression, dict) and expression.get("key") in OS_LABELS and expression.get("operator") == "In" \
                    and [str(v).lower() for v in expression.get("values") or []] == ["windows"]:
                return True
    contexts = [spec.get("securityContext")] + [c.spec.get("securityContext") for c in obj.containers]
    if any(isinstance(sc, dict) and sc.get("windowsOptions") for sc in contexts):
        return True
    return any(path[1:3] == ":\\" or path.startswith("\\\\") for path in host_path_volumes(obj).values())


def _serves_http(obj: K8sObject, app: Application) -> bool:
    for c in obj.containers:
        for port in c.spec.get("ports") or []:
            if isinstance(port, dict) and (str(port.get("name", "")).lower() in HTTP_PORT_NAMES or port.get("containerPort") in HTTP_PORTS):
                return True
    return id(obj) in _selected_by_services(app)


def _selected_by_services(app: Application) -> set[int]:
    """Ids of the pod owners some Service of the application selects (computed once per application)."""
    selected = app.__dict__.get("_selected_by_services")
    if selected is None:
        selected = set()
        for service in app.find("v1", "Service"):
            selector = (service.data.get("spec") or {}).get("selector")
            if not isinstance(selector, dict) or not selector:
                continue
            key, value = next(iter(selector.items()))
            for owner in app.pod_owners_with_label(service.namespace, str(key), str(value)):
                labels = owner.pod_labels
                if all(k in labels and str(labels[k]) == str(v) for k, v in selector.items()):
                    selected.add(id(owner))
        app.__dict__["_selected_by_services"] = selected
    return selected
