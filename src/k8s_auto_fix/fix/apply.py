"""fix: detect, propose and verify, then write the chosen fixes back.

Outputs: a unified diff (default), the files rewritten in place, a copy of
the fixed files in another folder, or a Kustomize overlay that applies the
same changes to the untouched files.
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..checks.registry import Check
from ..contracts import PatchRecord, Verdict, write_text_atomic
from ..detect import DetectOptions, DetectResult, detect
from .engine import FixEngine, FixOutcome, FixSettings, ObjectEdit
from .roundtrip import render_file


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
        return sum(len(e.fixed) for edits in self.edits.values() for e in edits)


def run_fix(paths: Sequence[str], checks: Sequence[Check], detect_options: DetectOptions, settings: FixSettings) -> FixRun:
    detected = detect(paths, checks, detect_options, post=FixEngine(settings))
    run = FixRun(detected)
    sources: dict[str, int] = defaultdict(int)  # file -> how many outcomes edit it
    seen_objects: set[tuple] = set()
    for outcome in detected.extras:
        outcome: FixOutcome
        run.patches += [PatchRecord.model_validate(p) for p in outcome.patches]
        run.verdicts += [Verdict.model_validate(v) for v in outcome.verdicts]
        run.problems += outcome.problems
        run.new_texts.update(outcome.texts)
        for path in {e.path for e in outcome.edits}:
            sources[path] += 1
        for edit in outcome.edits:
            key = (edit.path, edit.document_index, edit.list_index)
            if key in seen_objects and edit.ops:
                # A second set of edits computed against the original would not
                # fit on top of the first; keep the objects it creates only.
                edit.ops = []
            seen_objects.add(key)
            run.edits.setdefault(edit.path, []).append(edit)
    # A file edited from two places (a large application's slice, and its
    # cross-object fixes) is rendered again with all its edits.
    for path in [p for p, n in sources.items() if n > 1]:
        text, problem = render_file(path, run.edits[path])
        run.new_texts.pop(path, None)
        if problem:
            run.problems.append(problem)
        elif text is not None:
            run.new_texts[path] = text
    return run


def unified_diff(run: FixRun) -> str:
    chunks = []
    for path, updated in sorted(run.new_texts.items()):
        original = Path(path).read_text(encoding="utf-8")
        name = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path.lstrip("/")
        chunks.extend(difflib.unified_diff(original.splitlines(True), updated.splitlines(True), f"a/{name}", f"b/{name}"))
    return "".join(chunks)


def write_in_place(run: FixRun) -> None:
    for path, updated in run.new_texts.items():
        write_text_atomic(Path(path), updated)


def write_to_folder(run: FixRun, folder: Path, inputs: Sequence[str]) -> list[Path]:
    base = _common_base(inputs)
    written = []
    for path, updated in run.new_texts.items():
        target = folder / os.path.relpath(os.path.abspath(path), base)
        write_text_atomic(target, updated)
        written.append(target)
    return written


def _common_base(inputs: Sequence[str]) -> str:
    absolute = [os.path.abspath(p) for p in inputs if p != "-"]
    base = os.path.commonpath(absolute) if absolute else os.getcwd()
    return base if os.path.isdir(base) else os.path.dirname(base)
