"""risk, schedule, queue, metrics and run: ranking verified fixes for review, and the whole pipeline."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..contracts import write_json_atomic
from ..defaults import DEFAULT_CONFIG_PATH
from ..manifests.context import ContextMode
from ..manifests.helm import RELEASE
from .app import app, feeds_app, queue_app, risk_app
from .common import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    AllChecksOpt,
    ConfigOpt,
    ContextOpt,
    ExcludeOpt,
    Executor,
    ExecutorOpt,
    FormatOpt,
    ImageFactsOpt,
    IncludeOpt,
    JobsOpt,
    RayAddressOpt,
    RecordFormat,
    ReleaseOpt,
    SetOpt,
    ValuesOpt,
    choose_checks,
    executor_errors,
    fail,
    load_image_facts,
    load_image_pins,
    load_settings,
    print_problems,
    read_contract,
    runner_options,
    stderr,
    stdout,
    use_chart_values,
)


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
    from ..contracts import ContractError, Detection, read_models, write_models
    from ..risk.feeds import FeedError
    from ..risk.score import score_risk

    try:
        records = score_risk(read_models(detections, Detection), epss_csv, kev_json, trivy_report or ())
    except (ContractError, FeedError) as err:
        raise fail(str(err)) from None
    write_models(out, records)
    stderr.print(f"{len(records)} risk record(s); {sum(r.kev for r in records)} on known-exploited images")


@feeds_app.command("fetch")
def feeds_fetch(folder: Annotated[Path, typer.Option("--dir", help="Where to keep the feeds.")] = Path("data/feeds")) -> None:
    """Download EPSS and KEV (only what changed upstream)."""
    from ..risk.feeds import FeedError, fetch_feeds

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
    history: Annotated[
        Optional[str], typer.Option("--history", help="A queue (path or URL, as --queue) whose reviews (ack: accepted, fail: rejected, with their times) update p and E[t].")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
) -> None:
    """Rank accepted fixes: S = R * p / E[t] + explore + alpha * max(0, wait - T) + KEV (T: the fix's slack, from the backlog)."""
    from ..contracts import Detection, RiskRecord, ScheduleItem, Verdict, write_models
    from ..schedule.score import build_schedule

    settings = load_settings(config)
    verdicts = read_contract(verified, Verdict)
    known = {d.id for d in read_contract(detections, Detection)}
    risks = read_contract(risk_file, RiskRecord) if risk_file else []
    earlier = read_contract(previous, ScheduleItem) if previous else []
    reviews = _reviews(history) if history else []
    items = build_schedule([v for v in verdicts if v.id in known], risks, settings.schedule, earlier, history=reviews)
    write_models(out, items)
    learned = f", p and E[t] learned from {len(reviews)} review(s)" if history else ""
    stderr.print(f"{len(items)} item(s) scheduled{learned}")


def _reviews(db: str):
    queue = _queue(db)
    try:
        return queue.reviews()
    finally:
        queue.close()


def _queue(db: str, create: bool = False, lease: float = 300.0):
    from ..queue import open_queue
    from ..queue.base import QueueError

    try:
        return open_queue(db, lease, create=create)
    except QueueError as err:
        raise fail(str(err)) from None


class FirstStage(str, Enum):
    DETECT = "detect"
    PROPOSE = "propose"
    VERIFY = "verify"


QUEUE_HELP = "The queue: sqlite:///path (a file; a plain path works too) or postgresql://user@host:port/db (a shared server). --db is an alias."
DbOpt = Annotated[str, typer.Option("--queue", "--db", help=QUEUE_HELP)]


@queue_app.command("init")
def queue_init(db: DbOpt = "queue.db") -> None:
    """Create the queue (WAL mode); an existing queue is kept."""
    from ..queue.base import queue_location

    _queue(db, create=True).close()
    stderr.print(f"{queue_location(db).shown}: ready")


@queue_app.command("enqueue")
def queue_enqueue(
    db: DbOpt = "queue.db",
    schedule_file: Annotated[Optional[Path], typer.Option("--schedule", help="schedule.json (scores).")] = None,
    verified: Annotated[Optional[Path], typer.Option("--verified", help="verified.json (accepted items, score 0).")] = None,
) -> None:
    """Add items; enqueueing the same items again changes nothing (idempotent)."""
    from ..contracts import ScheduleItem, Verdict
    from ..queue.base import QueueError

    if schedule_file:
        items = [i.model_dump() for i in read_contract(schedule_file, ScheduleItem)]
    elif verified:
        items = [{"id": v.id, "policy_id": v.policy_id, "score": 0.0} for v in read_contract(verified, Verdict) if v.accepted]
    else:
        raise fail("enqueue needs --schedule or --verified")
    queue = _queue(db, create=True)
    try:
        added, updated = queue.enqueue(items)
    except QueueError as err:
        raise fail(str(err)) from None
    stderr.print(f"{added} added, {updated} updated, {len(items) - added - updated} unchanged")


@queue_app.command("next")
def queue_next(
    db: DbOpt = "queue.db",
    worker: Annotated[Optional[str], typer.Option("--worker", help="Who takes the lease (default: host:pid:random, unique).")] = None,
    lease: Annotated[float, typer.Option("--lease-seconds", help="Lease length.")] = 300.0,
) -> None:
    """Lease the highest-scored ready item (JSON on stdout, with the `owner` to give
    ack or fail). Exit 0: an item; 1: the queue is empty; 2: the queue cannot be used."""
    from ..queue.base import QueueError, default_worker_id
    from ..report.render import print_json

    try:
        item = _queue(db, lease=lease).next(worker or default_worker_id())
    except QueueError as err:
        raise fail(str(err)) from None
    if item is None:
        stderr.print("the queue is empty")
        raise typer.Exit(EXIT_FINDINGS)
    print_json(item)


def _queue_change(db: Path, action) -> None:
    from ..queue.base import QueueError

    try:
        action(_queue(db))
    except QueueError as err:
        raise fail(str(err)) from None


WorkerOpt = Annotated[str, typer.Option("--worker", help="The lease's owner, as `next` printed it.")]


@queue_app.command("ack")
def queue_ack(item: Annotated[str, typer.Argument(help="Item id.")], worker: WorkerOpt, db: DbOpt = "queue.db") -> None:
    """The fix was accepted: mark the leased item done (the outcome and the review time are recorded); refused when the lease has moved to another worker."""
    _queue_change(db, lambda q: q.ack(item, worker))


@queue_app.command("fail")
def queue_fail(
    item: Annotated[str, typer.Argument(help="Item id.")],
    worker: WorkerOpt,
    db: DbOpt = "queue.db",
    max_attempts: Annotated[int, typer.Option("--max-attempts")] = 3,
) -> None:
    """The fix was rejected: give the leased item back for a revised fix (failed for good after --max-attempts); recorded like ack."""
    _queue_change(db, lambda q: stderr.print(q.fail(item, worker, max_attempts)))


@queue_app.command("requeue")
def queue_requeue(item: Annotated[str, typer.Argument(help="Item id.")], db: DbOpt = "queue.db") -> None:
    """Put an item back in the ready state."""
    _queue_change(db, lambda q: q.requeue(item))


@queue_app.command("stats")
def queue_stats(db: DbOpt = "queue.db") -> None:
    """Counts per state (JSON)."""
    from ..queue.base import QueueError
    from ..report.render import print_json

    try:
        print_json(_queue(db).stats())
    except QueueError as err:
        raise fail(str(err)) from None


@app.command()
def metrics(
    detections: Annotated[Path, typer.Option("--detections", "-d")],
    patches: Annotated[Path, typer.Option("--patches", "-p")],
    verified: Annotated[Path, typer.Option("--verified", "-v")],
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("metrics.json"),
) -> None:
    """KPIs of a run: detections, patches, verified, accepted, auto-fix rate, failures per gate, per check."""
    from ..contracts import Detection, PatchRecord, Verdict
    from ..report.metrics import pipeline_metrics

    data = pipeline_metrics(read_contract(detections, Detection), read_contract(patches, PatchRecord), read_contract(verified, Verdict))
    write_json_atomic(out, data)
    stderr.print(f"{data['accepted']}/{data['detections']} findings auto-fixable (auto_fix_rate {data['auto_fix_rate']})")


@app.command("run")
def run_command(
    paths: Annotated[Optional[list[str]], typer.Argument(help="Files or folders (recursive; .yaml/.yml/.json), or - for stdin.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for every artefact and report.html.")] = Path("out"),
    context: ContextOpt = ContextMode.DIR,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    epss_csv: Annotated[Optional[Path], typer.Option("--epss-csv", help="FIRST EPSS CSV (plain or .gz).")] = None,
    kev_json: Annotated[Optional[Path], typer.Option("--kev-json", help="CISA KEV catalogue JSON.")] = None,
    trivy_report: Annotated[Optional[list[Path]], typer.Option("--trivy-report", help="Trivy JSON report (repeatable).")] = None,
    image_pins: Annotated[Optional[Path], typer.Option("--image-pins", help="YAML/JSON map image -> pinned tag or digest.")] = None,
    image_facts: ImageFactsOpt = None,
    head: Annotated[int, typer.Option("--head", help="Queue items to print at the end.")] = 5,
    queue: Annotated[Optional[str], typer.Option("--queue", help="Enqueue into this queue (sqlite:///path or postgresql://...) instead of OUT/queue.db.")] = None,
    executor: ExecutorOpt = Executor.LOCAL,
    ray_address: RayAddressOpt = None,
    jobs: JobsOpt = 0,
    output_format: FormatOpt = RecordFormat.JSON,
    until: Annotated[
        Optional[FirstStage], typer.Option("--until", help="Stop after this stage (with --format jsonl, memory stays flat however large the input).")
    ] = None,
    inputs: Annotated[
        Optional[Path], typer.Option("--inputs", help="A file naming folders or git repositories, one a line: all in one run, with a summary per input (inputs.json).")
    ] = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    all_checks: AllChecksOpt = False,
    values: ValuesOpt = None,
    set_values: SetOpt = None,
    release: ReleaseOpt = RELEASE,
) -> None:
    """detect -> propose -> verify -> risk -> schedule -> queue -> metrics, and report.html (--until: only the first stages)."""
    import tempfile

    from rich.progress import Progress, SpinnerColumn, TextColumn

    from ..contracts import ContractError
    from ..detect import DetectOptions
    from ..inputs import InputsError, resolve_inputs, summarise
    from ..queue.base import QueueError
    from ..risk.feeds import FeedError
    from ..run import RunOptions, run_pipeline

    if not paths and inputs is None:
        raise fail("run needs PATH... or --inputs LIST")
    settings = load_settings(config)
    checks = choose_checks(settings, include, exclude, all_checks)
    use_chart_values(values, set_values, release=release)
    facts = load_image_facts(image_facts, trivy_report)
    scratch = tempfile.TemporaryDirectory(prefix="k8s-auto-fix-inputs-")
    listed = []
    if inputs is not None:
        try:
            listed = resolve_inputs(inputs, Path(scratch.name))
        except InputsError as err:
            raise fail(str(err)) from None
    paths = list(paths or []) + [s.path for s in listed if s.status == "ok"]
    if not paths:
        raise fail(f"{inputs}: no input could be used: " + "; ".join(s.message for s in listed))
    runner = runner_options(executor, ray_address)
    detect_options = DetectOptions(context=context, jobs=jobs, executor=runner.executor, ray_address=runner.ray_address)
    options = RunOptions(
        settings, detect_options, epss_csv, kev_json, trivy_report or (), load_image_pins(image_pins), checks, facts, queue,
        record_format=output_format.value, until=until.value if until else None,
    )
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task("starting")
        try:
            with executor_errors():
                result = run_pipeline(paths, out, options, lambda name: progress.update(task, description=name))
        except (ContractError, FeedError, QueueError) as err:
            raise fail(str(err)) from None
        finally:
            scratch.cleanup()
    from ..report.render import print_inputs_summary, print_run_summary

    if until is not None:
        _print_first_stages(result["first"])
    else:
        print_problems(result["problems"])
        print_run_summary(result, out, head, stdout)
    if inputs is not None:
        detections, verdicts = _records_for_summary(result, out, output_format)
        summaries = summarise(listed, detections, verdicts, result["problems"])
        write_json_atomic(out / "inputs.json", [s.as_dict() for s in summaries])
        print_inputs_summary(summaries, stdout)
        if any(s.status == "error" for s in summaries):
            raise typer.Exit(EXIT_ERROR)  # every input that could be used was; inputs.json says which could not
    if any(p.level == "error" for p in result["problems"]):
        raise typer.Exit(EXIT_ERROR)  # every artefact is written; an input was not (a CI gate must not pass)


def _print_first_stages(done) -> None:
    """run --until: each stage's summary, as its own command prints it."""
    from .detect import print_detect_tally
    from .fix import print_propose_summary, print_verify_summary

    print_detect_tally(done.detect)
    if done.propose is not None:
        print_propose_summary(done.propose)
    if done.verify is not None:
        print_verify_summary(done.verify)


def _records_for_summary(result: dict, out: Path, output_format: RecordFormat):
    """The detections and verdicts for the per-input summary: in memory, or (run --until) streamed from the files."""
    from ..contracts import Detection, Verdict, stream_models
    from ..run import artefact

    if "until" not in result:
        return result["detections"], result["verdicts"]
    verified = artefact(out, "verified", output_format.value)
    verdicts = stream_models(verified, Verdict) if result["first"].verify is not None else ()
    return stream_models(artefact(out, "detections", output_format.value), Detection), verdicts
