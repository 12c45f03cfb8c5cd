"""Issue 15, item 3: detections, patches and verified as JSON Lines, streamed one
application at a time, holding the same records as the JSON arrays."""

from __future__ import annotations

import json
import shutil

from conftest import CORPUS, REPO, corpus_required, write

from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.engines.builtin import stream_builtin
from k8s_auto_fix.runner import RunnerOptions

CHARTS = ["argo", "bitnami", "cluster-autoscaler", "apache-airflow"]


def _records(path) -> list[dict]:
    text = path.read_text()
    return json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]


def _pipeline(cli, folder, inputs, fmt: str) -> dict[str, list[dict]]:
    folder.mkdir()
    d, p, v = folder / f"d.{fmt}", folder / f"p.{fmt}", folder / f"v.{fmt}"
    assert cli("detect", *inputs, "--format", fmt, "--out", str(d))[0] in (0, 1)
    assert cli("propose", "-d", str(d), "--format", fmt, "-o", str(p))[0] == 0
    code, _, stderr = cli("verify", "-p", str(p), "-d", str(d), "--format", fmt, "-o", str(v))
    assert code in (0, 1), stderr
    return {"detections": _records(d), "patches": _records(p), "verified": _records(v)}


@corpus_required()
def test_json_lines_hold_the_same_records_as_the_json_arrays(tmp_path, cli):
    inputs = [str(CORPUS / "artifacthub" / name) for name in CHARTS if (CORPUS / "artifacthub" / name).is_dir()] + [str(REPO / "examples")]
    arrays = _pipeline(cli, tmp_path / "json", inputs, "json")
    lines = _pipeline(cli, tmp_path / "jsonl", inputs, "jsonl")
    for name in ("detections", "patches", "verified"):
        assert lines[name], name
        # The same records; JSON Lines come in application order (input order), arrays in path order.
        assert sorted(lines[name], key=json.dumps) == sorted(arrays[name], key=json.dumps), name
    # Each application's records are contiguous in the stream, applications in input order.
    apps = [d["application"] for d in lines["detections"]]
    firsts = list(dict.fromkeys(apps))
    assert sum(1 for a, b in zip(apps, apps[1:]) if a != b) == len(firsts) - 1
    assert any(d["application"] != arrays["detections"][n]["application"] for n, d in enumerate(lines["detections"]))  # the orders really differ


def test_the_stream_reads_an_application_only_when_it_is_its_turn(tmp_path):
    """Streaming means each application is loaded when the reader gets to it:
    a file removed after the first application was handed over is reported
    missing, which a run that had loaded everything first would not see."""
    for name in ("a", "b", "c"):
        shutil.copy(REPO / "examples" / "001.yaml", write(tmp_path / name, "pod.yaml", "").parent / "pod.yaml")
    problems, stream = stream_builtin([str(tmp_path)], select_checks(), RunnerOptions(jobs=1))
    first = next(stream)
    assert first.key == str(tmp_path / "a") and first.result
    (tmp_path / "c" / "pod.yaml").unlink()
    rest = list(stream)
    assert [r.key for r in rest] == [str(tmp_path / "b"), str(tmp_path / "c")]
    assert rest[0].result and rest[1].result is None and any("pod.yaml" in p.path for p in rest[1].problems)


def test_a_bad_line_is_named_with_its_file_and_line_and_nothing_is_written(tmp_path, cli):
    d = tmp_path / "d.jsonl"
    assert cli("detect", str(REPO / "examples"), "--format", "jsonl", "--out", str(d))[0] == 1
    lines = d.read_text().splitlines()
    lines[2] = lines[2][:40]  # a line cut short
    d.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.jsonl"
    code, _, stderr = cli("propose", "-d", str(d), "--format", "jsonl", "-o", str(out))
    assert code == 2 and f"{d}:3: invalid JSON" in stderr
    assert not out.exists() and not list(tmp_path.glob(".p.jsonl*"))  # the temporary file is gone too


