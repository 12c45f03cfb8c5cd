"""detect: paths -> objects -> applications -> checks -> detections.

The engine does the work (the built-in one spreads applications over worker
processes, see runner.py); this stage picks it and its options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .checks import Check
from .contracts import DetectResult, Engine
from .engines import ENGINES, PolicyOptions
from .manifests.context import ContextMode
from .manifests.loader import DEFAULT_MAX_FILE_BYTES
from .runner import RunnerOptions


@dataclass(frozen=True)
class DetectOptions:
    context: ContextMode = ContextMode.DIR
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    embed_yaml: bool = False
    jobs: int = 0  # 0: one per core
    engine: Engine = Engine.BUILTIN
    policies: tuple[str, ...] = ()  # the policy folders of a policy engine (--policies)
    kubeconfig: str | None = None  # the API server of the vap engine
    executor: str = "local"  # or "ray"
    ray_address: str | None = None

    @property
    def runner(self) -> RunnerOptions:
        return RunnerOptions(self.context, self.max_file_bytes, self.jobs, self.executor, self.ray_address)


def detect(paths: Sequence[str], checks: Sequence[Check], options: DetectOptions = DetectOptions()) -> DetectResult:
    return ENGINES[options.engine](paths, checks, options.runner, options.embed_yaml, PolicyOptions(options.policies, options.kubeconfig))
