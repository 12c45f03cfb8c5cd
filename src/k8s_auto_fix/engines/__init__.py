"""Detection engines: each turns paths into the same detections contract.

An engine is a function (paths, checks, runner options, embed_yaml, policy
folders) -> DetectResult, registered in ``ENGINES`` under its ``Engine`` name.
The check engines run the check registry (``checks``); the policy engines run
the policies of the folders given with --policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..checks.registry import Check
from ..contracts import DetectResult, Engine
from ..runner import RunnerOptions
from .builtin import detect_builtin
from .kube_linter import detect_with_kube_linter
from .kyverno import detect_with_kyverno

EngineFn = Callable[[Sequence[str], Sequence[Check], RunnerOptions, bool, Sequence[str]], DetectResult]

ENGINES: dict[Engine, EngineFn] = {
    Engine.BUILTIN: lambda paths, checks, options, embed_yaml, policies: detect_builtin(paths, checks, options, embed_yaml),
    Engine.KUBE_LINTER: lambda paths, checks, options, embed_yaml, policies: detect_with_kube_linter(paths, checks, options),
    Engine.KYVERNO: lambda paths, checks, options, embed_yaml, policies: detect_with_kyverno(paths, policies),
}
POLICY_ENGINES = (Engine.KYVERNO,)  # engines that read --policies, not the check registry
