"""The `k8s-auto-fix` command line: one thin command per pipeline stage."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .checks.selection import CheckSelectionError, select_checks
from .contracts import write_json_atomic
from .manifests.context import ContextMode
from .manifests.loader import DEFAULT_MAX_FILE_BYTES

app = typer.Typer(
    name="k8s-auto-fix",
    help="Find Kubernetes misconfigurations, propose minimal JSON Patches, verify them, write them back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(help="Benchmarks on a corpus: timings and agreement with kube-linter.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
llm_app = typer.Typer(help="Model endpoints: probe latency and sustainable concurrency.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")
risk_app = typer.Typer(help="Risk of each finding: severity, exposure, EPSS, KEV, Trivy.", no_args_is_help=False, invoke_without_command=True)
app.add_typer(risk_app, name="risk")
feeds_app = typer.Typer(help="Threat feeds (EPSS, KEV).", no_args_is_help=True)
risk_app.add_typer(feeds_app, name="feeds")
queue_app = typer.Typer(help="The persistent review queue (SQLite).", no_args_is_help=True)
app.add_typer(queue_app, name="queue")

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class OutputFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


class Engine(str, Enum):
    BUILTIN = "builtin"
    KUBE_LINTER = "kube-linter"


def fail(message: str) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {message}")
    return typer.Exit(EXIT_ERROR)


PathsArg = Annotated[list[str], typer.Argument(help="Files or folders (recursive; .yaml/.yml/.json), or - for stdin.")]
IncludeOpt = Annotated[Optional[list[str]], typer.Option("--include", help="Also run this check (repeatable).")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option("--exclude", help="Do not run this check (repeatable).")]
ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", help="kube-linter style config (checks: include/exclude/addAllBuiltIn/customChecks).")
]
ContextOpt = Annotated[
    ContextMode,
    typer.Option("--context", help="Application unit for cross-object checks: dir (kube-linter's) or file."),
]


@app.command()
def detect(
    paths: PathsArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the output here instead of stdout.")] = None,
    output_format: Annotated[
        Optional[OutputFormat], typer.Option("--format", "-f", help="table (default on a terminal), json or sarif.")
    ] = None,
    engine: Annotated[Engine, typer.Option("--engine", help="builtin, or the real kube-linter binary.")] = Engine.BUILTIN,
    context: ContextOpt = ContextMode.DIR,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    config: ConfigOpt = None,
    all_checks: Annotated[bool, typer.Option("--all-checks", help="Enable every check, not only the defaults.")] = False,
    embed_yaml: Annotated[bool, typer.Option("--embed-yaml", help="Put each object's YAML in manifest_yaml.")] = False,
    max_file_size: Annotated[int, typer.Option("--max-file-size", help="Skip files larger than this (bytes).")] = DEFAULT_MAX_FILE_BYTES,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes (0: one per core).")] = 0,
) -> None:
    """Find misconfigurations. Exit 0: none; 1: findings; 2: usage or input error."""
    from .detect import DetectOptions
    from .detect import detect as run_detect
    from .report import render

    try:
        checks = select_checks(include, exclude, config, all_checks)
    except CheckSelectionError as err:
        raise fail(str(err)) from None
    options = DetectOptions(context=context, max_file_bytes=max_file_size, embed_yaml=embed_yaml, jobs=jobs)
    if engine is Engine.KUBE_LINTER:
        from .engines.kube_linter import KubeLinterError, detect_with_kube_linter

        try:
            result = detect_with_kube_linter(paths, checks, options, config)
        except KubeLinterError as err:
            raise fail(str(err)) from None
    else:
        result = run_detect(paths, checks, options)

    for problem in result.problems:
        colour = {"error": "red", "warning": "yellow"}.get(problem.level, "dim")
        stderr.print(f"[{colour}]{problem.level}:[/{colour}] {problem}", soft_wrap=True)

    fmt = output_format or (OutputFormat.TABLE if out is None and sys.stdout.isatty() else OutputFormat.JSON)
    if out is not None:
        if fmt is OutputFormat.TABLE:
            fmt = OutputFormat.JSON
        write_json_atomic(out, render.payload(fmt.value, result, checks))
        stderr.print(render.summary_line(result))
    elif fmt is OutputFormat.TABLE:
        render.print_table(result, Console(highlight=False))
    else:
        render.print_json(render.payload(fmt.value, result, checks))

    if result.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FINDINGS if result.detections else EXIT_CLEAN)


@app.command("checks")
def list_checks(
    default_only: Annotated[bool, typer.Option("--default-only", help="Only the checks that run by default.")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """List the checks: id, severity, default, kube-linter status, scope."""
    from .checks import REGISTRY
    from .report import render

    checks = sorted((c for c in REGISTRY.values() if c.enabled_by_default or not default_only), key=lambda c: c.id)
    render.print_checks(checks, output_format.value, Console(highlight=False))


@bench_app.command("detect")
def bench_detect(
    paths: PathsArg,
    context: ContextOpt = ContextMode.DIR,
    repeat: Annotated[int, typer.Option("--repeat", help="Runs per engine; the best is reported.")] = 3,
    kube_linter: Annotated[bool, typer.Option("--kube-linter/--no-kube-linter", help="Also time the real kube-linter.")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the report as JSON.")] = None,
) -> None:
    """Time the built-in engine and `kube-linter lint` on the same input."""
    from .bench.detect import bench_detect as run_bench

    report = run_bench(paths, context, repeat, kube_linter, stderr)
    if out:
        write_json_atomic(out, report)


@bench_app.command("parity")
def bench_parity(
    paths: PathsArg,
    context: ContextOpt = ContextMode.DIR,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the comparison as JSON.")] = None,
    reference: Annotated[
        Optional[Path],
        typer.Option("--reference", help="Compare with a findings JSONL (path, check, message) instead of running kube-linter."),
    ] = None,
) -> None:
    """Compare (file, object, check) triples of the built-in engine and kube-linter."""
    from .bench.parity import ParityError, run_parity

    try:
        report = run_parity(paths, context, reference, Console(highlight=False))
    except ParityError as err:
        raise fail(str(err)) from None
    if out:
        write_json_atomic(out, report)
    raise typer.Exit(EXIT_CLEAN if report["ok"] else EXIT_FINDINGS)


class ProposeMode(str, Enum):
    RULES = "rules"
    GROK = "grok"
    VENDOR = "vendor"
    VLLM = "vllm"


class SchemaMode(str, Enum):
    OFFLINE = "offline"
    KUBECTL_VALIDATE = "kubectl-validate"
    SERVER = "server"


def load_settings(config: Path):
    """configs/run.yaml (the built-in defaults when the default file is absent)."""
    from .config import ConfigError, load_config

    try:
        return load_config(config if config.exists() or config != DEFAULT_CONFIG else None)
    except ConfigError as err:
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


DEFAULT_CONFIG = Path("configs/run.yaml")
ConfigFileOpt = Annotated[Path, typer.Option("--config", help="Run configuration (fix defaults, proposer, scheduler).")]


@app.command()
def propose(
    detections: Annotated[Path, typer.Option("--detections", "-d", help="detections.json from detect.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write patches.json.")] = Path("patches.json"),
    config: ConfigFileOpt = Path("configs/run.yaml"),
    mode: Annotated[
        Optional[ProposeMode], typer.Option("--mode", help="rules (deterministic), or a model: grok, vendor, vllm (default: the config's).")
    ] = None,
    image_pins: Annotated[Optional[Path], typer.Option("--image-pins", help="YAML/JSON map image -> pinned tag or digest.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Concurrent model requests.")] = 4,
) -> None:
    """Propose a JSON Patch (with its applicability) for every finding a check can fix."""
    from .contracts import ContractError, Detection, read_models, write_models
    from .propose.rules import propose_rules

    settings = load_settings(config)
    try:
        found = read_models(detections, Detection)
    except ContractError as err:
        raise fail(str(err)) from None
    chosen = (mode.value if mode else None) or settings.proposer.mode
    if chosen != "rules":
        _propose_with_model(chosen, settings, found, out, load_image_pins(image_pins), jobs)
        return
    result = propose_rules(found, settings.fixes, load_image_pins(image_pins))
    for warning in result.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {warning}")
    write_models(out, result.patches)
    with_ops = sum(1 for p in result.patches if p.patch or p.creates)
    stderr.print(
        f"{len(result.patches)} fix(es) for {len(found)} finding(s): {with_ops} with a patch, "
        f"{len(result.patches) - with_ops} manual; {sum(result.without_fix.values())} finding(s) of checks without a fix"
    )


def _propose_with_model(mode: str, settings, found, out: Path, pins: dict, jobs: int) -> None:
    from .contracts import write_models
    from .propose.llm.client import ModelError, client_for
    from .propose.llm.loop import propose_with_model

    try:
        client = client_for(settings, mode)
    except ModelError as err:
        raise fail(str(err)) from None
    try:
        result = propose_with_model(client, settings, found, mode, pins, jobs)
    finally:
        client.close()
    write_models(out, result.patches)
    stderr.print(result.summary(len(found), client.endpoint.model))


@app.command()
def verify(
    patches: Annotated[Path, typer.Option("--patches", "-p", help="patches.json from propose.")],
    detections: Annotated[Path, typer.Option("--detections", "-d", help="The detections the patches are for.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write verified.json.")] = Path("verified.json"),
    include_errors: Annotated[bool, typer.Option("--include-errors", help="Record each gate's reasons in `errors`.")] = False,
    schema: Annotated[SchemaMode, typer.Option("--schema", help="offline (default), kubectl-validate, or server (dry run).")] = SchemaMode.OFFLINE,
    kube_version: Annotated[str, typer.Option("--kube-version", help="Kubernetes version of the schemas.")] = "1.30",
    crds: Annotated[Optional[list[Path]], typer.Option("--crds", help="Folder or file of CRDs for custom resources (repeatable).")] = None,
    rescan: Annotated[Optional[str], typer.Option("--rescan", help="kube-linter: rescan patched objects with the real binary.")] = None,
    patched_yaml: Annotated[bool, typer.Option("--patched-yaml", help="Record each patched object as YAML in patched_yaml.")] = False,
) -> None:
    """Run every patch through the gates: apply, policy, regression, schema, safety (and rescan)."""
    from .checks.selection import select_checks
    from .contracts import (
        ContractError,
        Detection,
        PatchRecord,
        read_models,
        write_models,
    )
    from .verify.external import ExternalToolError
    from .verify.schema import SchemaSetupError
    from .verify.verifier import Verifier, VerifyOptions, verify_parallel

    if rescan not in (None, "kube-linter"):
        raise fail("--rescan takes kube-linter")
    try:
        found = read_models(detections, Detection)
        proposed = read_models(patches, PatchRecord)
    except ContractError as err:
        raise fail(str(err)) from None
    options = VerifyOptions(
        schema=schema.value,
        kube_version=kube_version,
        crd_paths=tuple(str(p) for p in crds or ()),
        rescan=rescan,
        include_errors=include_errors,
        include_yaml=patched_yaml,
    )
    try:
        if schema is SchemaMode.OFFLINE and rescan is None:
            result = verify_parallel(select_checks(), options, proposed, found)
        else:  # external tools run once, on the whole batch
            result = Verifier(select_checks(), options).verify(proposed, found)
    except (ExternalToolError, SchemaSetupError) as err:
        raise fail(str(err)) from None
    write_models(out, result.verdicts)
    accepted = sum(v.accepted for v in result.verdicts)
    stderr.print(f"{accepted}/{len(result.verdicts)} patch(es) accepted; {result.manual} manual fix(es) not verified")
    from .report.metrics import first_failed_gate

    for verdict in result.verdicts:
        if not verdict.accepted:
            stderr.print(f"rejected ({first_failed_gate(verdict)}): {verdict.policy_id} {verdict.id}")
    raise typer.Exit(EXIT_CLEAN if accepted == len(result.verdicts) else EXIT_FINDINGS)


@app.command()
def fix(
    paths: PathsArg,
    diff: Annotated[bool, typer.Option("--diff", help="Print a unified diff (the default); exit 1 if anything would change.")] = False,
    write: Annotated[bool, typer.Option("--write", help="Rewrite the files in place.")] = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Write fixed copies of the changed files here.")] = None,
    emit_kustomize: Annotated[Optional[Path], typer.Option("--emit-kustomize", help="Write a Kustomize overlay with the fixes here.")] = None,
    unsafe_fixes: Annotated[bool, typer.Option("--unsafe-fixes", help="Also apply `review` fixes.")] = False,
    select: Annotated[Optional[list[str]], typer.Option("--select", help="Only fix these checks (repeatable).")] = None,
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", help="Do not fix these checks (repeatable).")] = None,
    context: ContextOpt = ContextMode.DIR,
    config: ConfigFileOpt = Path("configs/run.yaml"),
    image_pins: Annotated[Optional[Path], typer.Option("--image-pins", help="YAML/JSON map image -> pinned tag or digest.")] = None,
    kube_version: Annotated[str, typer.Option("--kube-version", help="Kubernetes version of the schemas.")] = "1.30",
    crds: Annotated[Optional[list[Path]], typer.Option("--crds", help="Folder or file of CRDs for custom resources.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes (0: one per core).")] = 0,
) -> None:
    """Detect, propose and verify, then apply the verified fixes (safe ones unless --unsafe-fixes).

    Exit 0: nothing left to fix; 1: findings remain (or, without --write, files would change); 2: input error."""
    run = _run_fix(paths, unsafe_fixes, select, ignore, context, config, image_pins, kube_version, crds, jobs)
    for problem in run.detected.problems:
        if problem.level != "note":
            stderr.print(f"{problem.level}: {problem}", soft_wrap=True)
    for problem in run.problems:
        stderr.print(f"[yellow]warning:[/yellow] {problem}")
    from .fix.apply import unified_diff, write_in_place, write_to_folder

    if write:
        write_in_place(run)
    if out_dir:
        write_to_folder(run, out_dir, paths)
    if emit_kustomize:
        from .fix.kustomize import emit_kustomize as emit

        emit(run, emit_kustomize, list(paths))
    if diff or not (write or out_dir or emit_kustomize):
        sys.stdout.write(unified_diff(run))
    accepted = sum(v.accepted for v in run.verdicts)
    stderr.print(
        f"{run.fixed_findings} finding(s) fixed in {len(run.new_texts)} file(s); "
        f"{accepted}/{len(run.verdicts)} proposed patches verified; "
        f"{len(run.detected.detections)} finding(s) in total"
        + ("" if unsafe_fixes else " (review fixes need --unsafe-fixes)")
    )
    if run.detected.errors:
        raise typer.Exit(EXIT_ERROR)
    remaining = len(run.detected.detections) - run.fixed_findings
    raise typer.Exit(EXIT_FINDINGS if remaining or (run.new_texts and not write) else EXIT_CLEAN)


@bench_app.command("fix")
def bench_fix_command(
    paths: PathsArg,
    context: ContextOpt = ContextMode.DIR,
    unsafe_fixes: Annotated[bool, typer.Option("--unsafe-fixes", help="Also apply `review` fixes.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the report as JSON.")] = None,
) -> None:
    """Time the fix pipeline on a corpus and report acceptance per check and rejections per gate."""
    from .bench.fix import bench_fix

    checks, detect_options, settings = _fix_setup(unsafe_fixes, None, None, context, Path("configs/run.yaml"), None, "1.30", None, 0)
    report = bench_fix(paths, checks, detect_options, settings, Console(highlight=False))
    if out:
        write_json_atomic(out, report)


@bench_app.command("llm")
def bench_llm(
    detections: Annotated[Path, typer.Option("--detections", "-d", help="detections.json to propose fixes for.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Concurrent model requests.")] = 8,
    latency: Annotated[float, typer.Option("--latency", help="Seconds the local stub takes per answer.")] = 0.05,
    limit: Annotated[int, typer.Option("--limit", help="Use the first N detections.")] = 200,
) -> None:
    """Time `propose --mode vendor` against a local chat-completions stub (no network).

    The stub answers `[]`, which the guards refuse, so every finding uses all
    its attempts: the worst case for the request count."""
    from .bench.llm import bench_llm as run_bench
    from .contracts import ContractError, Detection, read_models

    try:
        found = read_models(detections, Detection)[:limit]
    except ContractError as err:
        raise fail(str(err)) from None
    stderr.print(run_bench(found, jobs, latency))


@bench_app.command("scheduler")
def bench_scheduler_command(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for scheduler-bench.json and scheduler-bench.png.")] = Path("bench-out"),
    context: ContextOpt = ContextMode.DIR,
    seed: Annotated[int, typer.Option("--seed")] = 1337,
    speed: Annotated[float, typer.Option("--speed", help="Reviewer speed: 1 means E[t] minutes per item.")] = 1.0,
    horizon: Annotated[float, typer.Option("--horizon-hours", help="Later arrivals spread over this many hours.")] = 24.0,
    start_share: Annotated[float, typer.Option("--start-share", help="Share of the items waiting at the start.")] = 0.5,
    config: ConfigFileOpt = Path("configs/run.yaml"),
) -> None:
    """Simulate a review queue on a corpus: the scheduler against FIFO and risk-only ordering."""
    from .bench.scheduler import bench_scheduler, chart
    from .detect import DetectOptions
    from .run import RunOptions, run_pipeline

    settings = load_settings(config)
    result = run_pipeline(paths, out / "run", RunOptions(settings, DetectOptions(context=context)))
    report = bench_scheduler(result["schedule"], settings.schedule, seed, start_share, horizon, speed)
    write_json_atomic(out / "scheduler-bench.json", report)
    chart(report, out / "scheduler-bench.png")
    table = Table(title=f"review queue simulation: {report['items']} fixes, {report['top_risk_items']} top-risk (seed {seed})")
    columns = ("top_mean_rank", "top_median_rank", "top_p95_rank", "top_mean_wait_h", "top_p95_wait_h", "rest_p95_wait_h", "throughput_per_h")
    table.add_column("policy")
    for column in columns:
        table.add_column(column, justify="right")
    for policy, row in report["policies"].items():
        table.add_row(policy, *(str(row[c]) for c in columns))
    Console(highlight=False).print(table)
    stderr.print(f"{out / 'scheduler-bench.json'}, {out / 'scheduler-bench.png'}")


def _run_fix(paths, unsafe_fixes, select, ignore, context, config, image_pins, kube_version, crds, jobs):
    from .fix.apply import run_fix

    checks, options, fix_settings = _fix_setup(unsafe_fixes, select, ignore, context, config, image_pins, kube_version, crds, jobs)
    return run_fix(paths, checks, options, fix_settings)


def _fix_setup(unsafe_fixes, select, ignore, context, config, image_pins, kube_version, crds, jobs):
    from .checks import REGISTRY
    from .detect import DetectOptions
    from .fix.engine import FixSettings

    unknown = [c for c in [*(select or []), *(ignore or [])] if c not in REGISTRY]
    if unknown:
        raise fail(f"unknown check(s): {', '.join(unknown)}")
    settings = FixSettings.build(load_settings(config), load_image_pins(image_pins), unsafe_fixes, kube_version, crds, select, ignore)
    return list(settings.checks), DetectOptions(context=context, jobs=jobs), settings


def _model_client(mode: str, config: Path, retries: int | None = None):
    from .propose.llm.client import ModelError, client_for

    settings = load_settings(config)
    try:
        return settings, client_for(settings, mode, retries)
    except ModelError as err:
        raise fail(str(err)) from None


@llm_app.command("probe")
def llm_probe(
    mode: Annotated[ProposeMode, typer.Option("--mode", help="grok, vendor or vllm.")] = ProposeMode.VENDOR,
    config: ConfigFileOpt = Path("configs/run.yaml"),
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", help="Stop growing here.")] = 16,
    rounds: Annotated[int, typer.Option("--rounds", help="Requests per level, per concurrent slot.")] = 2,
) -> None:
    """Measure latency per concurrency level and the highest level without 429s (JSON on stdout)."""
    from .propose.llm.probe import probe

    if mode is ProposeMode.RULES:
        raise fail("probe needs a model mode: grok, vendor or vllm")
    _, client = _model_client(mode.value, config, retries=0)
    try:
        from .report.render import print_json

        print_json(probe(client, max_concurrency, rounds))
    finally:
        client.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    mode: Annotated[ProposeMode, typer.Option("--mode", help="rules, or a model mode.")] = ProposeMode.RULES,
    config: ConfigFileOpt = Path("configs/run.yaml"),
    token_env: Annotated[str, typer.Option("--token-env", help="Environment variable holding the bearer token.")] = "K8S_AUTO_FIX_TOKEN",
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Refuse larger requests (413).")] = 1024 * 1024,
) -> None:
    """Serve the proposer over HTTP: POST /v1/propose, GET /healthz, GET /metrics."""
    import os

    import uvicorn

    from .propose.service import ServiceState, create_app

    token = os.environ.get(token_env)
    if not token:
        raise fail(f"serve needs a bearer token in ${token_env}")
    if mode is ProposeMode.RULES:
        settings, client = load_settings(config), None
    else:
        settings, client = _model_client(mode.value, config)
    state = ServiceState(settings, token, mode.value, client, max_body_bytes)
    uvicorn.run(create_app(state), host=host, port=port, log_level="warning")


@risk_app.callback()
def risk(
    ctx: typer.Context,
    detections: Annotated[Optional[Path], typer.Option("--detections", "-d", help="detections.json.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write risk.json.")] = Path("risk.json"),
    epss_csv: Annotated[Optional[Path], typer.Option("--epss-csv", help="FIRST EPSS CSV (plain or .gz).")] = None,
    kev_json: Annotated[Optional[Path], typer.Option("--kev-json", help="CISA KEV catalogue JSON.")] = None,
    trivy_report: Annotated[Optional[list[Path]], typer.Option("--trivy-report", help="`trivy image --format json` report (repeatable).")] = None,
) -> None:
    """Score each finding: severity, exposure, image vulnerabilities (EPSS), known exploitation (KEV)."""
    if ctx.invoked_subcommand is not None:
        return
    if detections is None:
        raise fail("risk needs --detections (or a subcommand: feeds fetch)")
    from .contracts import ContractError, Detection, read_models, write_models
    from .risk.feeds import FeedError
    from .risk.score import score_risk

    try:
        records = score_risk(read_models(detections, Detection), epss_csv, kev_json, trivy_report or ())
    except (ContractError, FeedError) as err:
        raise fail(str(err)) from None
    write_models(out, records)
    stderr.print(f"{len(records)} risk record(s); {sum(r.kev for r in records)} on known-exploited images")


@feeds_app.command("fetch")
def feeds_fetch(folder: Annotated[Path, typer.Option("--dir", help="Where to keep the feeds.")] = Path("data/feeds")) -> None:
    """Download EPSS and KEV (only what changed upstream)."""
    from .risk.feeds import FeedError, fetch_feeds

    try:
        for path in fetch_feeds(folder):
            stderr.print(f"{path}")
    except FeedError as err:
        raise fail(str(err)) from None


@app.command()
def schedule(
    verified: Annotated[Path, typer.Option("--verified", "-v", help="verified.json.")],
    detections: Annotated[Path, typer.Option("--detections", "-d", help="detections.json.")],
    risk_file: Annotated[Optional[Path], typer.Option("--risk", "-r", help="risk.json (R = 0.5 without it).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write schedule.json.")] = Path("schedule.json"),
    previous: Annotated[Optional[Path], typer.Option("--previous", help="An earlier schedule.json (keeps first-seen times for ageing).")] = None,
    config: ConfigFileOpt = Path("configs/run.yaml"),
) -> None:
    """Rank accepted fixes: S = R * p / E[t] + explore + alpha * wait + KEV."""
    from .contracts import ContractError, Detection, Verdict, read_models, write_models
    from .risk.score import RiskRecord
    from .schedule.score import ScheduleItem, build_schedule

    settings = load_settings(config)
    try:
        verdicts = read_models(verified, Verdict)
        known = {d.id for d in read_models(detections, Detection)}
        risks = read_models(risk_file, RiskRecord) if risk_file else []
        earlier = read_models(previous, ScheduleItem) if previous else []
    except ContractError as err:
        raise fail(str(err)) from None
    items = build_schedule([v for v in verdicts if v.id in known], risks, settings.schedule, earlier)
    write_models(out, items)
    stderr.print(f"{len(items)} item(s) scheduled")


def _queue(db: Path, create: bool = False, lease: float = 300.0):
    from .queue.store import Queue, QueueError

    try:
        return Queue(db, lease, create=create)
    except QueueError as err:
        raise fail(str(err)) from None


DbOpt = Annotated[Path, typer.Option("--db", help="The queue database.")]


@queue_app.command("init")
def queue_init(db: DbOpt = Path("queue.db")) -> None:
    """Create the queue (WAL mode); an existing queue is kept."""
    _queue(db, create=True).close()
    stderr.print(f"{db}: ready")


@queue_app.command("enqueue")
def queue_enqueue(
    db: DbOpt = Path("queue.db"),
    schedule_file: Annotated[Optional[Path], typer.Option("--schedule", help="schedule.json (scores).")] = None,
    verified: Annotated[Optional[Path], typer.Option("--verified", help="verified.json (accepted items, score 0).")] = None,
) -> None:
    """Add items; enqueueing the same items again changes nothing (idempotent)."""
    from .contracts import ContractError, Verdict, read_models
    from .queue.store import QueueError
    from .schedule.score import ScheduleItem

    try:
        if schedule_file:
            items = [i.model_dump() for i in read_models(schedule_file, ScheduleItem)]
        elif verified:
            items = [{"id": v.id, "policy_id": v.policy_id, "score": 0.0} for v in read_models(verified, Verdict) if v.accepted]
        else:
            raise fail("enqueue needs --schedule or --verified")
    except ContractError as err:
        raise fail(str(err)) from None
    queue = _queue(db, create=True)
    try:
        added, updated = queue.enqueue(items)
    except QueueError as err:
        raise fail(str(err)) from None
    stderr.print(f"{added} added, {updated} updated, {len(items) - added - updated} unchanged")


@queue_app.command("next")
def queue_next(
    db: DbOpt = Path("queue.db"),
    worker: Annotated[str, typer.Option("--worker", help="Who takes the lease.")] = "cli",
    lease: Annotated[float, typer.Option("--lease-seconds", help="Lease length.")] = 300.0,
) -> None:
    """Lease the highest-scored ready item (JSON on stdout; exit 1 when empty)."""
    from .report.render import print_json

    item = _queue(db, lease=lease).next(worker)
    if item is None:
        stderr.print("the queue is empty")
        raise typer.Exit(EXIT_FINDINGS)
    print_json(item)


def _queue_change(db: Path, action) -> None:
    from .queue.store import QueueError

    try:
        action(_queue(db))
    except QueueError as err:
        raise fail(str(err)) from None


@queue_app.command("ack")
def queue_ack(item: Annotated[str, typer.Argument(help="Item id.")], db: DbOpt = Path("queue.db"), worker: Annotated[str, typer.Option("--worker")] = "cli") -> None:
    """Mark a leased item done."""
    _queue_change(db, lambda q: q.ack(item, worker))


@queue_app.command("fail")
def queue_fail(
    item: Annotated[str, typer.Argument(help="Item id.")],
    db: DbOpt = Path("queue.db"),
    worker: Annotated[str, typer.Option("--worker")] = "cli",
    max_attempts: Annotated[int, typer.Option("--max-attempts")] = 3,
) -> None:
    """Give a leased item back (failed for good after --max-attempts)."""
    _queue_change(db, lambda q: stderr.print(q.fail(item, worker, max_attempts)))


@queue_app.command("requeue")
def queue_requeue(item: Annotated[str, typer.Argument(help="Item id.")], db: DbOpt = Path("queue.db")) -> None:
    """Put an item back in the ready state."""
    _queue_change(db, lambda q: q.requeue(item))


@queue_app.command("stats")
def queue_stats(db: DbOpt = Path("queue.db")) -> None:
    """Counts per state (JSON)."""
    from .report.render import print_json

    print_json(_queue(db).stats())


@app.command()
def metrics(
    detections: Annotated[Path, typer.Option("--detections", "-d")],
    patches: Annotated[Path, typer.Option("--patches", "-p")],
    verified: Annotated[Path, typer.Option("--verified", "-v")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("metrics.json"),
) -> None:
    """KPIs of a run: detections, patches, verified, accepted, auto-fix rate, failures per gate, per check."""
    from .contracts import ContractError, Detection, PatchRecord, Verdict, read_models
    from .report.metrics import pipeline_metrics

    try:
        data = pipeline_metrics(read_models(detections, Detection), read_models(patches, PatchRecord), read_models(verified, Verdict))
    except ContractError as err:
        raise fail(str(err)) from None
    write_json_atomic(out, data)
    stderr.print(f"{data['accepted']}/{data['detections']} findings auto-fixable (auto_fix_rate {data['auto_fix_rate']})")


@app.command("run")
def run_command(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for every artefact and report.html.")] = Path("out"),
    context: ContextOpt = ContextMode.DIR,
    config: ConfigFileOpt = Path("configs/run.yaml"),
    epss_csv: Annotated[Optional[Path], typer.Option("--epss-csv", help="FIRST EPSS CSV (plain or .gz).")] = None,
    kev_json: Annotated[Optional[Path], typer.Option("--kev-json", help="CISA KEV catalogue JSON.")] = None,
    trivy_report: Annotated[Optional[list[Path]], typer.Option("--trivy-report", help="Trivy JSON report (repeatable).")] = None,
    image_pins: Annotated[Optional[Path], typer.Option("--image-pins", help="YAML/JSON map image -> pinned tag or digest.")] = None,
    head: Annotated[int, typer.Option("--head", help="Queue items to print at the end.")] = 5,
) -> None:
    """detect -> propose -> verify -> risk -> schedule -> queue -> metrics, and report.html."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from .contracts import ContractError
    from .detect import DetectOptions
    from .queue.store import QueueError
    from .risk.feeds import FeedError
    from .run import RunOptions, run_pipeline

    settings = load_settings(config)
    options = RunOptions(settings, DetectOptions(context=context), epss_csv, kev_json, trivy_report or (), load_image_pins(image_pins))
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task("starting")
        try:
            result = run_pipeline(paths, out, options, lambda name: progress.update(task, description=name))
        except (ContractError, FeedError, QueueError) as err:
            raise fail(str(err)) from None
    for problem in result["problems"]:
        if problem.level != "note":
            stderr.print(f"{problem.level}: {problem}")
    from .report.render import print_run_summary

    print_run_summary(result, out, head, Console(highlight=False))


def main() -> None:
    app()
