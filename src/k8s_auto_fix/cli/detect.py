"""detect and checks: find misconfigurations, list what is looked for."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..contracts import Engine, JsonLinesWriter, write_json_atomic
from ..defaults import DEFAULT_CONFIG_PATH
from ..manifests.context import ContextMode
from ..manifests.helm import RELEASE
from ..manifests.loader import DEFAULT_MAX_FILE_BYTES
from .app import app
from .common import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FINDINGS,
    AllChecksOpt,
    ConfigOpt,
    ContextOpt,
    ExcludeOpt,
    Executor,
    ExecutorOpt,
    IncludeOpt,
    JobsOpt,
    KubeconfigOpt,
    PathsArg,
    PoliciesOpt,
    RayAddressOpt,
    ReleaseOpt,
    SetOpt,
    ValuesOpt,
    choose_checks,
    executor_errors,
    fail,
    load_settings,
    print_problems,
    runner_options,
    stderr,
    stdout,
    use_chart_values,
)


class OutputFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    JSONL = "jsonl"


@app.command()
def detect(
    paths: PathsArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the output here instead of stdout.")] = None,
    output_format: Annotated[
        Optional[OutputFormat],
        typer.Option("--format", "-f", help="table (default on a terminal), json, sarif, or jsonl (JSON Lines, streamed per application as it is done)."),
    ] = None,
    engine: Annotated[Engine, typer.Option("--engine", help="builtin, the real kube-linter binary, kyverno or vap (with --policies).")] = Engine.BUILTIN,
    policies: PoliciesOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = ContextMode.DIR,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    all_checks: AllChecksOpt = False,
    embed_yaml: Annotated[bool, typer.Option("--embed-yaml", help="Put each object's YAML in manifest_yaml.")] = False,
    max_file_size: Annotated[int, typer.Option("--max-file-size", help="Skip files larger than this (bytes).")] = DEFAULT_MAX_FILE_BYTES,
    jobs: JobsOpt = 0,
    executor: ExecutorOpt = Executor.LOCAL,
    ray_address: RayAddressOpt = None,
    values: ValuesOpt = None,
    set_values: SetOpt = None,
    release: ReleaseOpt = RELEASE,
    baseline: Annotated[
        Optional[Path], typer.Option("--baseline", help="Report only findings absent from this saved detect JSON or SARIF (by their stable ids).")
    ] = None,
) -> None:
    """Find misconfigurations. Exit 0: none; 1: findings; 2: usage or input error."""
    from ..detect import DetectOptions
    from ..detect import detect as run_detect
    from ..engines import VapError
    from ..engines.kube_linter import KubeLinterError
    from ..engines.kyverno import KyvernoError
    from ..report import render
    from ..report.baseline import BaselineError, baseline_ids, without_baseline

    checks = choose_checks(load_settings(config), include, exclude, all_checks)
    use_chart_values(values, set_values, release=release)
    try:
        known = baseline_ids(baseline) if baseline is not None else None
    except BaselineError as err:
        raise fail(str(err)) from None
    runner = runner_options(executor, ray_address)
    options = DetectOptions(
        context=context,
        max_file_bytes=max_file_size,
        embed_yaml=embed_yaml,
        jobs=jobs,
        engine=engine,
        policies=tuple(str(p) for p in policies or ()),
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        executor=runner.executor,
        ray_address=runner.ray_address,
    )
    if output_format is OutputFormat.JSONL and engine is Engine.BUILTIN:
        _detect_streaming(paths, checks, options, out, known)
    try:
        with executor_errors():
            result = run_detect(paths, checks, options)
    except (KubeLinterError, KyvernoError, VapError) as err:
        raise fail(str(err)) from None
    print_problems(result.problems, skip_notes=False)
    if result.errors and not result.files:
        raise typer.Exit(EXIT_ERROR)  # nothing could be read: the errors say it all (an empty list would read as clean)
    if known is not None:
        result, left_out = without_baseline(result, known)
        stderr.print(f"{left_out} finding(s) already in the baseline {baseline} left out")

    fmt = output_format or (OutputFormat.TABLE if out is None and sys.stdout.isatty() else OutputFormat.JSON)
    if out is not None:
        if fmt is OutputFormat.TABLE:
            fmt = OutputFormat.JSON
        if fmt is OutputFormat.JSONL:
            with JsonLinesWriter(out) as lines:
                lines.write(result.detections)
        else:
            write_json_atomic(out, render.payload(fmt.value, result, checks))
        stderr.print(render.summary_line(result))
    elif fmt is OutputFormat.TABLE:
        render.print_table(result, stdout)
    elif fmt is OutputFormat.JSONL:
        with JsonLinesWriter(None) as lines:
            lines.write(result.detections)
    else:
        render.print_json(render.payload(fmt.value, result, checks))

    if result.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FINDINGS if result.detections else EXIT_CLEAN)


def _detect_streaming(paths, checks, options, out: Path | None, known: set[str] | None = None) -> None:
    """detect --format jsonl: each application's detections are written as it is
    done, in input order, and dropped; only counts and problems are kept."""
    from ..streamed import detect_jsonl

    with executor_errors():
        tally = detect_jsonl(paths, checks, options, out, known)
    print_detect_tally(tally, baseline=known is not None)
    if tally.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FINDINGS if tally.findings else EXIT_CLEAN)


def print_detect_tally(tally, baseline: bool = False) -> None:
    """A streamed detect's problems and summary line (as detect prints them)."""
    from ..contracts import DetectResult
    from ..report import render

    summary = DetectResult.model_construct(detections=[], problems=tally.problems, files=tally.files, objects=tally.objects)
    print_problems(tally.problems, skip_notes=False)
    if baseline:
        stderr.print(f"{tally.in_baseline} finding(s) already in the baseline left out")
    stderr.print(render.summary_line(summary).replace("0 finding(s)", f"{tally.findings} finding(s)", 1))


@app.command("checks")
def list_checks(
    default_only: Annotated[bool, typer.Option("--default-only", help="Only the checks that run by default.")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json.")] = OutputFormat.TABLE,
) -> None:
    """List the checks: id, severity, default, kube-linter status, object kinds, fix."""
    from ..checks import REGISTRY
    from ..report import render

    checks = sorted((c for c in REGISTRY.values() if c.enabled_by_default or not default_only), key=lambda c: c.id)
    render.print_checks(checks, output_format.value, stdout)
