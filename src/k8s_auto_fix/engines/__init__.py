"""Detection engines: each turns paths into the same detections contract.

An engine is a function (paths, checks, runner options, embed_yaml, policy
options) -> DetectResult, registered in ``ENGINES`` under its ``Engine`` name.
The check engines run the check registry (``checks``); the policy engines run
the policies of the folders given with --policies (the vap engine on the API
server of the kubeconfig)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..checks.registry import Check
from ..contracts import DetectResult, Engine
from ..runner import RunnerOptions
from .builtin import detect_builtin
from .kube_linter import detect_with_kube_linter
from .kyverno import detect_with_kyverno


class VapError(Exception):
    """The vap engine could not judge: no API server, or its dry run failed."""


class PolicyOptions(NamedTuple):
    """What a policy engine reads: the --policies folders, and (vap) the API server's kubeconfig."""

    folders: tuple[str, ...] = ()
    kubeconfig: str | None = None


EngineFn = Callable[[Sequence[str], Sequence[Check], RunnerOptions, bool, PolicyOptions], DetectResult]

ENGINES: dict[Engine, EngineFn] = {
    Engine.BUILTIN: lambda paths, checks, options, embed_yaml, policy: detect_builtin(paths, checks, options, embed_yaml),
    Engine.KUBE_LINTER: lambda paths, checks, options, embed_yaml, policy: detect_with_kube_linter(paths, checks, options),
    Engine.KYVERNO: lambda paths, checks, options, embed_yaml, policy: detect_with_kyverno(paths, policy.folders),
    Engine.VAP: lambda paths, checks, options, embed_yaml, policy: _detect_with_vap(paths, policy.folders, policy.kubeconfig),
}
POLICY_ENGINES = (Engine.KYVERNO, Engine.VAP)  # engines that read --policies, not the check registry


def _detect_with_vap(paths: Sequence[str], folders: Sequence[str], kubeconfig: str | None) -> DetectResult:
    from .vap import detect_with_vap  # an API server's client (httpx): imported by the runs that use it, not by every command

    return detect_with_vap(paths, folders, kubeconfig)
