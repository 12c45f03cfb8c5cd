"""Gate 3, regression: the check suite finds nothing on the patched object (or
on an object the patch creates) that it did not find before."""

from __future__ import annotations

from ...contracts import Reason
from ..judging import Change, Judging
from .base import Gate


class RegressionGate(Gate):
    name = "regression"  # a model is given the guidance of each check that now fires

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        new = judging.findings_after(change) - judging.findings_before(change)
        new |= judging.created_findings(change)
        return [self.reason(message, check) for check, _, message in sorted(new, key=str)]


REGRESSION = RegressionGate()
