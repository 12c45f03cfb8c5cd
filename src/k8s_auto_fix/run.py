"""run: every stage in one output folder, then a report a person can read.

detect -> propose -> verify -> risk -> schedule -> queue -> metrics, each
writing the same file its own command writes, so any stage can be rerun on
its own from the folder.

With JSON Lines (``record_format="jsonl"``) the first three stages stream,
as their commands do with ``--format jsonl``, one after the other in this
process and on one executor (one Ray job for all three); the later stages
read their records back. ``until`` stops after one of the first three: at
fleet scale that keeps memory flat, since ranking and the report need every
record at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .checks import Check
from .checks.fixes import FixOptions
from .checks.selection import select_checks
from .config import RunConfig
from .contracts import Detection, ObjectEdit, PatchRecord, Verdict, read_models, write_json_atomic, write_models
from .detect import DetectOptions, detect
from .fix.roundtrip import render_file
from .manifests.images import ImageFacts, shipped_facts
from .manifests.source import SourceError, read_source
from .manifests.store import ObjectStore
from .patch import apply_patch
from .propose.rules import propose_distributed, propose_rules
from .queue import open_queue
from .report.html import write_report
from .report.metrics import pipeline_metrics
from .risk.score import score_risk
from .runner import executor_session
from .schedule.score import build_schedule
from .streamed import DetectTally, ProposeTally, VerifyTally, detect_jsonl, propose_jsonl, verify_jsonl
from .verify.judging import VerifyOptions
from .verify.verifier import verify_parallel

REPORT_DIFFS = 300  # fixes shown with their diff in report.html


@dataclass
class RunOptions:
    config: RunConfig
    detect: DetectOptions
    epss_csv: Path | None = None
    kev_json: Path | None = None
    trivy_reports: Sequence[Path] = ()
    image_pins: dict | None = None
    checks: Sequence[Check] | None = None  # None: the configuration's selection
    image_facts: ImageFacts | None = None  # None: the shipped facts
    queue: str | None = None  # a queue URL; None: OUT/queue.db
    record_format: str = "json"  # or "jsonl": detections, patches and verified streamed as JSON Lines
    until: str | None = None  # stop after this stage: detect, propose or verify (None: run them all)


FIRST_STAGES = ("detect", "propose", "verify")


def artefact(out: Path, name: str, record_format: str = "json") -> Path:
    """Where run writes a first-stage artefact: detections, patches or verified (.json, or .jsonl for JSON Lines)."""
    return out / f"{name}.{record_format}"


@dataclass
class FirstStages:
    """What the first three stages leave for the rest of the run (their records, or only their counts when streamed)."""

    detect: DetectTally
    propose: ProposeTally | None = None
    verify: VerifyTally | None = None
    detections: list = field(default_factory=list)
    patches: list = field(default_factory=list)
    verdicts: list = field(default_factory=list)


def run_pipeline(paths: Sequence[str], out: Path, options: RunOptions, step: Callable[[str], None] = lambda name: None) -> dict:
    with executor_session(options.detect.runner):
        return _run_pipeline(paths, out, options, step)


def _run_pipeline(paths: Sequence[str], out: Path, options: RunOptions, step: Callable[[str], None]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    checks = list(options.checks) if options.checks is not None else select_checks(selection=options.config.checks, custom=options.config.custom_checks)
    facts = options.image_facts or shipped_facts()
    fix_options = FixOptions(options.config.fixes, options.image_pins or {}, facts)
    store = ObjectStore()
    first = _streamed_stages if options.record_format == "jsonl" else _stages_in_memory
    done = first(paths, out, checks, options, fix_options, VerifyOptions(image_facts=facts), store, step)
    if options.until in FIRST_STAGES:
        return {"until": options.until, "first": done, "problems": done.detect.problems}
    if options.record_format == "jsonl":  # the later stages need every record: read back
        done.detections = read_models(artefact(out, "detections", "jsonl"), Detection)
        done.patches = read_models(artefact(out, "patches", "jsonl"), PatchRecord)
        done.verdicts = read_models(artefact(out, "verified", "jsonl"), Verdict)
    detections, patches, verdicts = done.detections, done.patches, done.verdicts
    step("risk")
    risks = score_risk(detections, options.epss_csv, options.kev_json, options.trivy_reports, store)
    write_models(out / "risk.json", risks)
    step("schedule")
    items = build_schedule(verdicts, risks, options.config.schedule)
    write_models(out / "schedule.json", items)
    step("queue")
    queue = open_queue(options.queue or out / "queue.db", create=True)
    try:
        queue.enqueue([item.model_dump() for item in items])
        stats = queue.stats()
    finally:
        queue.close()
    step("metrics")
    metrics = pipeline_metrics(detections, patches, verdicts)
    write_json_atomic(out / "metrics.json", metrics)
    step("report")
    # Diffs for the head of the queue: enough to review from, small enough to open.
    head = {item.id for item in items[:REPORT_DIFFS]}
    diffs = _diffs([p for p in patches if p.id in head], detections, store)
    write_report(out / "report.html", detections, patches, verdicts, items, risks, metrics, diffs, list(paths))
    return {
        "metrics": metrics, "queue": stats, "schedule": items, "problems": done.detect.problems, "detections": detections, "risks": risks,
        "verdicts": verdicts,
    }


def _stages_in_memory(paths, out: Path, checks, options: RunOptions, fix_options: FixOptions, verify_options: VerifyOptions, store: ObjectStore, step) -> FirstStages:
    """detect, propose and verify with every record in memory, each stage's file written whole."""
    runner = options.detect.runner
    step("detect")
    detected = detect(paths, checks, options.detect)
    write_models(artefact(out, "detections"), detected.detections)
    done = FirstStages(DetectTally(detected.problems, detected.files, detected.objects, len(detected.detections)), detections=detected.detections)
    if options.until == "detect":
        return done
    step("propose")
    if runner.executor == "local":
        proposed = propose_rules(detected.detections, fix_options, store)
    else:
        proposed = propose_distributed(detected.detections, fix_options, runner)
    write_models(artefact(out, "patches"), proposed.patches)
    with_ops = sum(1 for p in proposed.patches if not p.is_manual)
    done.propose = ProposeTally(len(detected.detections), len(proposed.patches), with_ops, proposed.warnings, proposed.without_fix)
    done.patches = proposed.patches
    if options.until == "propose":
        return done
    step("verify")
    verified = verify_parallel(checks, verify_options, proposed.patches, detected.detections, runner=runner)
    write_models(artefact(out, "verified"), verified.verdicts)
    done.verify, done.verdicts = VerifyTally.of(verified.verdicts, verified.manual), verified.verdicts
    return done


