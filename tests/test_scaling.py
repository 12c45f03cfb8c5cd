"""Issue 11, item 16: `fix` on a big `kind: List` costs linear work.

Work is counted, not timed: every Python and built-in function call during
`fix --diff` of a List of n, 2n and 4n items (cProfile's count). A quadratic
step (a scan of the whole List per item, a diff matcher comparing every line
with every other) makes the count grow about four times per doubling; linear
work doubles it. `bench scaling` times the same thing (numbers in the README)."""

from __future__ import annotations

import cProfile
import pstats

from k8s_auto_fix.bench.scaling import deployment_list, fix_list
from k8s_auto_fix.checks.selection import select_checks
from k8s_auto_fix.config import RunConfig
from k8s_auto_fix.defaults import DEFAULT_KUBE_VERSION
from k8s_auto_fix.fix.engine import FixSettings


def test_fix_on_a_list_does_linear_work(tmp_path):
    settings = FixSettings.build(RunConfig(), {}, False, DEFAULT_KUBE_VERSION, None)
    checks = select_checks()

    def calls(items: int) -> tuple[int, int]:
        path = tmp_path / f"list-{items}.yaml"
        path.write_text(deployment_list(items), encoding="utf-8")
        profile = cProfile.Profile()
        profile.enable()
        fixed, _ = fix_list(str(path), checks, settings)
        profile.disable()
        return pstats.Stats(profile).total_calls, fixed

    calls(8)  # caches filled (schemas, image facts): not part of the growth
    (one, fixed_one), (two, fixed_two), (four, fixed_four) = calls(100), calls(200), calls(400)
    assert (fixed_one, fixed_two, fixed_four) == (200, 400, 800)  # the same work done per item at every size
    assert two / one < 2.05 and four / two < 2.05, (one, two, four)
