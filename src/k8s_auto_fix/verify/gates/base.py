"""The gate type: a name, a judgement of changes as structured reasons, and
the guidance a model is given when its patch fails the gate."""

from __future__ import annotations

from collections.abc import Sequence

from ...contracts import Reason
from ..judging import Change, Judging, VerifyOptions


class Gate:
    name: str = ""
    guidance: str = ""  # shown to a model whose patch this gate refused

    def runs(self, options: VerifyOptions) -> bool:
        """Whether the gate runs at all with these options (else its result is None)."""
        return True

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        """Why ``change`` fails this gate; empty when it passes."""
        raise NotImplementedError

    def judge_all(self, changes: Sequence[Change], judging: Judging) -> list[list[Reason]]:
        """Every change at once (gates that run an external tool batch them)."""
        return [self.judge(change, judging) for change in changes]

    def reason(self, message: str, check: str | None = None, path: str | None = None) -> Reason:
        return Reason(gate=self.name, message=message, check=check, path=path)
