"""Network policies and ingresses: what they select must exist."""

from __future__ import annotations

from ..contracts import Severity
from ..manifests.selectors import SelectorError, from_label_selector, go_map
from .common import WORKLOADS, as_dict, as_list
from .registry import Kinds, KubeLinter, Violation, check, template

NETWORKING = "networking.k8s.io/v1"


def _is_network_policy(obj) -> bool:
    return obj.api_version == NETWORKING and obj.kind == "NetworkPolicy"


def _go_selector_struct(selector: dict) -> str:
    """%v of a metav1.LabelSelector value: {map[k:v] [{key In [a b]}]}."""
    expressions = " ".join(
        "{%s %s [%s]}" % (e.get("key", ""), e.get("operator", ""), " ".join(map(str, as_list(e.get("values")))))
        for e in map(as_dict, as_list(selector.get("matchExpressions")))
    )
    return f"{{{go_map(as_dict(selector.get('matchLabels')))} [{expressions}]}}"


def _selects_pods(selector, namespace: str, app) -> bool:
    return any(selector.matches(owner.pod_labels) for owner in app.pod_owners(namespace))


@template("non-isolated-pod", cross_object=True)
def non_isolated_pod():
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        labels = (*obj.pod_spec_segments[:-1], "metadata", "labels")  # what a policy selects
        for policy in app.find(NETWORKING, "NetworkPolicy", obj.namespace):
            try:
                selector = from_label_selector(as_dict(policy.data.get("spec")).get("podSelector"))
            except SelectorError as err:
                yield Violation(f"networkpolicy has invalid podSelector: {err}", path=labels)
                return
            if selector.matches(obj.pod_labels):
                return
        yield Violation("pods created by this object are non-isolated", path=labels)

    return detect


POD_SELECTOR = ("spec", "podSelector")


@template("dangling-networkpolicy", cross_object=True)
def dangling_networkpolicy():
    def detect(obj, app):
        if not _is_network_policy(obj):
            return
        raw = as_dict(obj.data.get("spec")).get("podSelector")
        try:
            selector = from_label_selector(raw)
        except SelectorError as err:
            yield Violation(f"networkpolicy has invalid podSelector: {err}", path=POD_SELECTOR)
            return
        if not _selects_pods(selector, obj.namespace, app):
            yield Violation(f"no pods found matching networkpolicy's podSelector labels ({_go_selector_struct(as_dict(raw))}) ", path=POD_SELECTOR)

    return detect


@template("dangling-networkpolicypeer-podselector", cross_object=True)
def dangling_networkpolicypeer_podselector():
    def detect(obj, app):
        if not _is_network_policy(obj):
            return
        spec = as_dict(obj.data.get("spec"))
        peers = [
            (as_dict(peer), ("spec", direction, number, side, index, "podSelector"))
            for direction, side in (("ingress", "from"), ("egress", "to"))
            for number, rule in enumerate(as_list(spec.get(direction)))
            for index, peer in enumerate(as_list(as_dict(rule).get(side)))
        ]
        for peer, at in peers:
            if peer.get("podSelector") is None or peer.get("namespaceSelector") is not None:
                continue
            try:
                selector = from_label_selector(peer["podSelector"])
            except SelectorError as err:
                yield Violation(f"networkpolicy ingress rule has invalid podSelector: {err}", path=at)
                continue
            if not _selects_pods(selector, obj.namespace, app):
                yield Violation(f"no pods found matching networkpolicy rule's podSelector labels ({selector})", path=at)

    return detect


