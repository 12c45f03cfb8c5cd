"""Environment variables: secrets in plain values, secret references, duplicates."""

from __future__ import annotations

from ..contracts import Applicability
from .common import WORKLOADS, as_dict, as_list, go_quote, per_container, string_matcher
from .patching import remove_indices
from .registry import Fix, FixContext, KubeLinter, Proposal, Severity, check, template


def _env(container) -> list[dict]:
    return [as_dict(e) for e in as_list(container.spec.get("env"))]


@template("env-var")
def env_var(name="", value=""):
    name_matches, value_matches = string_matcher(name), string_matcher(value)

    def rule(c, obj):
        for env in _env(c):
            env_name, env_value = str(env.get("name", "")), env.get("value")
            env_value = "" if env_value is None else str(env_value)
            if name_matches(env_name) and value_matches(env_value):
                yield f"environment variable {env_name} in container {go_quote(c.name)} found"

    return per_container(rule)


@template("read-secret-from-env-var")
def read_secret_from_env_var():
    def rule(c, obj):
        for env in _env(c):
            if as_dict(env.get("valueFrom")).get("secretKeyRef") is not None:
                yield f"environment variable {go_quote(env.get('name', ''))} in container {go_quote(c.name)} uses SecretKeyRef"

    return per_container(rule)


@template("duplicate-env-var")
def duplicate_env_var():
    def rule(c, obj):
        seen: set[str] = set()
        for env in _env(c):
            name = str(env.get("name", ""))
            if name in seen:
                yield f"Duplicate environment variable {name} in container {go_quote(c.name)} found"
            seen.add(name)

    return per_container(rule)


def _fix_duplicate_env_var(ctx: FixContext) -> Proposal | None:
    """Keep the last definition, which is the one the container sees."""
    name = ctx.message.split(" ")[3]
    entries = [as_dict(e) for e in as_list(ctx.container.spec.get("env"))]
    indices = [i for i, e in enumerate(entries) if str(e.get("name", "")) == name]
    return Proposal(remove_indices((*ctx.container.segments, "env"), indices[:-1]))


def _manual(explanation: str):
    return lambda ctx: Proposal.manual(explanation)


DUPLICATE_ENV_VAR_FIX = Fix(
    Applicability.SAFE,
    "When a name repeats, the container already gets the last value; the earlier ones are dead text.",
    _fix_duplicate_env_var,
)
ENV_VAR_SECRET_FIX = Fix.manual(
    "Moving the value into a Secret means creating one with the real value, which only its owner can do.",
    "move the value into a Secret and reference it with valueFrom.secretKeyRef",
)


check(
    "duplicate-env-var",
    template="duplicate-env-var",
    description="Check that duplicate named env vars aren't passed to a deployment like.",
    remediation="Confirm that your DeploymentLike doesn't have duplicate env vars names.",
    severity=Severity.MEDIUM,
    scope=WORKLOADS,
    fix=DUPLICATE_ENV_VAR_FIX,
)
check(
    "env-var-secret",
    template="env-var",
    params={"name": "(?i).*secret.*", "value": ".+"},
    description="Indicates when objects use a secret in an environment variable.",
    remediation=(
        "Do not use raw secrets in environment variables. Instead, either mount the secret as a file or use a secretKeyRef. "
        "Refer to https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets for details."
    ),
    severity=Severity.HIGH,
    scope=WORKLOADS,
    fix=ENV_VAR_SECRET_FIX,
)
check(
    "read-secret-from-env-var",
    template="read-secret-from-env-var",
    description=(
        "Indicates when a deployment reads secret from environment variables. CIS Benchmark 5.4.1: "
        '"Prefer using secrets as files over secrets as environment variables. "'
    ),
    remediation=(
        "If possible, rewrite application code to read secrets from mounted secret files, rather than from environment "
        "variables. Refer to https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets for details."
    ),
    severity=Severity.LOW,
    scope=WORKLOADS,
    enabled_by_default=False,
    kube_linter=KubeLinter.OPTIONAL,
)
