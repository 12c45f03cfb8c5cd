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
from ..contracts import DetectResult, ObjectEdit, PatchRecord, Verdict, write_bytes_atomic
from ..engines.builtin import detection_order
from ..manifests.source import STDIN_PATH, Encoding, SourceError, read_source
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
        name = path if path == STDIN_PATH else os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path.lstrip("/")
        try:
            original, before = read_source(path)[0], f"a/{name}"
        except FileNotFoundError:  # a file the fix adds (a kustomization's new patch)
            original, before = "", "/dev/null"
        lines = list(difflib.unified_diff(original.splitlines(True), updated.splitlines(True), "FROM", "TO"))
        if lines:
            lines[0] = f"--- {git_quoted(before) if before != '/dev/null' else before}\n"
            lines[1] = f"+++ {git_quoted(f'b/{name}')}\n"
        chunks.extend(lines)
    return "".join(chunks)


_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def git_quoted(name: str) -> str:
    """A file name in a diff header the way git writes it: in double quotes with
    C escapes (octal for other control and non-ASCII bytes) when it has any such
    character, so `git apply` reads it back; a name with a space gets git's
    trailing tab."""
    if not any(c in _C_ESCAPES or ord(c) < 0x20 or ord(c) >= 0x7F for c in name):
        return name + ("\t" if " " in name else "")
    out = []
    for char in name:
        if char in _C_ESCAPES:
            out.append(_C_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) >= 0x7F:
            out.extend(f"\\{byte:03o}" for byte in char.encode("utf-8", "surrogateescape"))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def write_in_place(run: FixRun, inputs: Sequence[str]) -> str | None:
    """Rewrite the changed files, each through its resolved path, in its own
    encoding, keeping mode and owner. Refused, with a problem each (and their
    findings no longer counted as fixed): a symlink that leads out of the input
    tree, and a file with several hard links (a rename would split them).
    Standard input is not a file: its fixed text is returned, for stdout."""
    roots = _input_roots(inputs)
    for path, updated in list(run.new_texts.items()):
        if path == STDIN_PATH:
            continue
        refusal = _refusal(path, roots)
        try:
            if refusal is None:
                write_bytes_atomic(Path(os.path.realpath(path)), _encoding_of(path).encode(updated))
        except OSError as err:
            refusal = f"cannot write it: {err.strerror or err}"
        if refusal is not None:
            run.problems.append(f"{path}: not rewritten: {refusal}")
            del run.new_texts[path]
    return run.new_texts.get(STDIN_PATH)


def _input_roots(inputs: Sequence[str]) -> list[str]:
    """The folders the inputs name (a file's own folder), symlinks resolved."""
    return [os.path.realpath(p if os.path.isdir(p) else os.path.dirname(p) or ".") for p in inputs if p != STDIN_PATH]


def _refusal(path: str, roots: list[str]) -> str | None:
    target = os.path.realpath(path)
    if os.path.islink(path) and not any(target == root or target.startswith(root.rstrip(os.sep) + os.sep) for root in roots):
        return f"a symlink to {target}, outside the input tree"
    links = os.stat(target).st_nlink if os.path.exists(target) else 1  # a file the fix adds has no links yet
    if links > 1:
        return f"{links} hard links share this file, and writing it would split them; fix it with --out-dir, or by hand"
    return None


def _encoding_of(path: str) -> Encoding:
    try:
        return read_source(path)[1]
    except (OSError, SourceError):
        return Encoding()


def write_to_folder(run: FixRun, folder: Path, inputs: Sequence[str]) -> list[Path]:
    base = common_base(inputs)
    written = []
    for path, updated in run.new_texts.items():
        if path == STDIN_PATH:
            continue  # no file to mirror: --write or --diff print it
        target = folder / os.path.relpath(os.path.abspath(path), base)
        write_bytes_atomic(target, _encoding_of(path).encode(updated))
        written.append(target)
    return written


def common_base(inputs: Sequence[str]) -> str:
    """The folder the inputs' relative names start from."""
    absolute = [os.path.abspath(p) for p in inputs if p != "-"]
    base = os.path.commonpath(absolute) if absolute else os.getcwd()
    return base if os.path.isdir(base) else os.path.dirname(base)
