"""bench: timings and agreement on a corpus, each measured side by side in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..contracts import Engine, write_json_atomic
from ..defaults import DEFAULT_CONFIG_PATH, DEFAULT_KUBE_VERSION
from ..manifests.context import ContextMode
from .app import bench_app
from .common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    ConfigOpt,
    ContextOpt,
    KubeconfigOpt,
    PathsArg,
    choose_checks,
    fail,
    load_settings,
    read_contract,
    stderr,
    stdout,
)


@bench_app.command("detect")
def bench_detect(
    paths: PathsArg,
    context: ContextOpt = ContextMode.DIR,
    repeat: Annotated[int, typer.Option("--repeat", help="Runs per engine; the best is reported.")] = 3,
    kube_linter: Annotated[bool, typer.Option("--kube-linter/--no-kube-linter", help="Also time the real kube-linter.")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the report as JSON.")] = None,
) -> None:
    """Time the built-in engine and `kube-linter lint` on the same input."""
    from ..bench.detect import bench_detect as run_bench

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
    all_checks: Annotated[bool, typer.Option("--all-checks", help="Every check kube-linter has, not only its default ones.")] = False,
) -> None:
    """Compare (file, object, check) triples of the built-in engine and kube-linter."""
    from ..bench.parity import ParityError, run_parity

    try:
        report = run_parity(paths, context, reference, stdout, all_checks)
    except ParityError as err:
        raise fail(str(err)) from None
    if out:
        write_json_atomic(out, report)
    raise typer.Exit(EXIT_CLEAN if report["ok"] else EXIT_FINDINGS)


@bench_app.command("fix")
def bench_fix_command(
    paths: PathsArg,
    context: ContextOpt = ContextMode.DIR,
    unsafe_fixes: Annotated[bool, typer.Option("--unsafe-fixes", help="Also apply `review` fixes.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the report as JSON.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    rescan: Annotated[
        Optional[list[Engine]], typer.Option("--rescan", help="Lint the input and a fixed copy with this real tool: kube-linter.")
    ] = None,
    checkov: Annotated[bool, typer.Option("--checkov", help="Run Checkov on the input and on the fixed copy; report what newly fails.")] = False,
    psa: Annotated[
        Optional[str], typer.Option("--psa", help="Dry-run each workload's pod before and after in a namespace enforcing this Pod Security level.")
    ] = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Time the fix pipeline on a corpus and report acceptance per check and rejections per gate;
    optionally let real tools judge a fixed copy (kube-linter, Checkov, Pod Security Admission)."""
    from ..bench.fix import Oracles, bench_fix
    from ..fix.engine import FixSettings
    from ..runner import RunnerOptions

    settings = load_settings(config)
    fix_settings = FixSettings.build(settings, {}, unsafe_fixes, DEFAULT_KUBE_VERSION, None)
    if psa not in (None, "restricted", "baseline"):
        raise fail("--psa takes restricted or baseline")
    oracles = Oracles(Engine.KUBE_LINTER in (rescan or ()), checkov, psa, str(kubeconfig) if kubeconfig else None)
    report = bench_fix(paths, choose_checks(settings), RunnerOptions(context=context), fix_settings, stdout, oracles)
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
    from ..bench.llm import bench_llm as run_bench
    from ..contracts import Detection

    found = read_contract(detections, Detection)[:limit]
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
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
) -> None:
    """Simulate a review queue on a corpus: the scheduler against FIFO and risk-only ordering."""
    from ..bench.scheduler import bench_scheduler, chart
    from ..detect import DetectOptions
    from ..run import RunOptions, run_pipeline

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
    stdout.print(table)
    stderr.print(f"{out / 'scheduler-bench.json'}, {out / 'scheduler-bench.png'}")