def test_verify_refuses_patches_out_of_the_order_of_their_detections(tmp_path, cli):
    d, p = tmp_path / "d.jsonl", tmp_path / "p.jsonl"
    for name in ("a", "b"):  # two applications: within one, the order does not matter
        shutil.copytree(REPO / "examples", tmp_path / "in" / name)
    cli("detect", str(tmp_path / "in"), "--format", "jsonl", "--out", str(d))
    cli("propose", "-d", str(d), "--format", "jsonl", "-o", str(p))
    shuffled = p.read_text().splitlines()
    p.write_text("\n".join(shuffled[::-1]) + "\n")
    code, _, stderr = cli("verify", "-p", str(p), "-d", str(d), "--format", "jsonl", "-o", str(tmp_path / "v.jsonl"))
    assert code == 2 and "not in the order of the detections" in stderr


def test_a_fifo_or_device_given_as_out_is_written_to_not_replaced(tmp_path, cli):
    """A rename over /dev/null (as root) would replace the device with a file: special files are written in place."""
    import os
    import stat
    import threading

    for fmt in ("json", "jsonl"):
        fifo = tmp_path / f"out-{fmt}"
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
        reader.start()
        code, _, stderr = cli("detect", str(REPO / "examples"), "--format", fmt, "--out", str(fifo))
        reader.join(30)
        assert code == 1, stderr
        assert stat.S_ISFIFO(fifo.stat().st_mode) and "latest-tag" in got[0]


def test_an_application_with_many_records_is_proposed_and_verified_in_pieces_with_the_same_records(tmp_path, cli, monkeypatch):
    """Streamed propose and verify cut an application with many records into one
    piece per worker, so that one large application keeps every worker busy:
    the pieces give the same patches and verdicts, in the same order."""
    import k8s_auto_fix.propose.rules as rules
    import k8s_auto_fix.runner as runner
    import k8s_auto_fix.verify.verifier as verifier

    whole = _pipeline(cli, tmp_path / "whole", [str(REPO / "examples")], "jsonl")
    monkeypatch.setattr(runner, "SPLIT_RECORDS", 5)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    cut: list[int] = []

    def counted(records, workers):
        made = runner.pieces(records, workers)
        cut.append(len(made))
        return made

    monkeypatch.setattr(rules, "pieces", counted)
    monkeypatch.setattr(verifier, "pieces", counted)
    in_pieces = _pipeline(cli, tmp_path / "pieces", [str(REPO / "examples")], "jsonl")
    assert max(cut) > 2  # the examples folder is one application: cut into pieces, for propose and for verify
    assert in_pieces == whole


def test_an_application_larger_than_a_workers_share_is_streamed_in_slices_with_the_same_findings(tmp_path, monkeypatch):
    """One large application with a small one: streamed on two workers, the large
    one is cut into slices (joined in the parent), and the findings are those of
    one process reading it whole."""
    import k8s_auto_fix.runner as runner

    sources = sorted((REPO / "examples").glob("*.yaml"))
    for n in range(220):  # above PARALLEL_MIN_FILES, in one folder: one application
        shutil.copy(sources[n % len(sources)], write(tmp_path / "big", f"f{n:03}.yaml", "").parent / f"f{n:03}.yaml")
    shutil.copy(sources[0], write(tmp_path / "small", "pod.yaml", "").parent / "pod.yaml")
    joined = []
    real_join = runner._join_slices
    monkeypatch.setattr(runner, "_join_slices", lambda done, work: (joined.append(len(done.parts)), real_join(done, work)))

    def streamed(jobs):
        problems, stream = stream_builtin([str(tmp_path / "big"), str(tmp_path / "small")], select_checks(), RunnerOptions(jobs=jobs))
        return [(item.key, [d.model_dump() for d in item.result or []], item.files, item.objects) for item in stream]

    whole = streamed(1)
    assert not joined
    assert streamed(2) == whole
    assert joined and joined[0] > 2  # the big application, in slices


