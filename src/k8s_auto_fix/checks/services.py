"""Services and ServiceAccounts: what a workload or a Service points at must exist."""

from __future__ import annotations

import re

from ..contracts import Applicability, Severity
from ..manifests.names import name_errors
from ..manifests.profiles import bound_service_accounts
from ..manifests.selectors import SelectorError, from_match_labels, go_map
from .common import SERVICE, WORKLOADS, as_dict, as_list, go_quote, string_matcher
from .patching import remove, set_value
from .registry import Fix, FixContext, KubeLinter, Proposal, Violation, check, setting, template


def _is_service(obj) -> bool:
    return obj.api_version == "v1" and obj.kind == "Service"


@template("dangling-service", cross_object=True)
def dangling_service(ignoredLabels=()):
    ignored = set(ignoredLabels)

    def detect(obj, app):
        if not _is_service(obj):
            return
        spec = as_dict(obj.data.get("spec"))
        if spec.get("type") == "ExternalName":
            return
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not selector:
            yield Violation("service has no selector specified", path=("spec", "selector"))
            return
        selector = {k: v for k, v in selector.items() if k not in ignored}
        try:
            wanted = from_match_labels(selector)
        except SelectorError as err:
            yield Violation(f"service has invalid label selector: {err}", path=("spec", "selector"))
            return
        # Only pods carrying one of the selector's labels can match it.
        key, value = next(iter(selector.items())) if selector else (None, None)
        candidates = app.pod_owners_with_label(obj.namespace, str(key), str(value)) if selector else app.pod_owners(obj.namespace)
        if not any(wanted.matches(owner.pod_labels) for owner in candidates):
            yield Violation(f"no pods found matching service labels ({go_map(selector)})", path=("spec", "selector"))

    return detect


# k8s.io/apimachinery validation.IsValidPortName, error texts in its order.
def port_name_errors(name: str) -> list[str]:
    errors = []
    if len(name) > 15:
        errors.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errors.append("must contain at least one letter (a-z)")
    if "--" in name:
        errors.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errors.append("must not begin or end with a hyphen")
    return errors


@template("target-port")
def target_port():
    def detect(obj, app):
        if obj.is_deployment_like:
            for container in obj.containers:
                for index, port in enumerate(as_list(container.spec.get("ports"))):
                    name = as_dict(port).get("name")
                    if name:
                        at = (*container.segments, "ports", index, "name")
                        for error in port_name_errors(str(name)):
                            yield Violation(f"port name {go_quote(name)} in container {go_quote(container.name)} {error}", container.name, at, name)
        elif _is_service(obj):
            for index, port in enumerate(as_list(as_dict(obj.data.get("spec")).get("ports"))):
                target = as_dict(port).get("targetPort")
                if target is None or target == 0:
                    continue
                if isinstance(target, int) and not isinstance(target, bool):
                    errors = [] if 1 <= target <= 65535 else ["must be between 1 and 65535, inclusive"]
                else:
                    errors = port_name_errors(str(target))
                for error in errors:
                    yield Violation(f"port targetPort {go_quote(target)} in service {go_quote(obj.name)} {error}", path=("spec", "ports", index, "targetPort"), value=target)

    return detect


@template("forbidden-service-types")
def forbidden_service_types(forbiddenServiceTypes=()):
    def detect(obj, app):
        if not _is_service(obj):
            return
        kind = str(as_dict(obj.data.get("spec")).get("type") or "")
        for forbidden in forbiddenServiceTypes:
            if kind and kind.lower() == str(forbidden).lower():
                yield Violation(f"{go_quote(forbidden)} service type is forbidden.", path=("spec", "type"))

    return detect


def service_account_name(obj) -> str:
    spec = obj.pod_spec or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "")


@template("non-existent-service-account", cross_object=True)
def non_existent_service_account():
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        name = service_account_name(obj)
        if name in ("", "default"):
            return
        if not any(sa.name == name for sa in app.find("v1", "ServiceAccount", obj.namespace)):
            field = "serviceAccountName" if obj.pod_spec.get("serviceAccountName") else "serviceAccount"
            yield Violation(f"serviceAccount {go_quote(name)} not found", path=(*obj.pod_spec_segments, field))

    return detect


@template("deprecated-service-account-field")
def deprecated_service_account_field():
    def detect(obj, app):
        if not obj.is_deployment_like:
            return
        old, new = str(obj.pod_spec.get("serviceAccount") or ""), str(obj.pod_spec.get("serviceAccountName") or "")
        if not old or old == new:
            return  # the same value in both fields is harmless
        if not new:
            yield Violation(f"serviceAccount is specified ({old}), but this field is deprecated; use serviceAccountName instead", path=(*obj.pod_spec_segments, "serviceAccount"))
        else:
            yield Violation(
                f"serviceAccount ({old}) and serviceAccountName ({new}) are both specified with non-matching values. "
                "serviceAccount is deprecated; unspecify serviceAccount or make values match.",
                path=(*obj.pod_spec_segments, "serviceAccount"),
            )

    return detect


