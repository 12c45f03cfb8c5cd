"""API versions and object metadata: deprecated APIs, namespaces, labels, annotations."""

from __future__ import annotations

import yaml

from ..contracts import Severity
from ..patch import parse_pointer
from .common import SERVICE, WORKLOADS, string_matcher
from .registry import Fix, Kinds, KubeLinter, Violation, check, template


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
            yield Violation(f"disallowed API object found: {gvk_string(obj)}", path=("apiVersion",))

    return detect


def _metadata_pair_template(field: str, noun: str):
    def factory(key="", value=""):
        key_matches, value_matches = string_matcher(key), string_matcher(value)

        def detect(obj, app):
            if not obj.deployment_like_kind:  # by kind: also an object kube-linter reads untyped
                return
            pairs = obj.labels if field == "labels" else obj.annotations
            if not any(key_matches(str(k)) and value_matches(str(v)) for k, v in pairs.items()):
                yield Violation(f'no {noun} matching "{key}={value or "<any>"}" found', path=("metadata", field))

        return detect

    return factory


template("required-label")(_metadata_pair_template("labels", "label"))
template("required-annotation")(_metadata_pair_template("annotations", "annotation"))


@template("use-namespace")
def use_namespace():
    def detect(obj, app):
        # By kind alone: kube-linter flags even an object it cannot read as typed.
        applies = obj.deployment_like_kind or (obj.api_version == "v1" and obj.kind == "Service")
        if applies and (obj.namespace or "default").lower() == "default":
            yield Violation("object in default namespace", path=("metadata", "namespace"))

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
    """kube-linter reads the keys from the YAML text (goccy/go-yaml), not from
    the object: a key given twice counts twice, ``<<`` is a key, and what an
    alias (``*name``) points at is checked once, where its anchor is."""

    def unsorted(keys: list[str], where: str, at: tuple = ()):
        # Go's sort.Strings order is bytewise: upper case sorts before lower case.
        expected = sorted(keys, key=lambda k: k.encode())
        if len(keys) > 1 and keys != expected:
            location = where or "root"
            yield Violation(f"Keys are not sorted at {location}. Expected order: [{', '.join(expected)}], got: [{', '.join(keys)}]", path=at)

    def in_text(root: yaml.Node):
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, str, tuple]] = [(root, "", ())]
        while stack:
            node, where, at = stack.pop()
            if id(node) in seen:
                continue  # an alias
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                pairs = [(_key_text(k), v) for k, v in node.value]
                yield from unsorted([k for k, _ in pairs if k], where, at)
                children = [(v, f"{where}.{k}" if where else k, (*at, k)) for k, v in pairs]
            elif isinstance(node, yaml.SequenceNode):
                children = [(item, f"{where}[{i}]", (*at, i)) for i, item in enumerate(node.value)]
            else:
                continue
            if recursive:
                stack.extend(reversed(children))  # depth first, in document order

    def in_data(node, where: str, at: tuple = ()):
        if isinstance(node, dict):
            yield from unsorted([str(k) for k in node], where, at)
            children = [(v, f"{where}.{k}" if where else str(k), (*at, str(k))) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(item, f"{where}[{i}]", (*at, i)) for i, item in enumerate(node)]
        else:
            return
        if recursive:
            for child, path, below in children:
                yield from in_data(child, path, below)

    def detect(obj, app):
        if obj.source:
            yield from in_text(yaml.compose(obj.source, Loader=yaml.CSafeLoader))
        else:  # made by a kustomization or by a fix: no text of its own
            yield from in_data(obj.data, "")

    return detect


@template("duplicate-key")
def duplicate_key():
    def detect(obj, app):
        # (A CRD's spec is read as text, not parsed: see the loader.)
        for duplicate in obj.duplicate_keys:
            path = tuple(int(p) if p.isdigit() else p for p in parse_pointer(duplicate.pointer))
            yield Violation(
                f"key {duplicate.pointer} is given more than once (again at line {duplicate.line}); kubectl and kube-linter use the last value",
                path=path,
            )

    return detect


check(
    "duplicate-key",
    template="duplicate-key",
    description="Indicates a YAML mapping that gives the same key twice: every tool reads only the last value.",
    remediation="Keep the value you mean and delete the other.",
    severity=Severity.HIGH,
    kinds=Kinds(),
    kube_linter=KubeLinter.NONE,
    fix=Fix.manual(
        "Which of the two values the author meant is theirs to say; the object as applied has the last one.",
        "keep the value you mean and delete the other line",
    ),
)


def _key_text(node: yaml.Node) -> str:
    """A key as goccy/go-yaml spells it ("" for a key that is not a scalar)."""
    if not isinstance(node, yaml.ScalarNode):
        return ""
    if node.style is None and node.value in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return node.value.lower()
    if node.style is None and node.value in ("~", "null", "Null", "NULL", ""):
        return "null"
    return node.value


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