def test_run_streams_the_first_stages_into_the_records_their_commands_write(tmp_path, cli):
    """run --format jsonl chains detect, propose and verify in one process: the
    same JSON Lines, in the same order, as the three commands one after another;
    --until stops after the stage named, and the whole run ranks the same fixes
    as a run with JSON arrays."""
    inputs = [str(REPO / "examples"), str(REPO / "tests" / "runnability")]
    commands = _pipeline(cli, tmp_path / "commands", inputs, "jsonl")
    code, _, stderr = cli("run", *inputs, "--out", str(tmp_path / "until"), "--format", "jsonl", "--until", "verify")
    assert code == 0, stderr
    assert {f.name for f in (tmp_path / "until").iterdir()} == {"detections.jsonl", "patches.jsonl", "verified.jsonl"}
    for name in ("detections", "patches", "verified"):
        assert _without_reasons(_records(tmp_path / "until" / f"{name}.jsonl")) == _without_reasons(commands[name]), name
    assert f"{len(commands['detections'])} finding(s) in" in stderr and "patch(es) accepted" in stderr

    assert cli("run", *inputs, "--out", str(tmp_path / "detect-only"), "--format", "jsonl", "--until", "detect")[0] == 0
    assert [f.name for f in (tmp_path / "detect-only").iterdir()] == ["detections.jsonl"]

    ranked = {}
    for fmt in ("json", "jsonl"):
        code, _, stderr = cli("run", *inputs, "--out", str(tmp_path / f"all-{fmt}"), "--format", fmt, "--head", "0")
        assert code == 0, stderr
        ranked[fmt] = [(item["id"], item["policy_id"]) for item in json.loads((tmp_path / f"all-{fmt}" / "schedule.json").read_text())]
    assert ranked["jsonl"] == ranked["json"] and ranked["json"]
    assert _records(tmp_path / "all-jsonl" / "verified.jsonl") == _records(tmp_path / "until" / "verified.jsonl")


def _without_reasons(records: list[dict]) -> list[dict]:
    """run records each gate's reasons (its report shows them); verify only with --include-errors."""
    return [{k: v for k, v in r.items() if k not in ("reasons", "errors")} for r in records]


def test_a_workers_large_application_is_kept_out_of_the_collectors_passes_until_the_next_one(tmp_path):
    """A worker's store freezes a large application once loaded (the collector's
    full passes stop walking it), and hands it back when the next application comes."""
    import gc

    from k8s_auto_fix.manifests.store import FREEZE_OBJECTS, store_for_application

    items = "".join(f"- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c{n}\n" for n in range(FREEZE_OBJECTS + 1))
    big = write(tmp_path / "big", "list.yaml", f"apiVersion: v1\nkind: List\nitems:\n{items}").parent
    small = write(tmp_path / "small", "pod.yaml", (REPO / "examples" / "001.yaml").read_text()).parent
    gc.unfreeze()
    try:
        store_for_application(str(small), "pass").application(str(small), str(small))
        assert gc.get_freeze_count() == 0  # a small one is left to the collector
        app = store_for_application(str(big), "pass").application(str(big), str(big))
        assert len(app.objects) > FREEZE_OBJECTS and gc.get_freeze_count() > 0
        store_for_application(str(small), "pass")
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_a_stage_that_found_nothing_streams_an_empty_file_the_next_reads_as_no_records(tmp_path, cli):
    """A clean input: detect writes an empty JSON Lines file, and propose, verify
    and a whole run --format jsonl read it as no records (not as broken JSON)."""
    clean = str(REPO / "deploy" / "ray-cluster.yaml")
    d, p = tmp_path / "d.jsonl", tmp_path / "p.jsonl"
    assert cli("detect", clean, "--format", "jsonl", "--out", str(d))[0] == 0 and d.read_text() == ""
    code, _, stderr = cli("propose", "-d", str(d), "--format", "jsonl", "-o", str(p))
    assert code == 0 and "0 fix(es) for 0 finding(s)" in stderr
    assert cli("verify", "-p", str(p), "-d", str(d), "-o", str(tmp_path / "v.json"))[0] == 0
    assert json.loads((tmp_path / "v.json").read_text()) == []
    code, _, stderr = cli("run", clean, "--out", str(tmp_path / "run"), "--format", "jsonl", "--head", "0")
    assert code == 0, stderr
    assert json.loads((tmp_path / "run" / "schedule.json").read_text()) == []