@template("service-account")
def service_account(serviceAccount=""):
    matches = string_matcher(serviceAccount)

    def detect(obj, app):
        if not obj.is_deployment_like or obj.pod_spec.get("automountServiceAccountToken") is False:
            return
        name = service_account_name(obj)
        if matches(name):
            field = "serviceAccountName" if obj.pod_spec.get("serviceAccountName") else "serviceAccount"
            yield Violation(f"found matching serviceAccount ({go_quote(name)})", path=(*obj.pod_spec_segments, field))

    return detect


# A created ServiceAccount does not mount its token unless told to.
setting("service_account_automount", bool, False)


def _fix_missing_service_account(ctx: FixContext) -> Proposal | None:
    """Create the ServiceAccount the workload names, next to it; it grants nothing."""
    name = service_account_name(ctx.obj)
    namespace = ctx.obj.namespace
    if name_errors({"metadata": {"name": name, "namespace": namespace}}):
        return Proposal.manual(f"{namespace}/{name} is not a valid ServiceAccount name")
    metadata = {"name": name} | ({"namespace": ctx.obj.namespace} if ctx.obj.namespace else {})
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
    if name in bound_service_accounts(ctx.app):
        # A role binding names it: its pods call the API and need the token.
        return Proposal(creates=account, explanation=f"create ServiceAccount {name!r} (bound by a role binding: it keeps its token)")
    if not ctx.settings.service_account_automount:
        account["automountServiceAccountToken"] = False
    return Proposal(creates=account, explanation=f"create ServiceAccount {name!r}")


def _fix_deprecated_service_account_field(ctx: FixContext) -> Proposal | None:
    """serviceAccountName wins over serviceAccount, so moving the value there
    (when serviceAccountName is unset) and dropping the old field changes nothing."""
    spec, base = ctx.obj.pod_spec, ctx.obj.pod_spec_segments
    ops = [] if spec.get("serviceAccountName") else set_value(ctx.obj.data, (*base, "serviceAccountName"), spec["serviceAccount"])
    return Proposal(ops + [remove((*base, "serviceAccount"))])


check(
    "dangling-service",
    template="dangling-service",
    description="Indicates when services do not have any associated deployments.",
    remediation="Confirm that your service's selector correctly matches the labels on one of your deployments.",
    severity=Severity.LOW,
    kinds=SERVICE,
    fix=Fix.manual(
        "Which pods a Service should select is the author's intent; a guessed selector could route traffic anywhere.",
        "point the selector at the intended pods, or remove the Service",
    ),
)
check(
    "invalid-target-ports",
    template="target-port",
    description="Indicates when deployments or services are using port names that are violating specifications.",
    remediation=(
        "Ensure that port name is compliant with the IANA_SVC_NAME (RFC 6335) specification, and that "
        "targetPort is a valid port number or IANA_SVC_NAME."
    ),
    severity=Severity.MEDIUM,
    kinds=WORKLOADS + SERVICE,
)
check(
    "exposed-services",
    template="forbidden-service-types",
    params={"forbiddenServiceTypes": ["NodePort", "LoadBalancer"]},
    description="Alert on services for forbidden types",
    remediation="Ensure containers are not exposed through a forbidden service type such as NodePort or LoadBalancer.",
    severity=Severity.MEDIUM,
    kinds=SERVICE,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "non-existent-service-account",
    template="non-existent-service-account",
    description="Indicates when pods reference a service account that is not found.",
    remediation="Create the missing service account, or refer to an existing service account.",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    fix=Fix(
        Applicability.REVIEW,
        "Pods naming a missing ServiceAccount are refused, so creating it makes the workload start; but the "
        "account may be meant to come from elsewhere (another chart, a cloud IAM binding).",
        _fix_missing_service_account,
    ),
    guidance="""
Do not rename the ServiceAccount and do not touch selectors. This finding is fixed by creating the ServiceAccount
object, which the tool does itself; answer with an empty array `[]`.
""",
)
check(
    "deprecated-service-account-field",
    template="deprecated-service-account-field",
    description="Indicates when deployments use the deprecated serviceAccount field.",
    remediation=(
        "Use the serviceAccountName field instead. If you must specify serviceAccount, ensure values for "
        "serviceAccount and serviceAccountName match."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS,
    fix=Fix(
        Applicability.SAFE,
        "serviceAccountName already takes precedence; the pod runs as the same account.",
        _fix_deprecated_service_account_field,
        remedy=("pod.serviceAccountName", "pod.serviceAccount"),
    ),
)
check(
    "default-service-account",
    template="service-account",
    params={"serviceAccount": "^(|default)$"},
    description="Indicates when pods use the default service account.",
    remediation=(
        "Create a dedicated service account for your pod. Refer to "
        "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/ for details."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
