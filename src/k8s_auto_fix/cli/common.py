"""What every command shares: exit codes, errors, and the options that mean
the same thing everywhere (paths, --config, the check selection, --context)."""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from ..contracts import ContractError, read_models
from ..defaults import DEFAULT_CONFIG_PATH
from ..manifests.context import ContextMode

if TYPE_CHECKING:
    from ..checks import Check
    from ..config import RunConfig

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False)

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def fail(message: str) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {message}")
    return typer.Exit(EXIT_ERROR)


PathsArg = Annotated[list[str], typer.Argument(help="Files or folders (recursive; .yaml/.yml/.json), or - for stdin.")]
ConfigOpt = Annotated[
    Path,
    typer.Option("--config", help="Run configuration: fix values, proposer, endpoints, scheduler, and checks (kube-linter's format)."),
]
ContextOpt = Annotated[
    ContextMode,
    typer.Option("--context", help="Application unit for cross-object checks: dir (kube-linter's) or file."),
]
IncludeOpt = Annotated[Optional[list[str]], typer.Option("--include", help="Also run this check (repeatable).")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option("--exclude", help="Do not run this check (repeatable).")]
AllChecksOpt = Annotated[bool, typer.Option("--all-checks", help="Enable every check, not only the defaults.")]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", help="Worker processes (0: one per core).")]


class Executor(str, Enum):
    LOCAL = "local"
    RAY = "ray"


ExecutorOpt = Annotated[
    Executor, typer.Option("--executor", help="Where the per-application work runs: local worker processes, or Ray tasks (pip install 'k8s-auto-fix[ray]').")
]
RayAddressOpt = Annotated[
    Optional[str], typer.Option("--ray-address", help="--executor ray: a running cluster (ray://host:10001 or host:6379); without it Ray starts locally.")
]


def runner_options(executor: Executor, ray_address: str | None, **others):
    """RunnerOptions from the command line (an address without --executor ray is a mistake, not a hint)."""
    from ..runner import RunnerOptions

    if ray_address and executor is not Executor.RAY:
        raise fail("--ray-address needs --executor ray")
    return RunnerOptions(executor=executor.value, ray_address=ray_address, **others)
ImagePinsOpt = Annotated[Optional[Path], typer.Option("--image-pins", help="YAML/JSON map image -> pinned tag or digest.")]
ImageFactsOpt = Annotated[
    Optional[list[Path]], typer.Option("--image-facts", help="YAML facts about images (user, write paths), over the shipped ones (repeatable).")
]
TrivyReportOpt = Annotated[Optional[list[Path]], typer.Option("--trivy-report", help="`trivy image --format json` report (repeatable).")]
KubeVersionOpt = Annotated[str, typer.Option("--kube-version", help="Kubernetes version of the schemas.")]
PoliciesOpt = Annotated[
    Optional[list[Path]], typer.Option("--policies", help="Folder or file of Kyverno policies (--engine kyverno) or ValidatingAdmissionPolicies (--engine vap); repeatable.")
]
CrdsOpt = Annotated[Optional[list[Path]], typer.Option("--crds", help="Folder or file of CRDs for custom resources (repeatable).")]
ValuesOpt = Annotated[
    Optional[list[Path]], typer.Option("--values", help="Helm chart input: a values file over the chart's own (repeatable, as `helm template --values`).")
]
ReleaseOpt = Annotated[
    str, typer.Option("--release", help="Helm chart input: the release name to render with (kube-linter's by default, so object names agree).")
]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Helm chart input: KEY=VALUE over the chart's values (repeatable, as `helm template --set`).")]
KubeconfigOpt = Annotated[
    Optional[Path], typer.Option("--kubeconfig", help="The API server for --schema server, --psa and --engine vap (default: $KUBECONFIG, then ~/.kube/config; bench fix --psa starts a throwaway one).")
]


def use_chart_values(values: list[Path] | None, set_values: list[str] | None, kube_version: str | None = None, release: str | None = None) -> None:
    """Render chart inputs with these values (set before anything is loaded)."""
    from ..manifests import helm

    for path in values or ():
        if not path.is_file():
            raise fail(f"{path}: no such values file")
    extra = ({"kube_version": kube_version} if kube_version else {}) | ({"release": release} if release else {})
    helm.configure(helm.HelmOptions(values=tuple(str(p) for p in values or ()), set_values=tuple(set_values or ()), **extra))


@contextmanager
def executor_errors():
    """Ray that is not installed or not reachable: one line and exit 2."""
    from ..runner.on_ray import RayUnavailable

    try:
        yield
    except RayUnavailable as err:
        raise fail(str(err)) from None
    except BrokenPipeError:
        raise
    except ConnectionError as err:  # ray.init: no cluster at --ray-address
        raise fail(f"--ray-address: cannot reach the Ray cluster ({err})") from None


def load_settings(config: Path = DEFAULT_CONFIG_PATH) -> RunConfig:
    """The run configuration (the built-in defaults when the default file is absent)."""
    from ..config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as err:
        raise fail(str(err)) from None


def choose_checks(
    settings: RunConfig,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    all_checks: bool = False,
    only: list[str] | None = None,
) -> list[Check]:
    """The checks to run: the configuration's selection, then the command line's."""
    from ..checks.selection import CheckSelectionError, select_checks

    try:
        return select_checks(include, exclude, settings.checks, settings.custom_checks, all_checks, only)
    except CheckSelectionError as err:
        raise fail(str(err)) from None


def load_image_pins(path: Path | None) -> dict[str, str]:
    """--image-pins: a YAML or JSON map from image (as written) to its pinned form."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise fail(f"{path}: cannot read image pins: {err}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise fail(f"{path}: image pins must map image strings to pinned image strings")
    return data


def load_image_facts(paths: list[Path] | None, trivy_reports: list[Path] | None = None):
    """The shipped image facts, the user's files over them, and the users Trivy reports."""
    from ..manifests.images import ImageFactsError, load_facts

    try:
        return load_facts(paths or (), trivy_reports or ())
    except ImageFactsError as err:
        raise fail(str(err)) from None


def read_contract(path: Path, model):
    """A stage's input file, or one clear error naming it."""
    try:
        return read_models(path, model)
    except ContractError as err:
        raise fail(str(err)) from None


class RecordFormat(str, Enum):
    JSON = "json"
    JSONL = "jsonl"


FormatOpt = Annotated[
    RecordFormat, typer.Option("--format", "-f", help="json (one array) or jsonl (JSON Lines, written as each application is done: memory stays flat).")
]


def write_records(out: Path, records, output_format: RecordFormat) -> None:
    from ..contracts import JsonLinesWriter, write_models

    if output_format is RecordFormat.JSONL:
        with JsonLinesWriter(out) as lines:
            lines.write(records)
    else:
        write_models(out, records)


@contextmanager
def contract_errors():
    """A bad line met while streaming: one line naming the file and line, exit 2."""
    try:
        yield
    except ContractError as err:
        raise fail(str(err)) from None


def print_problems(problems, skip_notes: bool = True) -> None:
    for problem in problems:
        if skip_notes and problem.level == "note":
            continue
        colour = {"error": "red", "warning": "yellow"}.get(problem.level, "dim")
        stderr.print(f"[{colour}]{problem.level}:[/{colour}] {problem}", soft_wrap=True)
