"""detect, propose and verify streamed into JSON Lines (``--format jsonl``).

Each application's records are written as they are done, in input order, and
dropped: what is held at once is a few applications, never the input. A stage
keeps only its counts (and detect its problems). The stage commands write
their ``--format jsonl`` artefacts with these, and ``run --format jsonl``
chains them in one process, on one executor (one Ray job for the three).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checks import Check
from .checks.fixes import FixOptions
from .contracts import Detection, JsonLinesWriter, PatchRecord, Problem, Verdict, stream_models
from .detect import DetectOptions
from .runner import RunnerOptions
from .verify.judging import VerifyOptions


@dataclass
class DetectTally:
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    objects: int = 0
    findings: int = 0  # written
    in_baseline: int = 0  # left out: already in the baseline

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


def detect_jsonl(paths: Sequence[str], checks: Sequence[Check], options: DetectOptions, out: Path | None, known: set[str] | None = None) -> DetectTally:
    """The built-in engine's detections into ``out`` (None: stdout); with ``known``, only the ones not in it."""
    from .engines.builtin import stream_builtin

    listing_problems, stream = stream_builtin(paths, checks, options.runner, options.embed_yaml)
    tally = DetectTally(list(listing_problems))
    with JsonLinesWriter(out) as lines:
        for item in stream:
            found = item.result or []
            if known is not None:
                tally.in_baseline += sum(1 for d in found if d.id in known)
                found = [d for d in found if d.id not in known]
            lines.write(found)
            tally.problems += item.problems
            tally.files += item.files
            tally.objects += item.objects
    tally.findings = lines.count
    tally.problems.sort(key=lambda p: (p.path, p.line or 0))
    return tally


@dataclass
class ProposeTally:
    findings: int = 0
    patches: int = 0
    with_ops: int = 0  # the rest are manual
    warnings: list[str] = field(default_factory=list)
    without_fix: Counter = field(default_factory=Counter)  # check -> findings it cannot fix


def propose_jsonl(detections: Path, options: FixOptions, runner: RunnerOptions, out: Path | None) -> ProposeTally:
    """Rule fixes for the detections in ``detections`` (JSON Lines or a JSON array), into ``out``."""
    from .propose.rules import propose_stream

    tally = ProposeTally()

    def counted(records):
        for record in records:
            tally.findings += 1
            yield record

    with JsonLinesWriter(out) as lines:
        for part in propose_stream(counted(stream_models(detections, Detection)), options, runner):
            lines.write(part.patches)
            tally.warnings += part.warnings
            tally.without_fix.update(part.without_fix)
            tally.with_ops += sum(1 for p in part.patches if not p.is_manual)
    tally.patches = lines.count
    return tally


@dataclass
class VerifyTally:
    verified: int = 0
    accepted: int = 0
    manual: int = 0  # manual fixes: nothing to verify
    rejected: list[str] = field(default_factory=list)  # one line per rejected patch, for the summary

    def add(self, verdicts: list[Verdict], manual: int) -> None:
        from .report.metrics import first_failed_gate

        self.verified += len(verdicts)
        self.manual += manual
        self.accepted += sum(v.accepted for v in verdicts)
        self.rejected += [f"rejected ({first_failed_gate(v)}): {v.policy_id} {v.id}" for v in verdicts if not v.accepted]

    @classmethod
    def of(cls, verdicts: list[Verdict], manual: int) -> VerifyTally:
        tally = cls()
        tally.add(verdicts, manual)
        return tally


def verify_jsonl(checks: Sequence[Check], options: VerifyOptions, patches: Path, detections: Path, runner: RunnerOptions, out: Path | None) -> VerifyTally:
    """Every patch in ``patches`` through the gates, with the detections they are for; verdicts into ``out``."""
    from .verify.verifier import verify_stream

    tally = VerifyTally()
    with JsonLinesWriter(out) as lines:
        for part in verify_stream(checks, options, stream_models(patches, PatchRecord), stream_models(detections, Detection), runner):
            lines.write(part.verdicts)
            tally.add(part.verdicts, part.manual)
    return tally
