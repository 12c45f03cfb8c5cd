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
    retries: int = Field(2, ge=0)  # HTTP retries per request (429, 5xx, timeouts)
    timeout_seconds: float = Field(60, gt=0)  # read timeout of one request
    connect_timeout_seconds: float = Field(10, gt=0)
    max_ops: int = Field(20, ge=1)  # a model patch with more operations is refused


class EndpointSettings(_Strict):
    """One OpenAI-compatible chat-completions endpoint."""

    endpoint: str
    model: str
    api_key_env: str | None = None  # the environment variable holding the key
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    temperature: float = 0.0
    max_tokens: int = Field(1024, gt=0)
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)


class RulesSettings(_Strict):
    enabled: bool = True  # merge the rule fix into model patches, fall back to it


class ScheduleSettings(_Strict):
    """The scheduler's constants (see schedule/score.py for the formula)."""

    prior_accepted: float = Field(1.0, gt=0)  # Beta prior of a fix being accepted
    prior_rejected: float = Field(1.0, gt=0)
    effort_minutes: dict[str, float] = {"safe": 2.0, "review": 10.0, "manual": 30.0}
    minutes_per_op: float = Field(1.0, ge=0)
    explore: float = Field(0.05, ge=0)  # UCB bonus weight
    alpha: float = Field(0.0003, ge=0)  # score per hour of waiting (+0.1 after two weeks)
    kev_bonus: float = Field(1.0, ge=0)


class RunConfig(_Strict):
    seed: int = 1337
    max_attempts: int = Field(3, ge=1)  # model attempts per finding, with verifier feedback
    proposer: ProposerSettings = ProposerSettings()
    grok: EndpointSettings = EndpointSettings(
        endpoint="https://api.x.ai/v1", model="grok-4-fast-reasoning", api_key_env="XAI_API_KEY"
    )
    vendor: EndpointSettings = EndpointSettings(endpoint="https://api.openai.com/v1", model="gpt-4o", api_key_env="OPENAI_API_KEY")
    vllm: EndpointSettings = EndpointSettings(endpoint="http://localhost:8000/v1", model="Qwen/Qwen2.5-Coder-7B-Instruct", api_key_env=None)
    rules: RulesSettings = RulesSettings()
    fixes: FixDefaults = FixDefaults()
    schedule: ScheduleSettings = ScheduleSettings()

    def endpoint(self, mode: str) -> EndpointSettings:
        return {"grok": self.grok, "vendor": self.vendor, "vllm": self.vllm}[mode]


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
