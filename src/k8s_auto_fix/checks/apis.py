"""API versions and object metadata: deprecated APIs, namespaces, labels, annotations."""

from __future__ import annotations

from ..contracts import Severity
from .common import SERVICE, WORKLOADS, string_matcher
from .registry import Kinds, KubeLinter, Violation, check, template


def gvk_string(obj) -> str:
    """schema.GroupVersionKind.String(): "group/version, Kind=kind"."""
    group, version = obj.group, obj.api_version.rpartition("/")[2]
    return f"{group}/{version}, Kind={obj.kind}"


@template("disallowed-api-obj")
def disallowed_api_obj(group="", version="", kind=""):
    group_matches, version_matches, kind_matches = string_matcher(group), string_matcher(version), string_matcher(kind)

    def detect(obj, app):
        version_part = obj.api_version.rpartition("/")[2]
        if group_matches(obj.group) and version_matches(version_part) and kind_matches(obj.kind):
            yield Violation(f"disallowed API object found: {gvk_string(obj)}")

    return detect


def _metadata_pair_template(field: str, noun: str):
    def factory(key="", value=""):
        key_matches, value_matches = string_matcher(key), string_matcher(value)

        def detect(obj, app):
            if not obj.is_deployment_like:
                return
            pairs = obj.labels if field == "labels" else obj.annotations
            if not any(key_matches(str(k)) and value_matches(str(v)) for k, v in pairs.items()):
                yield Violation(f'no {noun} matching "{key}={value or "<any>"}" found')

        return detect

    return factory


template("required-label")(_metadata_pair_template("labels", "label"))
template("required-annotation")(_metadata_pair_template("annotations", "annotation"))


@template("use-namespace")
def use_namespace():
    def detect(obj, app):
        applies = obj.is_deployment_like or (obj.api_version == "v1" and obj.kind == "Service")
        if applies and (obj.namespace or "default").lower() == "default":
            yield Violation("object in default namespace")

    return detect


check(
    "no-extensions-v1beta",
    template="disallowed-api-obj",
    params={"group": "extensions", "version": "v1beta.+"},
    description="Indicates when objects use deprecated API versions under extensions/v1beta.",
    remediation=(
        "Migrate using the apps/v1 API versions for the objects. Refer to "
        "https://kubernetes.io/blog/2019/07/18/api-deprecations-in-1-16/ for details."
    ),
    severity=Severity.MEDIUM,
    kinds=Kinds(),
)
check(
    "required-label-owner",
    template="required-label",
    params={"key": "owner"},
    description="Indicates when objects do not have an email annotation with an owner label.",
    remediation="Add an email annotation to your object with the name of the object's owner.",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "required-annotation-email",
    template="required-annotation",
    params={"key": "email", "value": "[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+"},
    description="Indicates when objects do not have an email annotation with a valid email address.",
    remediation="Add an email annotation to your object with the email address of the object's owner.",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
)
check(
    "use-namespace",
    template="use-namespace",
    description="Indicates when a resource is deployed to the default namespace.",
    remediation=(
        "Create namespaces for objects in your deployment. Refer to "
        "https://kubernetes.io/docs/tasks/administer-cluster/namespaces/ for details."
    ),
    severity=Severity.LOW,
    kinds=WORKLOADS + SERVICE,
    kube_linter=KubeLinter.OPTIONAL,
)


@template("sorted-keys")
def sorted_keys(recursive=True):
    # Go's sort.Strings order is bytewise: upper case sorts before lower case.
    def unsorted(node, where):
        if isinstance(node, dict):
            keys = [str(k) for k in node]
            expected = sorted(keys, key=lambda k: k.encode())
            if len(keys) > 1 and keys != expected:
                yield Violation(f"Keys are not sorted at {where}. Expected order: [{', '.join(expected)}], got: [{', '.join(keys)}]")
            if recursive:
                for key, value in node.items():
                    yield from unsorted(value, key if where == "root" else f"{where}.{key}")
        elif isinstance(node, list) and recursive:
            for index, item in enumerate(node):
                yield from unsorted(item, f"{where}[{index}]")

    def detect(obj, app):
        yield from unsorted(obj.data, "root")

    return detect


check(
    "sorted-keys",
    template="sorted-keys",
    params={"recursive": True},
    description="Ensures YAML keys are sorted alphabetically for consistency and easier review.",
    remediation="Sort the keys of every mapping alphabetically.",
    severity=Severity.LOW,
    kinds=Kinds(),
    kube_linter=KubeLinter.OPTIONAL,
)
