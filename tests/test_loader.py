"""Loading manifests: shapes of input, and every kind of bad input."""

from __future__ import annotations

import json

import pytest
from conftest import write

from k8s_auto_fix.manifests.loader import MAX_NESTING, load_file, load_paths


def test_multi_document_file_keeps_document_index_and_line(tmp_path):
    path = write(
        tmp_path,
        "app.yaml",
        """
        # a comment before the first document
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: a}
        ---
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: b
        """,
    )
    result = load_file(str(path))
    assert [(o.kind, o.document_index, o.line) for o in result.objects] == [("ServiceAccount", 0, 2), ("Service", 2, 7)]
    assert result.problems == []


def test_list_items_become_objects_with_their_own_line(tmp_path):
    path = write(
        tmp_path,
        "list.yaml",
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: one}
        - apiVersion: v1
          kind: Secret
          metadata: {name: two}
        """,
    )
    objects = load_file(str(path)).objects
    assert [(o.kind, o.name, o.list_index, o.line) for o in objects] == [("ConfigMap", "one", 0, 4), ("Secret", "two", 1, 7)]


def test_json_manifest(tmp_path):
    path = tmp_path / "pod.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}))
    (obj,) = load_file(str(path)).objects
    assert obj.ref.kind == "Pod" and obj.name == "p"


def test_folders_are_walked_recursively_for_manifest_suffixes_only(tmp_path):
    write(tmp_path, "a/one.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n")
    write(tmp_path, "a/b/two.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n")
    write(tmp_path, "a/notes.txt", "not yaml: [")
    result = load_paths([str(tmp_path)])
    assert sorted(o.name for o in result.objects) == ["one", "two"]
    assert result.problems == []


def test_yaml_that_is_not_a_kubernetes_object_is_skipped_with_a_note(tmp_path):
    path = write(tmp_path, "values.yaml", "replicaCount: 1\nimage: {tag: x}\n")
    result = load_file(str(path))
    assert result.objects == []
    (problem,) = result.problems
    assert problem.level == "note" and "no apiVersion/kind" in problem.message


def test_unrendered_helm_template_is_reported_and_linted_as_written_when_it_parses(tmp_path):
    parse_error = write(tmp_path, "t1.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n")
    templated_kind = write(tmp_path, "t3.yaml", "apiVersion: v1\nkind: '{{ .Values.kind }}'\nmetadata:\n  name: x\n")
    for path in (parse_error, templated_kind):
        result = load_file(str(path))
        assert result.objects == []
        (problem,) = result.problems
        assert "unrendered Helm template" in problem.message and problem.level == "warning"
    # kube-linter lints a template whose YAML parses; so do we, and never rewrite it.
    parses = load_file(str(write(tmp_path, "t2.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: 'x-{{ .Release.Name }}'\n")))
    (obj,) = parses.objects
    (problem,) = parses.problems
    assert obj.template and problem.level == "warning" and "not written back" in problem.message


def _only_error(result):
    assert result.objects == []
    (problem,) = result.problems
    assert problem.level == "error"
    return problem


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: [a, b\n")
    problem = _only_error(load_file(str(path)))
    assert problem.path == str(path) and problem.line is not None and "invalid YAML" in problem.message


def test_binary_file(tmp_path):
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"\x7fELF\x00\x01\x02" * 100)
    assert "binary" in _only_error(load_file(str(path))).message


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("apiVersion: v1\nkind: ConfigMap\ndata:\n  k: caf\xe9\n".encode("latin-1"))
    problem = _only_error(load_file(str(path)))
    assert "UTF-8" in problem.message and problem.line == 4


def test_empty_file_is_a_note(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("   \n\n")
    result = load_file(str(path))
    assert result.objects == [] and result.problems[0].level == "note"


def test_duplicate_keys_keep_the_last_value_and_are_recorded_with_their_line(tmp_path):
    # kubectl and kube-linter read the last value; the duplicate is a finding of its own (duplicate-key).
    path = write(tmp_path, "dup.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\nspec:\n  containers:\n  - name: c\n    name: d\n")
    result = load_file(str(path))
    (obj,) = result.objects
    assert result.problems == [] and obj.name == "b" and obj.data["spec"]["containers"][0]["name"] == "d"
    assert [(d.pointer, d.line) for d in obj.duplicate_keys] == [("/metadata/name", 5), ("/spec/containers/0/name", 9)]
    # The same through PyYAML's path (anchors) and inside a List item.
    listed = write(tmp_path, "list.yaml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: &m {name: a}\n  spec: {x: 1, x: 2}\n  other: *m\n")
    (item,) = load_file(str(listed)).objects
    assert [(d.pointer, d.line) for d in item.duplicate_keys] == [("/spec/x", 7)] and item.data["spec"] == {"x": 2}


@pytest.mark.parametrize(
    "scalar, value",
    [
        ("N", False), ("y", True), ("on", True), ("'N'", "N"), ("1e3", 1000.0), ("08", 8.0), ("017", 15), ("0o17", 15),
        ("0x1F", 31), ("1_000", 1000), ("1:20", "1:20"), ("2020-01-02", "2020-01-02"), ("=", "="), (".5", 0.5),
        ("1.", 1.0), ("~", None), ("1e999", "1e999"), ("+12", 12), ("abc", "abc"),
    ],
)
def test_scalars_read_as_kubectl_and_kube_linter_read_them(tmp_path, scalar, value):
    # A custom resource: no Go type to decode into, so any value is kept as read.
    path = write(tmp_path, "s.yaml", f"apiVersion: example.com/v1\nkind: Thing\nmetadata: {{name: s}}\nspec:\n  v: {scalar}\n")
    (obj,) = load_file(str(path)).objects
    assert obj.data["spec"]["v"] == value and type(obj.data["spec"]["v"]) is type(value)


def test_a_field_of_the_wrong_type_is_an_error_at_its_line_and_the_object_is_not_linted(tmp_path):
    # `value: N` is false for kubectl and kube-linter: a StatefulSet they cannot read.
    text = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        env:\n        - {name: A, value: 'x'}\n        - name: B\n          value: N\n"
    result = load_file(str(write(tmp_path, "s.yaml", text)))
    (problem,) = result.problems
    assert result.objects == [] and problem.level == "error" and problem.line == 12
    assert "spec.template.spec.containers[0].env[1].value: a boolean (false) where a string belongs" in problem.message


def test_a_value_its_type_cannot_parse_leaves_the_pod_template_unread_as_kube_linter_does(tmp_path):
    text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        resources: {limits: {cpu: '${CPU}'}}\n"
    result = load_file(str(write(tmp_path, "d.yaml", text)))
    (obj,) = result.objects
    (problem,) = result.problems
    assert obj.unstructured and obj.pod_spec is None and obj.deployment_like_kind and not obj.is_deployment_like
    assert problem.level == "warning" and problem.line == 9 and "is not a quantity" in problem.message


def test_map_keys_become_strings_as_in_json(tmp_path):
    path = write(tmp_path, "k.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\ndata:\n  80: a\n  on: b\n  1.5: c\n")
    # (data values are strings here; ``on`` as a value would be a boolean, which a ConfigMap refuses)
    (obj,) = load_file(str(path)).objects
    assert obj.data["data"] == {"80": "a", "true": "b", "1.5": "c"}


def test_deep_flow_nesting_is_refused_without_crashing(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")  # segfaults libyaml if parsed
    assert f"deeper than {MAX_NESTING}" in _only_error(load_file(str(path))).message


def test_deep_block_nesting_is_refused_without_crashing(tmp_path):
    path = tmp_path / "deep-block.yaml"
    path.write_text("- " * 60_000 + "x\n")
    assert "deeper than" in _only_error(load_file(str(path))).message


def test_file_over_the_size_cap(tmp_path):
    path = write(tmp_path, "big.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  k: " + "x" * 5000 + "\n")
    problem = _only_error(load_file(str(path), max_file_bytes=1000))
    assert "size cap" in problem.message
    assert load_file(str(path)).objects  # under the default cap it loads


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        prev = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    path = tmp_path / "lol.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert "alias bomb" in _only_error(load_file(str(path))).message


def test_harmless_aliases_load(tmp_path):
    path = write(
        tmp_path,
        "anchors.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: anchors
          labels: &labels {app: x}
          annotations: *labels
        """,
    )
    (obj,) = load_file(str(path)).objects
    assert obj.annotations == {"app": "x"}


