"""fix: detect, propose and verify, then write the chosen fixes back.

Outputs: a unified diff (default), the files rewritten in place, a copy of
the fixed files in another folder, or a Kustomize overlay that applies the
same changes to the untouched files.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..checks.registry import Check
from ..contracts import DetectResult, Engine, ObjectEdit, PatchRecord, Verdict, write_bytes_atomic
from ..engines.builtin import detection_order
from ..engines.kyverno import detect_with_kyverno
from ..manifests.source import STDIN_PATH, Encoding, SourceError, read_source
from ..runner import Progress, RunnerOptions, for_each_application
from .engine import ChartFix, FixSettings, FixWork, prefetch_policy_results


@dataclass
class FixRun:
    detected: DetectResult
    patches: list[PatchRecord] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    edits: dict[str, list[ObjectEdit]] = field(default_factory=dict)  # file -> edits
    new_texts: dict[str, str] = field(default_factory=dict)  # file -> fixed text (changed files only)
    problems: list[str] = field(default_factory=list)
    chart_fixes: list[ChartFix] = field(default_factory=list)  # rendered chart objects: see fix/chart.py

    @property
    def fixed_findings(self) -> int:
        """Findings whose fix is in a file that could be rewritten."""
        return sum(len(e.fixed) for path, edits in self.edits.items() if path in self.new_texts for e in edits)


def run_fix(paths: Sequence[str], checks: Sequence[Check], options: RunnerOptions, settings: FixSettings, progress: Progress | None = None) -> FixRun:
    """detect -> propose -> verify -> combine -> render, per application in worker processes.
    With policy folders, the policy engine (Kyverno, or the API server's
    ValidatingAdmissionPolicies) detects first, on every object in batches
    (its results are memoised before the workers fork, so the gates reuse
    them), and its findings are what is fixed."""
    found, notes = None, []
    if settings.policies:
        if settings.engine is Engine.VAP:
            from ..engines.vap import detect_with_vap  # an API server's client: only when asked for

            detected = detect_with_vap(paths, settings.policies, settings.verify.kubeconfig)
        else:
            detected = detect_with_kyverno(paths, settings.policies)
        found = {}
        for d in detected.detections:
            found.setdefault(d.manifest_path, []).append(d)
        notes = [p for p in detected.problems if p.level == "note"]
        prefetch_policy_results(found, settings)
    outcome = for_each_application(paths, options, FixWork(checks, settings, found), progress)
    detections = sorted((d for o in outcome.results for d in o.detections), key=detection_order)
    problems = sorted(outcome.problems + notes, key=lambda p: (p.path, p.line or 0))
    run = FixRun(DetectResult.model_construct(detections=detections, problems=problems, files=outcome.files, objects=outcome.objects))
    for result in outcome.results:
        run.patches += result.patches
        run.verdicts += result.verdicts
        run.problems += result.problems
        run.new_texts.update(result.texts)
        run.chart_fixes += result.chart_fixes
        for edit in result.edits:
            run.edits.setdefault(edit.path, []).append(edit)
    return run


def original_texts(run: FixRun) -> dict[str, str | None]:
    """The text of every file the run changes, as it is now (None: a file the fix adds)."""
    originals: dict[str, str | None] = {}
    for path in run.new_texts:
        try:
            originals[path] = read_source(path)[0]
        except FileNotFoundError:
            originals[path] = None
    return originals


def unified_diff(run: FixRun, originals: dict[str, str | None] | None = None) -> str:
    """The run's changes as a unified diff, against ``originals`` (read before
    the files were rewritten) or else the files as they are."""
    originals = originals if originals is not None else original_texts(run)
    chunks = []
    for path, updated in sorted(run.new_texts.items()):
        name = path if path == STDIN_PATH else os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path.lstrip("/")
        original, before = originals.get(path), f"a/{name}"
        if original is None:  # a file the fix adds (a kustomization's new patch)
            original, before = "", "/dev/null"
        old, new = original.splitlines(True), updated.splitlines(True)
        hunks = list(_hunks(old, new))
        if hunks:
            chunks.append(f"--- {git_quoted(before) if before != '/dev/null' else before}\n+++ {git_quoted(f'b/{name}')}\n")
            chunks.extend(hunks)
    return "".join(chunks)


def _hunks(old: list[str], new: list[str], context: int = 3):
    """Unified-diff hunks of two line lists, in time linear in their length.

    difflib's matcher is quadratic on long files of repetitive lines (a
    10,000-item List). The lines that occur once in each side anchor the
    alignment (patience diff: the longest run of anchors in the same order);
    difflib aligns only the short stretches between two anchors."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    matcher.matching_blocks = _matching_blocks(old, new)
    matcher.opcodes = None
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield from (" " + line for line in old[i1:i2])
                continue
            yield from ("-" + line for line in old[i1:i2])
            yield from ("+" + line for line in new[j1:j2])


def _range(start: int, stop: int) -> str:
    """A hunk's line range as unified diffs write it (difflib's own rule)."""
    length = stop - start
    beginning = start + 1 if length else start
    return f"{beginning}" if length == 1 else f"{beginning},{length}"


def _matching_blocks(old: list[str], new: list[str]) -> list[tuple[int, int, int]]:
    """difflib's matching blocks (i, j, size), ending with (len(old), len(new), 0)."""
    blocks: list[tuple[int, int, int]] = []
    previous = (0, 0)
    for i, j in _anchors(old, new) + [(len(old), len(new))]:
        # Between two anchors: a short stretch, aligned by difflib.
        gap = difflib.SequenceMatcher(None, old[previous[0] : i], new[previous[1] : j], autojunk=False)
        blocks += [(previous[0] + a, previous[1] + b, size) for a, b, size in gap.get_matching_blocks() if size]
        if i < len(old):
            blocks.append((i, j, 1))
        previous = (i + 1, j + 1)
    merged: list[list[int]] = []
    for i, j, size in blocks:  # adjacent blocks as one, as difflib gives them
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            merged[-1][2] += size
        else:
            merged.append([i, j, size])
    return [tuple(b) for b in merged] + [(len(old), len(new), 0)]


def _anchors(old: list[str], new: list[str]) -> list[tuple[int, int]]:
    """Pairs (i, j) of lines unique in both sides, the longest chain in the same order."""
    count_old, count_new = Counter(old), Counter(new)
    where_new = {line: j for j, line in enumerate(new) if count_new[line] == 1}
    pairs = [(i, where_new[line]) for i, line in enumerate(old) if count_old[line] == 1 and line in where_new]
    # Longest increasing subsequence of j (pairs are in i order): O(n log n).
    tails: list[int] = []  # tails[k]: index in pairs of the smallest j ending a chain of length k + 1
    before: list[int] = [-1] * len(pairs)
    for index, (_, j) in enumerate(pairs):
        k = _bisect_tails(pairs, tails, j)
        if k > 0:
            before[index] = tails[k - 1]
        if k == len(tails):
            tails.append(index)
        else:
            tails[k] = index
    chain, index = [], tails[-1] if tails else -1
    while index >= 0:
        chain.append(pairs[index])
        index = before[index]
    return chain[::-1]


def _bisect_tails(pairs: list[tuple[int, int]], tails: list[int], j: int) -> int:
    low, high = 0, len(tails)
    while low < high:
        middle = (low + high) // 2
        if pairs[tails[middle]][1] < j:
            low = middle + 1
        else:
            high = middle
    return low


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