@template("dangling-ingress", cross_object=True)
def dangling_ingress():
    def backend_key(backend) -> tuple[str, object] | None:
        service = as_dict(as_dict(backend).get("service"))
        if not service:
            return None
        port = as_dict(service.get("port"))
        return str(service.get("name", "")), port.get("name") or port.get("number", 0)

    def detect(obj, app):
        if obj.api_version != NETWORKING or obj.kind != "Ingress":
            return
        spec = as_dict(obj.data.get("spec"))
        backends = [(spec.get("defaultBackend"), ("spec", "defaultBackend"))]
        for number, rule in enumerate(map(as_dict, as_list(spec.get("rules")))):
            paths = as_list(as_dict(rule.get("http")).get("paths"))
            backends += [(as_dict(p).get("backend"), ("spec", "rules", number, "http", "paths", index, "backend")) for index, p in enumerate(paths)]
        where: dict[tuple, tuple] = {}  # each service and port, at the first backend naming it
        for backend, at in backends:
            key = backend_key(backend)
            if key is not None:
                where.setdefault(key, at)
        wanted = set(where)
        for service in app.find("v1", "Service", obj.namespace):
            for port in map(as_dict, as_list(as_dict(service.data.get("spec")).get("ports"))):
                wanted.discard((service.name, port.get("port")))
                if port.get("name"):
                    wanted.discard((service.name, port["name"]))
        for name, port in sorted(wanted, key=str):
            yield Violation(f"no service found matching ingress label ({name}), port {port}", path=(*where[(name, port)], "service"))

    return detect


check(
    "non-isolated-pod",
    template="non-isolated-pod",
    description="Alert on deployment-like objects that are not selected by any NetworkPolicy.",
    remediation=(
        "Ensure pod does not accept unsafe traffic by isolating it with a NetworkPolicy. See "
        "https://cloud.redhat.com/blog/guide-to-kubernetes-ingress-network-policies for more details."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "dangling-networkpolicy",
    template="dangling-networkpolicy",
    description="Indicates when networkpolicies do not have any associated deployments.",
    remediation="Confirm that your networkpolicy's podselector correctly matches the labels on one of your deployments.",
    severity=Severity.LOW,
    kinds=Kinds(("NetworkPolicy",), NETWORKING),
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "dangling-networkpolicypeer-podselector",
    template="dangling-networkpolicypeer-podselector",
    description="Indicates when NetworkPolicyPeer in Egress/Ingress rules -in the Spec of NetworkPolicy- do not have any associated deployments. If applied on the same namespace, the NetworkPolicyPeer podSelector labels should match labels of one of your deployments.",
    remediation="Confirm that your NetworkPolicy's Ingress/Egress peer's podselector correctly matches the labels on one of your deployments.",
    severity=Severity.LOW,
    kinds=Kinds(("NetworkPolicy",), NETWORKING),
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "dangling-ingress",
    template="dangling-ingress",
    description="Indicates when ingress do not have any associated services.",
    remediation="Confirm that your ingress's backend service correctly matches the name and port of one of your services.",
    severity=Severity.LOW,
    kinds=Kinds(("Ingress",), NETWORKING),
    kube_linter=KubeLinter.OPTIONAL,
)


@template("dangling-servicemonitor", cross_object=True)
def dangling_servicemonitor():
    # kube-linter ignores matchExpressions and the monitor's own namespace here.
    def detect(obj, app):
        if obj.api_version != "monitoring.coreos.com/v1" or obj.kind != "ServiceMonitor":
            return
        spec = as_dict(obj.data.get("spec"))
        ns_selector = as_dict(spec.get("namespaceSelector"))
        names = [str(n) for n in as_list(ns_selector.get("matchNames"))]
        any_namespace = ns_selector.get("any") is True
        labels = {str(k): str(v) for k, v in as_dict(as_dict(spec.get("selector")).get("matchLabels")).items()}
        if not names and not any_namespace and not labels:
            yield Violation("service monitor has no selector specified", path=("spec", "selector"))
            return

        def label_match(service) -> bool:
            return all(str(service.labels.get(k)) == v and k in service.labels for k, v in labels.items())

        for service in app.find("v1", "Service"):
            if any_namespace or service.namespace in names:
                if not labels or label_match(service):
                    return
            elif labels and label_match(service) and not names and not any_namespace:
                return
        selector = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
        yield Violation(
            f"no services found matching the service monitor's label selector ({selector}) and namespace selector ([{' '.join(names)}])",
            path=("spec", "selector"),
        )

    return detect


check(
    "dangling-servicemonitor",
    template="dangling-servicemonitor",
    description="Indicate when a service monitor's selectors don't match any service. ServiceMonitors are a custom resource only used by the Prometheus operator (https://prometheus-operator.dev/docs/operator/design/#servicemonitor).",
    remediation="Check selectors and your services.",
    severity=Severity.LOW,
    kinds=Kinds(("ServiceMonitor",), "monitoring.coreos.com/v1"),
    kube_linter=KubeLinter.OPTIONAL,
)
