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


@bench_app.command("policy")
def bench_policy_command(
    paths: PathsArg,
    policies: Annotated[list[Path], typer.Option("--policies", help="A folder of Kyverno policies: one set of the report (repeatable).")],
    context: ContextOpt = ContextMode.DIR,
    sample: Annotated[int, typer.Option("--sample", help="Objects timed with one CLI run each (what batching saves).")] = 10,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the report as JSON.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
) -> None:
    """Kyverno's policies as the detector on a copy of PATH: findings per rule, fixes proposed, accepted
    and manual, failures before and after `fix --write --unsafe-fixes` (and new ones), time per object."""
    from ..bench.policy import bench_policy
    from ..engines.kyverno import KyvernoError
    from ..fix.engine import FixSettings
    from ..runner import RunnerOptions
    from ..verify.external import ExternalToolError

    settings = load_settings(config)
    folders = tuple(str(p) for p in policies)
    fix_settings = FixSettings.build(settings, {}, True, DEFAULT_KUBE_VERSION, None, None, folders)
    try:
        report = bench_policy(paths, folders, choose_checks(settings), RunnerOptions(context=context), fix_settings, stdout, sample)
    except (KyvernoError, ExternalToolError) as err:
        raise fail(str(err)) from None
    if out:
        write_json_atomic(out, report)


@bench_app.command("scaling")
def bench_scaling_command(
    items: Annotated[int, typer.Option("--items", help="Items of the smallest List.")] = 2500,
    factors: Annotated[str, typer.Option("--factors", help="Sizes, as multiples of --items.")] = "1,2,4",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the report as JSON.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
) -> None:
    """Time `fix --diff` on generated `kind: List` files of 1x, 2x and 4x items (linear cost: ratios near 1, 2, 4)."""
    from ..bench.scaling import bench_scaling
    from ..fix.engine import FixSettings

    try:
        multiples = [int(f) for f in factors.split(",")]
    except ValueError:
        raise fail(f"--factors {factors!r}: comma-separated whole numbers, like 1,2,4") from None
    settings = load_settings(config)
    fix_settings = FixSettings.build(settings, {}, False, DEFAULT_KUBE_VERSION, None)
    report = bench_scaling(items, multiples, choose_checks(settings), fix_settings, stdout)
    if out:
        write_json_atomic(out, report)


