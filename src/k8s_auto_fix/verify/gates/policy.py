"""Gate 2, policy: every finding the change is meant to fix is gone from the patched object."""

from __future__ import annotations

from ...checks import REGISTRY
from ...contracts import Reason
from ..judging import Change, Judging
from .base import Gate


class PolicyGate(Gate):
    name = "policy"

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        after = judging.findings_after(change)
        return [
            self.reason(f"still fires: {d.violation_text}", d.policy_id)
            for d in change.detections
            if d.policy_id not in REGISTRY or d.key in after
        ]


POLICY = PolicyGate()
