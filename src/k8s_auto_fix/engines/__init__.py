"""Detection engines: each turns paths into the same detections contract.

An engine is a function (paths, checks, runner options, embed_yaml) -> DetectResult,
registered in ``ENGINES`` under its ``Engine`` name."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..checks.registry import Check
from ..contracts import DetectResult, Engine
from ..runner import RunnerOptions
from .builtin import detect_builtin
from .kube_linter import detect_with_kube_linter

EngineFn = Callable[[Sequence[str], Sequence[Check], RunnerOptions, bool], DetectResult]

ENGINES: dict[Engine, EngineFn] = {
    Engine.BUILTIN: detect_builtin,
    Engine.KUBE_LINTER: lambda paths, checks, options, embed_yaml: detect_with_kube_linter(paths, checks, options),
}
