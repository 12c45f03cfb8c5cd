"""RBAC: who may do what."""

from __future__ import annotations

import json

from ..contracts import Severity
from .common import as_dict, as_list, go_regex
from .registry import Kinds, KubeLinter, Violation, check, template

RBAC = "rbac.authorization.k8s.io/v1"


def _rules(role) -> list[dict]:
    return [as_dict(r) for r in as_list(role.data.get("rules"))]


@template("wildcard-in-rules")
def wildcard_in_rules():
    def detect(obj, app):
        if obj.api_version != RBAC or obj.kind not in ("Role", "ClusterRole"):
            return
        for number, rule in enumerate(_rules(obj)):
            for index, resource in enumerate(as_list(rule.get("resources"))):
                if resource == "*":
                    yield Violation('wildcard "*" in resource specification', path=("rules", number, "resources", index), value=resource)
            for index, verb in enumerate(as_list(rule.get("verbs"))):
                if verb == "*":
                    yield Violation('wildcard "*" in verb specification', path=("rules", number, "verbs", index), value=verb)

    return detect


@template("cluster-admin-role-binding")
def cluster_admin_role_binding():
    def detect(obj, app):
        if obj.api_version != RBAC or obj.kind != "ClusterRoleBinding":
            return
        ref = as_dict(obj.data.get("roleRef"))
        if ref.get("name") == "cluster-admin" and ref.get("kind") == "ClusterRole":
            subjects = obj.data.get("subjects")
            rendered = "null" if subjects is None else json.dumps([_subject(s) for s in as_list(subjects)], separators=(",", ":"))
            yield Violation(f"cluster-admin role is bound to {rendered}", path=("roleRef", "name"))

    return detect


def _subject(subject) -> dict:
    # Go's json.Marshal of rbacv1.Subject: kind, apiGroup (omitempty), name, namespace (omitempty)
    subject = as_dict(subject)
    out = {"kind": subject.get("kind", "")}
    if subject.get("apiGroup"):
        out["apiGroup"] = subject["apiGroup"]
    out["name"] = subject.get("name", "")
    if subject.get("namespace"):
        out["namespace"] = subject["namespace"]
    return out


ROLE_REF = ("roleRef", "name")


@template("access-to-resources", cross_object=True)
def access_to_resources(resources=(), verbs=(), flagRolesNotFound=False):
    resource_patterns = [go_regex(p) for p in resources]
    verb_patterns = [go_regex(p) for p in verbs]

    def access(rules: list[dict]) -> list[str]:
        found = []
        for rule in rules:
            res = [str(r) for r in as_list(rule.get("resources")) if r == "*" or any(p.search(str(r)) for p in resource_patterns)]
            vrb = [str(v) for v in as_list(rule.get("verbs")) if v == "*" or any(p.search(str(v)) for p in verb_patterns)]
            if res and vrb and resource_patterns and verb_patterns:
                found.append(f"[{' '.join(vrb)}] access to [{' '.join(res)}]")
        return found

    def detect(obj, app):
        if obj.api_version != RBAC or obj.kind not in ("RoleBinding", "ClusterRoleBinding"):
            return
        ref_name = str(as_dict(obj.data.get("roleRef")).get("name", ""))
        if obj.kind == "RoleBinding":
            namespace = obj.namespace or "default"
            roles = [r for r in app.find(RBAC, "Role") if r.name == ref_name and (r.namespace or "default") == namespace]
            if not roles and flagRolesNotFound:
                yield Violation(f'role "{ref_name}" in namespace "{namespace}" not found', path=ROLE_REF)
            for role in roles:
                granted = access(_rules(role))
                if granted:
                    yield Violation(f'binding to "{ref_name}" role that has {", ".join(granted)}', path=ROLE_REF)
            return
        roles = [r for r in app.find(RBAC, "ClusterRole") if r.name == ref_name and r.name.lower() != "cluster_admin"]
        if not roles and flagRolesNotFound:
            yield Violation(f'clusterrole "{ref_name}" not found', path=ROLE_REF)
        for role in roles:
            granted = access(_rules(role))
            if granted:
                yield Violation(f'binding to "{ref_name}" clusterrole that has {", ".join(granted)}', path=ROLE_REF)
            for selector in as_list(as_dict(role.data.get("aggregationRule")).get("clusterRoleSelectors")):
                wanted = as_dict(as_dict(selector).get("matchLabels"))
                for other in app.find(RBAC, "ClusterRole"):
                    if all(other.labels.get(k) == v for k, v in wanted.items()):
                        granted = access(_rules(other))
                        if granted:
                            yield Violation(f'binding via aggregationRule to "{other.name}" clusterrole that has {", ".join(granted)}', path=ROLE_REF)

    return detect


check(
    "wildcard-in-rules",
    template="wildcard-in-rules",
    description="Indicate when a wildcard is used in Role or ClusterRole rules. CIS Benchmark 5.1.3 Use of wildcards is not optimal from a security perspective as it may allow for inadvertent access to be granted when new resources are added to the Kubernetes API either as CRDs or in later versions of the product.",
    remediation="Where possible replace any use of wildcards in clusterroles and roles with specific objects or actions.",
    severity=Severity.MEDIUM,
    kinds=Kinds(("Role", "ClusterRole"), RBAC),
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "cluster-admin-role-binding",
    template="cluster-admin-role-binding",
    description="CIS Benchmark 5.1.1 Ensure that the cluster-admin role is only used where required",
    remediation="Create and assign a separate role that has access to specific resources/actions needed for the service account.",
    severity=Severity.HIGH,
    kinds=Kinds(("ClusterRoleBinding",), RBAC),
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "access-to-secrets",
    template="access-to-resources",
    params={"resources": ["^secrets$"], "verbs": ["^get$", "^list$", "^delete$", "^create$", "^watch$", "^*$"]},
    description="Indicates when a subject (Group/User/ServiceAccount) has access to Secrets. CIS Benchmark 5.1.2: Access to secrets should be restricted to the smallest possible group of users to reduce the risk of privilege escalation.",
    remediation="Where possible, remove get, list and watch access to secret objects in the cluster.",
    severity=Severity.MEDIUM,
    kinds=Kinds(("RoleBinding", "ClusterRoleBinding"), RBAC),
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "access-to-create-pods",
    template="access-to-resources",
    params={"resources": ["^pods$", "^deployments$", "^statefulsets$", "^replicasets$", "^cronjob$", "^jobs$", "^daemonsets$"], "verbs": ["^create$"]},
    description="Indicates when a subject (Group/User/ServiceAccount) has create access to Pods. CIS Benchmark 5.1.4: The ability to create pods in a cluster opens up possibilities for privilege escalation and should be restricted, where possible.",
    remediation="Where possible, remove create access to pod objects in the cluster.",
    severity=Severity.MEDIUM,
    kinds=Kinds(("RoleBinding", "ClusterRoleBinding"), RBAC),
    kube_linter=KubeLinter.OPTIONAL,
)
