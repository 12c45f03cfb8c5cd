"""Gate 2, policy: every finding the change is meant to fix is gone from the
patched object, by the engine that found it: the check suite for the
built-in checks, the real Kyverno CLI for a Kyverno rule, a dry run on the
API server for a ValidatingAdmissionPolicy (every patched object of the batch
at once)."""

from __future__ import annotations

from collections.abc import Sequence

from ...checks import REGISTRY
from ...contracts import Engine, Reason
from ..judging import Change, Judging
from .base import Gate


class PolicyGate(Gate):
    name = "policy"

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        return self.judge_all([change], judging)[0]

    def judge_all(self, changes: Sequence[Change], judging: Judging) -> list[list[Reason]]:
        from ..external import still_failing_policies

        by_engine = still_failing_policies(changes, judging.options)
        out = []
        for change, engine_failures in zip(changes, by_engine):
            reasons = []
            for d in change.detections:
                if d.engine in (Engine.KYVERNO, Engine.VAP):
                    still = d.policy_id in engine_failures
                else:
                    still = d.policy_id not in REGISTRY or d.key in judging.findings_after(change)
                if still:
                    reasons.append(self.reason(f"still fires: {d.violation_text}", d.policy_id))
            out.append(reasons)
        return out


POLICY = PolicyGate()