def _streamed_stages(paths, out: Path, checks, options: RunOptions, fix_options: FixOptions, verify_options: VerifyOptions, store: ObjectStore, step) -> FirstStages:
    """detect, propose and verify streamed into JSON Lines, each reading the file the one before wrote."""
    runner = options.detect.runner
    detections, patches = artefact(out, "detections", "jsonl"), artefact(out, "patches", "jsonl")
    step("detect")
    done = FirstStages(detect_jsonl(paths, checks, options.detect, detections))
    if options.until == "detect":
        return done
    step("propose")
    done.propose = propose_jsonl(detections, fix_options, runner, patches)
    if options.until == "propose":
        return done
    step("verify")
    done.verify = verify_jsonl(checks, verify_options, patches, detections, runner, artefact(out, "verified", "jsonl"))
    return done


def _diffs(patches, detections, store: ObjectStore) -> dict[str, str]:
    """Per patch: the change to the file's own text, as `fix` would write it
    (comments, order and style kept); the object's YAML before and after when
    the file cannot be edited in place (the diff then says so)."""
    by_id = {d.id: d for d in detections}
    diffs = {}
    for patch in patches:
        d = by_id.get(patch.id)
        obj = store.object(d.manifest_path, d.document_index, d.list_index) if d else None
        if obj is None or patch.is_manual:
            continue
        in_file = _file_diff(d, patch)
        if in_file is not None:
            diffs[patch.id] = in_file
            continue
        before = yaml.safe_dump(obj.data, sort_keys=False).splitlines()
        try:
            after = yaml.safe_dump(apply_patch(obj.data, patch.patch), sort_keys=False).splitlines()
        except Exception:  # an invalid patch has no diff; its verdict says why
            continue
        if patch.creates:
            after += ["---", *yaml.safe_dump(patch.creates, sort_keys=False).splitlines()]
        diffs[patch.id] = "\n".join(difflib.unified_diff(before, after, "before (re-serialised)", "after", lineterm="", n=2))
    return diffs


def _file_diff(detection, patch) -> str | None:
    """The patch applied to its file's text by fix's writer, as a unified diff (None: it cannot be)."""
    edit = ObjectEdit(
        path=detection.manifest_path, document_index=detection.document_index, list_index=detection.list_index,
        ref=detection.object, ops=patch.patch, creates=[patch.creates] if patch.creates else [],
    )
    updated, problem = render_file(detection.manifest_path, [edit])
    if problem or updated is None:
        return None
    try:
        original = read_source(detection.manifest_path)[0]
    except (OSError, SourceError):
        return None
    name = detection.manifest_path
    lines = difflib.unified_diff(original.splitlines(), updated.splitlines(), f"a/{name}", f"b/{name}", lineterm="", n=2)
    return "\n".join(lines)
