"""Gate 7, rescan (with --rescan, and in `fix` with a policy engine): every
configured engine runs again on every patched object (with the objects its
patch creates). The real kube-linter must no longer report the targeted
findings; Kyverno and the API server's ValidatingAdmissionPolicies must
report no rule failing on the patched object that did not fail on the
original, so a fix for one engine's finding never makes another's."""

from __future__ import annotations

from collections.abc import Sequence

from ...contracts import Engine, Reason
from ..judging import Change, Judging, VerifyOptions
from .base import Gate


class RescanGate(Gate):
    name = "rescan"

    def runs(self, options: VerifyOptions) -> bool:
        return bool(options.rescan)

    def judge(self, change: Change, judging: Judging) -> list[Reason]:
        return self.judge_all([change], judging)[0]

    def judge_all(self, changes: Sequence[Change], judging: Judging) -> list[list[Reason]]:
        from ..external import new_policy_failures, still_reported_by_kube_linter

        out: list[list[Reason]] = [[] for _ in changes]
        if Engine.KUBE_LINTER in judging.options.rescan:
            for reasons, found in zip(out, still_reported_by_kube_linter(changes)):
                reasons += [self.reason("kube-linter still reports it", check) for check in found]
        for engine in (Engine.KYVERNO, Engine.VAP):
            if engine in judging.options.rescan:
                for reasons, found in zip(out, new_policy_failures(changes, judging.options, engine)):
                    reasons += [self.reason(f"{engine.value} now reports: {message}", policy_id) for policy_id, message in found]
        return out


RESCAN = RescanGate()
