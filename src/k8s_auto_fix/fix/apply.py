"""fix: detect, propose and verify, then write the chosen fixes back.

Outputs: a unified diff (default), the files rewritten in place, a copy of
the fixed files in another folder, or a Kustomize overlay that applies the
same changes to the untouched files.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..checks.registry import Check
from ..contracts import DetectResult, ObjectEdit, PatchRecord, Verdict, write_text_atomic
from ..engines.builtin import detection_order
from ..runner import RunnerOptions, for_each_application
from .engine import FixSettings, FixWork


@dataclass
class FixRun:
    detected: DetectResult
    patches: list[PatchRecord] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    edits: dict[str, list[ObjectEdit]] = field(default_factory=dict)  # file -> edits
    new_texts: dict[str, str] = field(default_factory=dict)  # file -> fixed text (changed files only)
    problems: list[str] = field(default_factory=list)

    @property
    def fixed_findings(self) -> int:
        """Findings whose fix is in a file that could be rewritten."""
        return sum(len(e.fixed) for path, edits in self.edits.items() if path in self.new_texts for e in edits)


def run_fix(paths: Sequence[str], checks: Sequence[Check], options: RunnerOptions, settings: FixSettings) -> FixRun:
    """detect -> propose -> verify -> combine -> render, per application in worker processes."""
    outcome = for_each_application(paths, options, FixWork(checks, settings))
    detections = sorted((d for o in outcome.results for d in o.detections), key=detection_order)
    run = FixRun(DetectResult.model_construct(detections=detections, problems=outcome.problems, files=outcome.files, objects=outcome.objects))
    for result in outcome.results:
        run.patches += result.patches
        run.verdicts += result.verdicts
        run.problems += result.problems
        run.new_texts.update(result.texts)
        for edit in result.edits:
            run.edits.setdefault(edit.path, []).append(edit)
    return run


def unified_diff(run: FixRun) -> str:
    chunks = []
    for path, updated in sorted(run.new_texts.items()):
        name = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path.lstrip("/")
        if os.path.exists(path):
            with open(path, encoding="utf-8", newline="") as handle:  # line ends as they are
                original = handle.read()
            before = f"a/{name}"
        else:  # a file the fix adds (a kustomization's new patch)
            original, before = "", "/dev/null"
        chunks.extend(difflib.unified_diff(original.splitlines(True), updated.splitlines(True), before, f"b/{name}"))
    return "".join(chunks)


def write_in_place(run: FixRun) -> None:
    for path, updated in run.new_texts.items():
        write_text_atomic(Path(path), updated)


def write_to_folder(run: FixRun, folder: Path, inputs: Sequence[str]) -> list[Path]:
    base = common_base(inputs)
    written = []
    for path, updated in run.new_texts.items():
        target = folder / os.path.relpath(os.path.abspath(path), base)
        write_text_atomic(target, updated)
        written.append(target)
    return written


def common_base(inputs: Sequence[str]) -> str:
    """The folder the inputs' relative names start from."""
    absolute = [os.path.abspath(p) for p in inputs if p != "-"]
    base = os.path.commonpath(absolute) if absolute else os.getcwd()
    return base if os.path.isdir(base) else os.path.dirname(base)