@bench_app.command("scale")
def bench_scale_command(
    corpus: Annotated[Path, typer.Argument(help="The corpus to replicate (default: ../shared/corpus).")] = Path("../shared/corpus"),
    factors: Annotated[str, typer.Option("--factors", help="Replica counts.")] = "1,2,4,8",
    executors: Annotated[str, typer.Option("--executors", help="Executors to compare: local, ray.")] = "local,ray",
    stages: Annotated[str, typer.Option("--stages", help="Stages to run, in order: detect, propose, verify (as one `run --format jsonl --until` the last).")] = "detect,propose,verify",
    workers: Annotated[int, typer.Option("--workers", help="Worker processes, or the CPUs of the Ray cluster the bench starts.")] = 2,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs of each size, in rounds; the fastest is reported.")] = 2,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for scale.json and scale.png.")] = Path("bench-out"),
) -> None:
    """Wall time, time per object and peak RSS on 1x..8x replicas of the corpus (renamed objects), local and Ray, with JSON Lines."""
    from ..bench.scale import bench_scale, print_scale, scale_chart

    try:
        multiples = [int(f) for f in factors.split(",")]
    except ValueError:
        raise fail(f"--factors {factors!r}: comma-separated whole numbers, like 1,2,4,8") from None
    chosen, order = stages.split(","), ["detect", "propose", "verify"]
    if not chosen or any(s not in order for s in chosen) or chosen != order[: len(chosen)]:
        raise fail(f"--stages {stages!r}: detect, then propose, then verify (a prefix of detect,propose,verify)")
    names = executors.split(",")
    if any(e not in ("local", "ray") for e in names):
        raise fail(f"--executors {executors!r}: local and/or ray")
    if not corpus.is_dir():
        raise fail(f"{corpus}: not a folder")
    report = bench_scale(corpus, multiples, names, chosen, workers, stderr, repeat)
    print_scale(report, stdout)
    write_json_atomic(out / "scale.json", report)
    scale_chart(report, out / "scale.png")
    stderr.print(f"{out / 'scale.json'}, {out / 'scale.png'}")


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
    seeds: Annotated[
        Optional[list[int]], typer.Option("--seed", help="Seed of the simulated world (default 1337; repeatable: the first in full, all in a summary).")
    ] = None,
    reviewers: Annotated[Optional[list[int]], typer.Option("--reviewers", help="Reviewers working the queue (repeatable; default 1 and 3).")] = None,
    load: Annotated[float, typer.Option("--load", help="The share of the reviewers' time all the fixes' reviews take over the horizon.")] = 0.9,
    start_share: Annotated[float, typer.Option("--start-share", help="Share of the manifest files whose fixes wait at the start.")] = 0.5,
    round_hours: Annotated[float, typer.Option("--round-hours", help="Hours between two schedules (learning, rejected fixes coming back).")] = 8.0,
    alphas: Annotated[Optional[list[float]], typer.Option("--alpha", help="alpha values for the fairness table, at the configured ageing_threshold (repeatable).")] = None,
    thresholds: Annotated[
        Optional[list[float]], typer.Option("--ageing-threshold", help="ageing_threshold values for the fairness table, at the configured alpha (repeatable).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
) -> None:
    """Simulate a review queue on a corpus's fixes: risk-hours and waits of FIFO, risk-only,
    shortest-first, the scheduler (static and learning) and an oracle; the ageing trade-off."""
    from ..bench.scheduler import ALPHAS, EXPLORES, THRESHOLDS, ageing_settings, bench_scheduler, chart, fixes_of, seed_summary
    from ..detect import DetectOptions
    from ..run import RunOptions, run_pipeline

    if load <= 0 or not 0 <= start_share <= 1 or round_hours <= 0 or any(k < 1 for k in reviewers or ()):
        raise fail("--load and --round-hours must be positive, --start-share within 0..1, --reviewers at least 1")
    settings = load_settings(config)
    result = run_pipeline(paths, out / "run", RunOptions(settings, DetectOptions(context=context)))
    fixes = fixes_of(result["schedule"], result["detections"], result["risks"])
    if not fixes:
        raise fail("no accepted fix to schedule in these paths")
    seeds = seeds or [1337]
    ageing = ageing_settings(settings.schedule, alphas or ALPHAS, thresholds or THRESHOLDS)
    report = bench_scheduler(fixes, settings.schedule, seeds[0], reviewers or (1, 3), load, start_share, round_hours, ageing, EXPLORES)
    if len(seeds) > 1:
        others = [bench_scheduler(fixes, settings.schedule, seed, reviewers or (1, 3), load, start_share, round_hours, ageing, ()) for seed in seeds[1:]]
        report["seeds"] = [row for one in [report, *others] for row in seed_summary(one)]
    write_json_atomic(out / "scheduler-bench.json", report)
    chart(report, out / "scheduler-bench.png")
    _print_scheduler_bench(report)
    stderr.print(f"{out / 'scheduler-bench.json'}, {out / 'scheduler-bench.png'}")


def _hours(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _print_scheduler_bench(report: dict) -> None:
    truth = report["truth"]
    stdout.print(
        f"{report['fixes']:,} fixes, seed {report['seed']}, load {report['load']}, {report['start_share']:.0%} of the files waiting at the start, "
        f"a schedule every {report['round_hours']:g} h; reviewers accept {min(truth['accept_rate'].values()):.2f}-{max(truth['accept_rate'].values()):.2f} "
        f"per check (static prior {truth['mean_prior_p']:.3f}); CVE on {truth['cve_image']} ({truth['cve_fixes']} fixes); "
        f"ageing alpha {report['alpha']:g} past T, ageing_threshold {report['ageing_threshold']:g}"
    )
    for k, data in report["reviewers"].items():
        table = Table(title=f"{k} reviewer(s), horizon {_hours(data['horizon_h'])} h: risk-hours and waits (hours)")
        for column in ("policy", "risk-hours", "xFIFO", "mergeable xFIFO", "50% gone", "90% gone", "P50", "P95", "top P50", "top P95", "longest"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for policy, row in data["policies"].items():
            table.add_row(
                policy, _hours(row["risk_hours"]), f"{row['ratio_to_fifo']:.3f}", f"{row['ratio_to_fifo_mergeable']:.3f}", _hours(row["t50_h"]),
                _hours(row["t90_h"]), _hours(row["wait_p50_h"]), _hours(row["wait_p95_h"]), _hours(row["top_wait_p50_h"]),
                _hours(row["top_wait_p95_h"]), _hours(row["longest_wait_h"]),
            )
        stdout.print(table)
        learning = Table(title=f"{k} reviewer(s): learning p and E\\[t] from the reviews, cumulative risk-hours")
        for column in ("after (h)", "rounds", "static", "scheduler", "oracle", "gap closed", "estimate error"):
            learning.add_column(column, justify="right")
        for row in data["learning"]:
            closed = "-" if row["gap_closed"] is None else f"{row['gap_closed']:.2f}"
            learning.add_row(_hours(row["t_h"]), str(row["rounds"]), _hours(row["static"]), _hours(row["scheduler"]), _hours(row["oracle"]), closed,
                             f"{row['estimate_error']:.3f}")
        stdout.print(learning)
        ageing = Table(title=f"{k} reviewer(s): ageing against risk-hours and the longest wait (FIFO's: {_hours(data['policies']['fifo']['longest_wait_h'])} h)")
        for column in ("alpha", "ageing threshold", "risk-hours", "x FIFO", "P95 wait", "longest wait", "x FIFO's", "L max", "bound"):
            ageing.add_column(column, justify="right")
        for row in data["ageing"]:
            ageing.add_row(f"{row['alpha']:g}", f"{row['ageing_threshold']:g}", _hours(row["risk_hours"]), f"{row['ratio_to_fifo']:.3f}",
                           _hours(row["wait_p95_h"]), _hours(row["longest_wait_h"]), f"{row['longest_wait_x_fifo']:.2f}", _hours(row["L_max_h"]),
                           _hours(row["wait_bound_h"]))
        stdout.print(ageing)
        explore = ", ".join(f"{row['explore']:g}: {row['ratio_to_fifo']:.3f}" for row in data["explore"])
        stdout.print(f"explore weight -> risk-hours x FIFO: {explore}")
        for name, target in data["targets"].items():
            stdout.print(f"  {'met' if target['met'] else 'NOT MET':8} {name}: {target['value']} (target {target['target']})")
    stdout.print(f"smallest ageing_threshold (alpha {report['alpha']:g}) meeting risk-hours <= {report['target_ratio']} x FIFO's for every number of reviewers: "
                 f"{report['fairest_on_target']}")
    if "seeds" in report:
        table = Table(title="every seed: risk-hours x FIFO (scheduler as configured and without ageing), gap closed, longest wait x FIFO's, smallest threshold on target")
        columns = ("seed", "reviewers", "risk", "shortest", "static", "scheduler", "oracle", "scheduler_alpha_0", "gap_closed", "longest_wait_x_fifo",
                   "fairest_on_target")
        for column in columns:
            table.add_column(column.replace("_", " "), justify="right")
        for row in report["seeds"]:
            table.add_row(*(str(row[c]) if c in ("seed", "reviewers", "fairest_on_target") or row[c] is None else f"{row[c]:.3f}" for c in columns))
        stdout.print(table)
