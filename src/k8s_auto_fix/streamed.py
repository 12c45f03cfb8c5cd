"""detect, propose and verify streamed into JSON Lines (``--format jsonl``).

Each application's records are written as they are done, in input order, and
dropped: what is held at once is a few applications, never the input. A stage
keeps only its counts (and detect its problems). The stage commands write
their ``--format jsonl`` artefacts with these, and ``run --format jsonl``
chains them in one process, on one executor (one Ray job for the three).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .checks import Check
from .checks.fixes import FixOptions
from .config import RunConfig
from .contracts import Detection, JsonLinesWriter, PatchRecord, Problem, Verdict, stream_models
from .detect import DetectOptions
from .runner import RunnerOptions
from .verify.judging import VerifyOptions

if TYPE_CHECKING:  # the model client (httpx) is imported only by a model run
    from .propose.llm.client import Usage


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


def _counted(tally, path: Path) -> Iterator[Detection]:
    """The detections of ``path``, one at a time, each counted in ``tally.findings``."""
    for record in stream_models(path, Detection):
        tally.findings += 1
        yield record


def propose_jsonl(detections: Path, options: FixOptions, runner: RunnerOptions, out: Path | None) -> ProposeTally:
    """Rule fixes for the detections in ``detections`` (JSON Lines or a JSON array), into ``out``."""
    from .propose.rules import propose_stream

    tally = ProposeTally()
    with JsonLinesWriter(out) as lines:
        for part in propose_stream(_counted(tally, detections), options, runner):
            lines.write(part.patches)
            tally.warnings += part.warnings
            tally.without_fix.update(part.without_fix)
            tally.with_ops += sum(1 for p in part.patches if not p.is_manual)
    tally.patches = lines.count
    return tally


@dataclass
class ModelTally:
    findings: int = 0
    sources: Counter = field(default_factory=Counter)  # records by source (model, rules-fallback, ...)
    unfixed: int = 0
    usage: Usage | None = None  # requests, tokens and model time, summed over the chunks


def propose_with_model_jsonl(
    config: RunConfig, endpoint: str, api_key: str | None, detections: Path, options: FixOptions, jobs: int, runner: RunnerOptions, out: Path | None
) -> ModelTally:
    """Model fixes for the detections in ``detections``, chunk by chunk, into ``out``. Stopped
    midway (an interrupt, a dead endpoint), the records of the chunks done are kept: answers paid for."""
    from .propose.llm.client import Usage
    from .propose.llm.distributed import propose_with_model_stream

    tally = ModelTally(usage=Usage())
    with JsonLinesWriter(out, keep_partial=True) as lines:
        for part in propose_with_model_stream(config, endpoint, api_key, _counted(tally, detections), options, jobs, runner):
            lines.write(part.patches)
            tally.sources.update(p.source.value for p in part.patches)
            tally.unfixed += len(part.unfixed)
            tally.usage.add(part.usage)
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
