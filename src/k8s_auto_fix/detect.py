"""detect: paths -> objects -> applications -> checks -> detections.

Work is split by application, never inside one, so cross-object checks see
every object they need. Large inputs are spread over worker processes (fork:
the check registry and the selection are inherited, nothing is pickled but
file paths going out and plain findings coming back).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from .checks import Check
from .contracts import Detection, ObjectRef, detection_id
from .engines.builtin import Finding, run_checks
from .manifests.context import ContextMode, application_key, group_applications
from .manifests.loader import DEFAULT_MAX_FILE_BYTES, STDIN_PATH, LoadProblem, iter_manifest_files, load_file

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

    @property
    def errors(self) -> list[LoadProblem]:
        return [p for p in self.problems if p.level == "error"]


def detect(paths: Sequence[str], checks: Sequence[Check], options: DetectOptions = DetectOptions()) -> DetectResult:
    result = DetectResult()
    groups: dict[str, list[str]] = {}
    chart_roots: dict[str, str | None] = {}
    for path, problem in iter_manifest_files(paths):
        if problem:
            result.problems.append(LoadProblem(path, problem))
        else:
            groups.setdefault(application_key(path, options.context, chart_roots), []).append(path)

    work = sorted(groups.values(), key=_group_bytes, reverse=True)
    jobs = options.jobs or os.cpu_count() or 1
    file_count = sum(len(g) for g in work)
    if jobs > 1 and file_count >= PARALLEL_MIN_FILES and STDIN_PATH not in paths:
        parts = _run_in_pool(work, checks, options, jobs)
    else:
        parts = [_detect_groups(work, checks, options)]

    for part in parts:
        result.detections.extend(part.detections)
        result.problems.extend(part.problems)
        result.files += part.files
        result.objects += part.objects
    result.detections.sort(key=_detection_order)
    result.problems.sort(key=lambda p: (p.path, p.line or 0))
    return result


def _group_bytes(group: list[str]) -> int:
    return sum(os.path.getsize(p) if p != STDIN_PATH else 0 for p in group)


# --- worker side ---------------------------------------------------------------

_worker_state: tuple[Sequence[Check], DetectOptions] | None = None


def _run_in_pool(work, checks, options, jobs) -> list[DetectResult]:
    global _worker_state
    _worker_state = (checks, options)
    # Many small batches, biggest first, keep both cores busy to the end.
    batches: list[list[list[str]]] = [[] for _ in range(jobs * 8)]
    sizes = [0] * len(batches)
    for group in work:
        smallest = sizes.index(min(sizes))
        batches[smallest].append(group)
        sizes[smallest] += _group_bytes(group)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return pool.map(_detect_batch, [b for b in batches if b], chunksize=1)
    finally:
        _worker_state = None


def _detect_batch(groups: list[list[str]]) -> DetectResult:
    assert _worker_state is not None
    checks, options = _worker_state
    return _detect_groups(groups, checks, options)


def _detect_groups(groups: list[list[str]], checks: Sequence[Check], options: DetectOptions) -> DetectResult:
    result = DetectResult()
    for paths in groups:
        objects = []
        for path in paths:
            loaded = load_file(path, options.max_file_bytes)
            objects.extend(loaded.objects)
            result.problems.extend(loaded.problems)
            result.files += 1
        result.objects += len(objects)
        for app in group_applications(objects, options.context):
            result.detections.extend(to_detection(f, options.embed_yaml) for f in run_checks(app, checks))
    return result


def to_detection(finding: Finding, embed_yaml: bool = False, engine: str = "builtin") -> Detection:
    obj, check, violation = finding.obj, finding.check, finding.violation
    ref = ObjectRef(apiVersion=obj.api_version, kind=obj.kind, namespace=obj.namespace, name=obj.name)
    return Detection(
        id=detection_id(obj.path, ref, check.id, violation.container, violation.message),
        manifest_path=obj.path,
        manifest_yaml=yaml.dump(obj.data, Dumper=yaml.CSafeDumper, sort_keys=False) if embed_yaml else None,
        policy_id=check.id,
        violation_text=violation.message,
        object=ref,
        document_index=obj.document_index,
        list_index=obj.list_index,
        line=obj.line,
        severity=check.severity.value,
        container=violation.container,
        engine=engine,
    )


def _detection_order(d: Detection):
    return (d.manifest_path, d.document_index, d.list_index or 0, d.policy_id, d.container or "", d.violation_text)