def test_a_bad_file_never_stops_the_others(tmp_path):
    write(tmp_path, "1-good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n")
    (tmp_path / "2-binary.yaml").write_bytes(b"\x00\x01")
    write(tmp_path, "3-invalid.yaml", "a: [\n")
    write(tmp_path, "4-good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: also-good}\n")
    result = load_paths([str(tmp_path), str(tmp_path / "missing.yaml")])
    assert sorted(o.name for o in result.objects) == ["also-good", "good"]
    assert sorted(p.path.rsplit("/", 1)[-1] for p in result.errors) == ["2-binary.yaml", "3-invalid.yaml", "missing.yaml"]


CRD = """\
# a comment
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.com
spec:
  group: example.com
  names: {kind: Thing, plural: things}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object}
status:
  acceptedNames: {kind: ''}
"""


def test_a_crd_file_keeps_its_schema_as_text_until_it_is_needed(tmp_path):
    (obj,) = load_file(str(write(tmp_path, "crd.yaml", CRD))).objects
    assert obj.skimmed and "spec" not in obj.data and obj.data["status"] == {"acceptedNames": {"kind": ""}}
    assert obj.line == 2 and obj.name == "things.example.com"
    assert obj.full_data["spec"]["versions"][0]["name"] == "v1" and obj.full_data["metadata"] == obj.data["metadata"]


@pytest.mark.parametrize(
    "text",
    [
        CRD + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",  # another document
        CRD.replace("spec:\n", "spec:\n  group: x\nspec:\n", 1),  # a repeated top-level key
        "{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: a}, spec: {}}\n",
    ],
)
def test_a_crd_in_any_other_shape_is_parsed_whole(tmp_path, text):
    objects = load_file(str(write(tmp_path, "crd.yaml", text))).objects
    assert objects and not any(o.skimmed for o in objects)
