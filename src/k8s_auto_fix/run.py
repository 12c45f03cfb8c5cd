"""run: every stage in one output folder, then a report a person can read.

detect -> propose -> verify -> risk -> schedule -> queue -> metrics, each
writing the same file its own command writes, so any stage can be rerun on
its own from the folder.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .checks import Check
from .checks.fixes import FixOptions
from .checks.selection import select_checks
from .config import RunConfig
from .contracts import ObjectEdit, write_json_atomic, write_models
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


def run_pipeline(paths: Sequence[str], out: Path, options: RunOptions, step: Callable[[str], None] = lambda name: None) -> dict:
    with executor_session(options.detect.runner):
        return _run_pipeline(paths, out, options, step)


def _run_pipeline(paths: Sequence[str], out: Path, options: RunOptions, step: Callable[[str], None]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    runner = options.detect.runner
    checks = list(options.checks) if options.checks is not None else select_checks(selection=options.config.checks, custom=options.config.custom_checks)
    step("detect")
    detected = detect(paths, checks, options.detect)
    write_models(out / "detections.json", detected.detections)
    step("propose")
    store = ObjectStore()
    facts = options.image_facts or shipped_facts()
    fix_options = FixOptions(options.config.fixes, options.image_pins or {}, facts)
    if runner.executor == "local":
        proposed = propose_rules(detected.detections, fix_options, store)
    else:
        proposed = propose_distributed(detected.detections, fix_options, runner)
    write_models(out / "patches.json", proposed.patches)
    step("verify")
    verdicts = verify_parallel(checks, VerifyOptions(image_facts=facts), proposed.patches, detected.detections, runner=runner).verdicts
    write_models(out / "verified.json", verdicts)
    step("risk")
    risks = score_risk(detected.detections, options.epss_csv, options.kev_json, options.trivy_reports, store)
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
    metrics = pipeline_metrics(detected.detections, proposed.patches, verdicts)
    write_json_atomic(out / "metrics.json", metrics)
    step("report")
    # Diffs for the head of the queue: enough to review from, small enough to open.
    head = {item.id for item in items[:REPORT_DIFFS]}
    diffs = _diffs([p for p in proposed.patches if p.id in head], detected.detections, store)
    write_report(out / "report.html", detected.detections, proposed.patches, verdicts, items, risks, metrics, diffs, list(paths))
    return {
        "metrics": metrics, "queue": stats, "schedule": items, "problems": detected.problems, "detections": detected.detections, "risks": risks,
        "verdicts": verdicts,
    }


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
