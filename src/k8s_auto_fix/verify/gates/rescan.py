"""Gate 7, rescan (with --rescan): the real kube-linter, run on every patched
object (with the objects its patch creates), no longer reports the findings."""

from __future__ import annotations

from collections.abc import Sequence

from ...contracts import Reason
from ..judging import Change, Judging, VerifyOptions
from .base import Gate


class RescanGate(Gate):
    name = "rescan"

    def runs(self, options: VerifyOptions) -> bool:
        return bool(options.rescan)

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        return self.judge_all([change], judging)[0]

    def judge_all(self, changes: Sequence[Change], judging: Judging) -> list[list[Reason]]:
        from ..external import still_reported_by_kube_linter

        still = still_reported_by_kube_linter(changes)
        return [[self.reason("kube-linter still reports it", check) for check in found] for found in still]


RESCAN = RescanGate()
