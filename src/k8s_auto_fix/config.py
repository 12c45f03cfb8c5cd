"""configs/run.yaml: one validated model, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(Exception):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourceDefaults(_Strict):
    # Guessed values: every fix that uses them is a `review` fix.
    cpu_request: str = "100m"
    memory_limit: str = "512Mi"


class ReadOnlyRootFsDefaults(_Strict):
    # Most images write to /tmp; an emptyDir there keeps them working with a
    # read-only root filesystem.
    tmp_volume: bool = True
    tmp_mount_path: str = "/tmp"
    tmp_volume_name: str = "tmp"


class FixDefaults(_Strict):
    """Values the rule fixes must choose. Documented in the README."""

    run_as_user: int = Field(10001, gt=0)
    resources: ResourceDefaults = ResourceDefaults()
    read_only_root_fs: ReadOnlyRootFsDefaults = ReadOnlyRootFsDefaults()
    job_ttl_seconds_after_finished: int = Field(86400, ge=0)
    pdb_unhealthy_pod_eviction_policy: str = Field("AlwaysAllow", pattern="^(AlwaysAllow|IfHealthyBudget)$")
    pdb_max_unavailable: int | str = 1
    seccomp_profile: str = Field("RuntimeDefault", pattern="^(RuntimeDefault|Localhost)$")
    # A created ServiceAccount does not mount its token unless told to.
    service_account_automount: bool = False


class ProposerSettings(_Strict):
    mode: str = Field("rules", pattern="^(rules|grok|vendor|vllm)$")
    retries: int = Field(2, ge=0)
    timeout_seconds: float = Field(60, gt=0)


class RunConfig(_Strict):
    seed: int = 1337
    max_attempts: int = Field(3, ge=1)
    proposer: ProposerSettings = ProposerSettings()
    fixes: FixDefaults = FixDefaults()


def load_config(path: str | Path | None) -> RunConfig:
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML") from None
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {key}: {first['msg']}") from None
