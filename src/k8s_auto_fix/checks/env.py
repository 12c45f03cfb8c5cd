"""Environment variables: secrets in plain values, secret references, duplicates."""

from __future__ import annotations

from ..contracts import Severity
from .common import WORKLOADS, Hit, as_dict, as_list, go_quote, per_container, string_matcher
from .registry import Fix, KubeLinter, check, template


def _env(container) -> list[tuple[int, dict]]:
    return [(i, as_dict(e)) for i, e in enumerate(as_list(container.spec.get("env")))]


# --- duplicate-env-var --------------------------------------------------------------


@template("duplicate-env-var")
def duplicate_env_var():
    def rule(c, obj):
        seen: set[str] = set()
        for index, env in _env(c):
            name = str(env.get("name", ""))
            if name in seen:
                yield Hit(f"Duplicate environment variable {name} in container {go_quote(c.name)} found", ("env", index), name)
            seen.add(name)

    return per_container(rule)


check(
    "duplicate-env-var", "duplicate-env-var",
    severity=Severity.MEDIUM,
    kinds=WORKLOADS,
    description="Check that duplicate named env vars aren't passed to a deployment like.",
    remediation="Confirm that your DeploymentLike doesn't have duplicate env vars names.",
    fix=Fix.manual(
        "The container gets the last definition, but which value the author meant is theirs to say; deleting one of "
        "their lines is not a fix the tool can make for them.",
        "keep the definition you mean and delete the others",
    ),
)


# --- env-var-secret ---------------------------------------------------------------------


@template("env-var")
def env_var(name="", value=""):
    name_matches, value_matches = string_matcher(name), string_matcher(value)

    def rule(c, obj):
        for index, env in _env(c):
            env_name, env_value = str(env.get("name", "")), env.get("value")
            env_value = "" if env_value is None else str(env_value)
            if name_matches(env_name) and value_matches(env_value):
                yield Hit(f"environment variable {env_name} in container {go_quote(c.name)} found", ("env", index, "value"), env_name)

    return per_container(rule)


check(
    "env-var-secret", "env-var", {"name": "(?i).*secret.*", "value": ".+"},
    severity=Severity.HIGH,
    kinds=WORKLOADS,
    description="Indicates when objects use a secret in an environment variable.",
    remediation=(
        "Do not use raw secrets in environment variables. Instead, either mount the secret as a file or use a secretKeyRef. "
        "Refer to https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets for details."
    ),
    fix=Fix.manual(
        "Moving the value into a Secret means creating one with the real value, which only its owner can do.",
        "move the value into a Secret and reference it with valueFrom.secretKeyRef",
    ),
)


# --- read-secret-from-env-var --------------------------------------------------------------


@template("read-secret-from-env-var")
def read_secret_from_env_var():
    def rule(c, obj):
        for index, env in _env(c):
            if as_dict(env.get("valueFrom")).get("secretKeyRef") is not None:
                yield Hit(
                    f"environment variable {go_quote(env.get('name', ''))} in container {go_quote(c.name)} uses SecretKeyRef",
                    ("env", index, "valueFrom", "secretKeyRef"),
                )

    return per_container(rule)


check(
    "read-secret-from-env-var", "read-secret-from-env-var",
    severity=Severity.LOW,
    kinds=WORKLOADS,
    kube_linter=KubeLinter.OPTIONAL,
    description=(
        "Indicates when a deployment reads secret from environment variables. CIS Benchmark 5.4.1: "
        '"Prefer using secrets as files over secrets as environment variables. "'
    ),
    remediation=(
        "If possible, rewrite application code to read secrets from mounted secret files, rather than from environment "
        "variables. Refer to https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets for details."
    ),
)
