"""detect: paths -> objects -> applications -> checks -> detections.

Work is split by application, never inside one, so cross-object checks see
every object they need. Large inputs are spread over worker processes (fork:
the check registry and the selection are inherited, nothing is pickled but
file paths going out and plain findings coming back).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import yaml
from pydantic import TypeAdapter

from .checks import Check
from .contracts import Detection, detection_id
from .engines.builtin import Finding, run_checks
from .manifests.context import (
    Application,
    ContextMode,
    application_key,
    group_applications,
)
from .manifests.loader import (
    DEFAULT_MAX_FILE_BYTES,
    STDIN_PATH,
    LoadProblem,
    iter_manifest_files,
    load_file,
)
from .manifests.objects import K8sObject

# Below this many files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 200


@dataclass(frozen=True)
class DetectOptions:
    context: ContextMode = ContextMode.DIR
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    embed_yaml: bool = False
    jobs: int = 0  # 0: one per core


@dataclass
class DetectResult:
    detections: list[Detection] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    files: int = 0
    objects: int = 0
    extras: list = field(default_factory=list)  # what a `post` hook returned, per application

    @property
    def errors(self) -> list[LoadProblem]:
        return [p for p in self.problems if p.level == "error"]


# A later stage run on each application right where it was loaded (the fix
# pipeline): post(application, its detection rows) -> anything picklable.
PostHook = Callable[[Application, list[dict]], object]


def detect(
    paths: Sequence[str], checks: Sequence[Check], options: DetectOptions = DetectOptions(), post: PostHook | None = None
) -> DetectResult:
    result = DetectResult()
    apps: dict[str, list[str]] = {}
    chart_roots: dict[str, str | None] = {}
    for path, problem in iter_manifest_files(paths):
        if problem:
            result.problems.append(LoadProblem(path, problem))
        else:
            apps.setdefault(application_key(path, options.context, chart_roots), []).append(path)

    jobs = options.jobs or os.cpu_count() or 1
    file_count = sum(len(files) for files in apps.values())
    if jobs > 1 and file_count >= PARALLEL_MIN_FILES and STDIN_PATH not in paths:
        parts = _run_in_pool(apps, checks, options, jobs, post)
    else:
        parts = [_detect_batch_with([Work(key, files, split=False) for key, files in apps.items()], checks, options, post)]

    split_objects: dict[str, list[K8sObject]] = {}
    rows: list[dict] = []
    for part in parts:
        rows.extend(part.rows)
        result.extras.extend(part.extras)
        result.problems.extend(part.problems)
        result.files += part.files
        result.objects += part.objects
        for key, objects in part.split_objects.items():
            split_objects.setdefault(key, []).extend(objects)
    # Applications spread over several workers: their cross-object checks run
    # here, once every part of them is back.
    cross = [c for c in checks if c.cross_object]
    for key, objects in split_objects.items():
        objects.sort(key=lambda o: (o.path, o.document_index, o.list_index or 0))
        app = Application(key, objects)
        cross_part = _BatchResult()
        _collect(cross_part, app, [detection_row(f, key, options.embed_yaml) for f in run_checks(app, cross)], post)
        rows.extend(cross_part.rows)
        result.extras.extend(cross_part.extras)
        result.problems.extend(cross_part.problems)

    # Workers send plain rows (cheap to pickle); one validation makes them models.
    result.detections = sorted(DETECTIONS.validate_python(rows), key=_detection_order)
    result.problems.sort(key=lambda p: (p.path, p.line or 0))
    return result


@dataclass(frozen=True)
class Work:
    """Files of one application, or a slice of a large one (``split``)."""

    app_key: str
    files: list[str]
    split: bool


@dataclass
class _BatchResult(DetectResult):
    rows: list[dict] = field(default_factory=list)  # detections, as contract dicts
    split_objects: dict[str, list[K8sObject]] = field(default_factory=dict)


def _file_bytes(path: str) -> int:
    return os.path.getsize(path) if path != STDIN_PATH else 0


def plan_batches(apps: dict[str, list[str]], batch_count: int) -> list[list[Work]]:
    """Spread applications over batches of similar size, biggest first; an
    application larger than one batch is sliced (and marked split)."""
    sizes = {key: sum(_file_bytes(p) for p in files) for key, files in apps.items()}
    target = max(1, sum(sizes.values()) // batch_count)
    pieces: list[tuple[int, Work]] = []
    for key, files in apps.items():
        if sizes[key] <= target:
            pieces.append((sizes[key], Work(key, files, split=False)))
            continue
        chunk: list[str] = []
        chunk_bytes = 0
        for path in files:
            chunk.append(path)
            chunk_bytes += _file_bytes(path)
            if chunk_bytes >= target:
                pieces.append((chunk_bytes, Work(key, chunk, split=True)))
                chunk, chunk_bytes = [], 0
        if chunk:
            pieces.append((chunk_bytes, Work(key, chunk, split=True)))
    batches: list[list[Work]] = [[] for _ in range(batch_count)]
    loads = [0] * batch_count
    for size, work in sorted(pieces, key=lambda p: p[0], reverse=True):
        lightest = loads.index(min(loads))
        batches[lightest].append(work)
        loads[lightest] += size
    return [b for b in batches if b]


# --- worker side ---------------------------------------------------------------

_worker_state: tuple[Sequence[Check], DetectOptions, PostHook | None] | None = None


def _run_in_pool(apps, checks, options, jobs, post) -> list[_BatchResult]:
    global _worker_state
    _worker_state = (checks, options, post)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return pool.map(_detect_batch, plan_batches(apps, jobs * 16), chunksize=1)
    finally:
        _worker_state = None


def _detect_batch(batch: list[Work]) -> _BatchResult:
    assert _worker_state is not None
    checks, options, post = _worker_state
    return _detect_batch_with(batch, checks, options, post)


def _detect_batch_with(batch: list[Work], checks: Sequence[Check], options: DetectOptions, post: PostHook | None = None) -> _BatchResult:
    result = _BatchResult()
    local = [c for c in checks if not c.cross_object]
    for work in batch:
        objects = []
        for path in work.files:
            loaded = load_file(path, options.max_file_bytes)
            objects.extend(loaded.objects)
            result.problems.extend(loaded.problems)
            result.files += 1
        result.objects += len(objects)
        if work.split:
            # Cross-object checks wait for the whole application (see detect()).
            result.split_objects.setdefault(work.app_key, []).extend(objects)
            # Its per-object findings can be fixed here, on this slice of it.
            app = Application(work.app_key, objects)
            _collect(result, app, [detection_row(f, work.app_key, options.embed_yaml) for f in run_checks(app, local)], post)
            continue
        for app in group_applications(objects, options.context):
            _collect(result, app, [detection_row(f, app.key, options.embed_yaml) for f in run_checks(app, checks)], post)
    return result


def _collect(result: _BatchResult, app: Application, rows: list[dict], post: PostHook | None) -> None:
    result.rows.extend(rows)
    if post is not None and rows:
        try:
            result.extras.append(post(app, rows))
        except Exception as err:  # one application's failure must not stop the others
            result.problems.append(LoadProblem(app.key, f"could not fix this application: {type(err).__name__}: {err}"))


DETECTIONS = TypeAdapter(list[Detection])


def detection_row(finding: Finding, app_key: str, embed_yaml: bool = False, engine: str = "builtin") -> dict:
    """A finding in the shape of the detections contract (validated later)."""
    obj, check, violation = finding.obj, finding.check, finding.violation
    ref = {"apiVersion": obj.api_version, "kind": obj.kind, "namespace": obj.namespace, "name": obj.name}
    return {
        "id": detection_id(obj.path, ref, check.id, violation.container, violation.message),
        "manifest_path": obj.path,
        "manifest_yaml": yaml.dump(obj.data, Dumper=yaml.CSafeDumper, sort_keys=False) if embed_yaml else None,
        "policy_id": check.id,
        "violation_text": violation.message,
        "object": ref,
        "document_index": obj.document_index,
        "list_index": obj.list_index,
        "line": obj.line,
        "severity": check.severity.value,
        "container": violation.container,
        "engine": engine,
        "application": app_key,
    }


def _detection_order(d: Detection):
    return (d.manifest_path, d.document_index, d.list_index or 0, d.policy_id, d.container or "", d.violation_text)
