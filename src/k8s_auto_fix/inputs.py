"""run --inputs LIST: many application sets (folders, git repositories) in one run.

A list file names one input a line: a folder, or a git repository (a work
tree is linted as the folder it is; a bare repository's HEAD is exported to a
temporary folder with `git archive`). Blank lines and `#` comments are
skipped; relative paths are taken from the list file's folder. An input that
cannot be used is recorded with its reason and line, and the others go on:
one broken input never stops the rest.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path


class InputsError(Exception):
    pass


@dataclass
class InputSummary:
    input: str
    line: int
    status: str = "ok"  # "ok", or "error" (the input could not be used, or some of its files could not be read)
    message: str = ""
    path: str = ""  # what was linted (a bare repository's exported copy)
    findings: int = 0
    accepted: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def read_inputs(list_file: Path) -> list[tuple[int, str]]:
    """(line number, entry) for each input the list names."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputsError(f"{list_file}: cannot read the inputs list ({getattr(err, 'strerror', None) or err})") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        entry = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if entry:
            entries.append((number, entry))
    if not entries:
        raise InputsError(f"{list_file}: the inputs list names no input")
    return entries


def resolve_inputs(list_file: Path, scratch: Path) -> list[InputSummary]:
    """Each listed input, with the folder to lint or the reason it cannot be used."""
    summaries = []
    for number, entry in read_inputs(list_file):
        summary = InputSummary(entry, number)
        path = Path(entry) if os.path.isabs(entry) else list_file.parent / entry
        try:
            summary.path = str(_folder_of(path, scratch / f"input-{number}"))
        except InputsError as err:
            summary.status, summary.message = "error", f"{list_file}:{number}: {entry}: {err}"
        summaries.append(summary)
    return summaries


def _folder_of(path: Path, scratch: Path) -> Path:
    if not path.exists():
        raise InputsError("no such folder or repository")
    if not path.is_dir():
        raise InputsError("not a folder or a git repository")
    if (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / ".git").exists():
        return _export_bare(path, scratch)
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputsError("the folder cannot be read (permission denied)")
    return path


def _export_bare(repository: Path, target: Path) -> Path:
    """A bare repository's HEAD, as files (git archive), into ``target``."""
    target.mkdir(parents=True)
    with tempfile.TemporaryFile() as archive:
        proc = subprocess.run(["git", "--git-dir", str(repository), "archive", "--format=tar", "HEAD"], stdout=archive, stderr=subprocess.PIPE, text=False)
        if proc.returncode != 0:
            raise InputsError(f"git archive failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(target, filter="data")
    return target


def summarise(summaries: list[InputSummary], detections, verdicts, problems) -> list[InputSummary]:
    """Each input's share of the run, by the paths its files have."""
    usable = [s for s in summaries if s.status == "ok"]

    def owner(path: str) -> InputSummary | None:
        found = [s for s in usable if path == s.path or path.startswith(s.path.rstrip(os.sep) + os.sep)]
        return max(found, key=lambda s: len(s.path)) if found else None  # the most specific input holds it

    by_id = {}
    for d in detections:
        summary = owner(d.manifest_path)
        if summary is not None:
            summary.findings += 1
            by_id[d.id] = summary
    for v in verdicts:
        if v.accepted and v.id in by_id:
            by_id[v.id].accepted += 1
    for p in problems:
        summary = owner(p.path)
        if summary is not None and p.level == "error":
            summary.status = "error"
            summary.problems.append(str(p))
    return summaries
