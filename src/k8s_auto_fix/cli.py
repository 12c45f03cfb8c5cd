"""The `k8s-auto-fix` command line: one thin command per pipeline stage."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

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


def main() -> None:
    app()
