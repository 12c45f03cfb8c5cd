"""Loading manifests: shapes of input, and every kind of bad input."""

from __future__ import annotations

import json

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


def test_unrendered_helm_template_is_reported_and_skipped(tmp_path):
    parse_error = write(tmp_path, "t1.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n")
    parses = write(tmp_path, "t2.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: 'x-{{ .Release.Name }}'\n")
    for path in (parse_error, parses):
        result = load_file(str(path))
        assert result.objects == []
        (problem,) = result.problems
        assert "unrendered Helm template" in problem.message and problem.level == "warning"


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


def test_duplicate_keys_are_an_error_with_line(tmp_path):
    path = write(tmp_path, "dup.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n")
    problem = _only_error(load_file(str(path)))
    assert "duplicate key 'name'" in problem.message and problem.line == 5


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
