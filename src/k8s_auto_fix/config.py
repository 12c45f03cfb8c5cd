"""The run configuration (configs/run.yaml): one validated model, errors that name the key.

``--config`` means this file on every command. Its sections:

- ``fixes:`` values the rule fixes must choose, declared by the checks that use them;
- ``proposer:`` and ``endpoints:`` how proposals are made: ``rules``, or the
  name of a model endpoint (``grok``, ``vendor`` and ``vllm`` are built in);
- ``schedule:`` the scheduler's constants;
- ``checks:`` and ``customChecks:`` which checks run, in kube-linter's own
  config format, so a `.kube-linter.yaml` is a valid run configuration.

A file only needs what differs from the defaults (see configs/run_grok.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .checks import settings_model
from .checks.selection import CheckSelection, CustomCheck
from .contracts import Applicability
from .defaults import DEFAULT_CONFIG_PATH

FixSettings = settings_model()


class ConfigError(Exception):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProposerSettings(_Strict):
    mode: str = "rules"  # rules, or the name of an endpoint
    retries: int = Field(2, ge=0)  # HTTP retries per request (429, 5xx, timeouts)
    timeout_seconds: float = Field(60, gt=0)  # read timeout of one request
    connect_timeout_seconds: float = Field(10, gt=0)
    max_ops: int = Field(20, ge=1)  # a model patch with more operations is refused


class EndpointSettings(_Strict):
    """One model endpoint. ``api`` names the protocol its client speaks
    (propose/llm/providers.py); every preset is OpenAI-compatible chat completions."""

    api: Literal["openai"] = "openai"
    endpoint: str
    model: str
    api_key_env: str | None = None  # the environment variable holding the key
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    temperature: float = 0.0
    max_tokens: int = Field(1024, gt=0)
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)


PRESET_ENDPOINTS: dict[str, dict[str, Any]] = {
    "grok": {"endpoint": "https://api.x.ai/v1", "model": "grok-4-fast-reasoning", "api_key_env": "XAI_API_KEY"},
    "vendor": {"endpoint": "https://api.openai.com/v1", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY"},
    "vllm": {"endpoint": "http://localhost:8000/v1", "model": "Qwen/Qwen2.5-Coder-7B-Instruct", "api_key_env": None},
}


class RulesSettings(_Strict):
    enabled: bool = True  # merge the rule fix into model patches, fall back to it


class ScheduleSettings(_Strict):
    """The scheduler's constants (see schedule/score.py for the formula)."""

    prior_accepted: float = Field(1.0, gt=0)  # Beta prior of a fix being accepted
    prior_rejected: float = Field(1.0, gt=0)
    effort_minutes: dict[Applicability, float] = {Applicability.SAFE: 2.0, Applicability.REVIEW: 10.0, Applicability.MANUAL: 30.0}
    minutes_per_op: float = Field(1.0, ge=0)
    prior_reviews: float = Field(5.0, gt=0)  # how many reviews the static p and E[t] count as against --history
    explore: float = Field(0.05, ge=0)  # optimism weight for checks with few reviews
    # Score per hour of waiting past T, each fix's slack (README, Scheduler: chosen with `bench scheduler`).
    alpha: float = Field(0.01, ge=0)
    # L, the wait ageing aims to keep every fix within, as a multiple of the largest drain time of the backlog seen.
    ageing_threshold: float = Field(1.2, ge=0)
    # Reviewer-hours of review per wall-clock hour: one reviewer around the clock, or three 8 h a day, is 1.
    review_capacity: float = Field(1.0, gt=0)
    kev_bonus: float = Field(1.0, ge=0)


class RunConfig(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    seed: int = 1337
    max_attempts: int = Field(3, ge=1)  # model attempts per finding, with verifier feedback
    proposer: ProposerSettings = ProposerSettings()
    endpoints: dict[str, EndpointSettings] = Field(default_factory=dict)
    rules: RulesSettings = RulesSettings()
    fixes: FixSettings = FixSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    checks: CheckSelection = CheckSelection()
    custom_checks: list[CustomCheck] = Field(default_factory=list, alias="customChecks")

    @model_validator(mode="before")
    @classmethod
    def _endpoints_with_presets(cls, data: Any) -> Any:
        """Presets first, then the file's endpoints over them, field by field;
        the top-level ``grok:``/``vendor:``/``vllm:`` blocks of older files count too."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = dict(data.get("endpoints") or {})
        for name in PRESET_ENDPOINTS:
            if name in data:
                given[name] = {**(data.pop(name) or {}), **(given.get(name) or {})}
        merged = {name: dict(preset) for name, preset in PRESET_ENDPOINTS.items()}
        for name, block in given.items():
            merged[name] = {**merged.get(name, {}), **(block or {})} if isinstance(block, dict) else block
        data["endpoints"] = merged
        return data

    @model_validator(mode="after")
    def _mode_is_known(self) -> RunConfig:
        if self.proposer.mode != "rules" and self.proposer.mode not in self.endpoints:
            known = ", ".join(["rules", *self.endpoints])
            raise ValueError(f"proposer.mode {self.proposer.mode!r} is neither rules nor an endpoint ({known})")
        return self

    def endpoint(self, name: str) -> EndpointSettings:
        return self.endpoints[name]


def load_config(path: str | Path | None) -> RunConfig:
    """The configuration at ``path``; the defaults when ``path`` is None, or
    when it is the default path and no such file exists (run from elsewhere)."""
    if path is None or (Path(path) == DEFAULT_CONFIG_PATH and not Path(path).exists()):
        return RunConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run configuration is a mapping")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {key}: {first['msg']}" if key else f"{path}: {first['msg']}") from None
