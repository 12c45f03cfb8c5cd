"""propose, verify and fix: the stages that change manifests."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..contracts import Engine, SchemaMode, stream_models
from ..defaults import DEFAULT_CONFIG_PATH, DEFAULT_KUBE_VERSION
from ..manifests.context import ContextMode
from ..manifests.helm import RELEASE
from .app import app
from .common import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FINDINGS,
    AllChecksOpt,
    ConfigOpt,
    ContextOpt,
    CrdsOpt,
    ExcludeOpt,
    Executor,
    ExecutorOpt,
    FormatOpt,
    ImageFactsOpt,
    ImagePinsOpt,
    IncludeOpt,
    JobsOpt,
    KubeconfigOpt,
    KubeVersionOpt,
    PathsArg,
    PoliciesOpt,
    RayAddressOpt,
    RecordFormat,
    ReleaseOpt,
    SetOpt,
    TrivyReportOpt,
    ValuesOpt,
    choose_checks,
    contract_errors,
    executor_errors,
    fail,
    load_image_facts,
    load_image_pins,
    load_settings,
    print_problems,
    read_contract,
    runner_options,
    stderr,
    use_chart_values,
    write_records,
)

RESCAN_ENGINES = (Engine.KUBE_LINTER, Engine.KYVERNO, Engine.VAP)
FIX_ENGINES = (Engine.BUILTIN, Engine.KYVERNO, Engine.VAP)


@app.command()
def propose(
    detections: Annotated[Path, typer.Option("--detections", "-d", help="detections.json from detect.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write patches.json.")] = Path("patches.json"),
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    mode: Annotated[
        Optional[str], typer.Option("--mode", help="rules (deterministic), or a model endpoint: grok, vendor, vllm, or one of yours (default: the config's).")
    ] = None,
    image_pins: ImagePinsOpt = None,
    image_facts: ImageFactsOpt = None,
    trivy_report: TrivyReportOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Concurrent model requests.")] = 4,
    output_format: FormatOpt = RecordFormat.JSON,
    executor: ExecutorOpt = Executor.LOCAL,
    ray_address: RayAddressOpt = None,
    values: ValuesOpt = None,
    set_values: SetOpt = None,
    release: ReleaseOpt = RELEASE,
) -> None:
    """Propose a JSON Patch (with its applicability) for every finding a check can fix."""
    from ..checks.fixes import FixOptions
    from ..contracts import Detection
    from ..propose.rules import propose_distributed, propose_rules
    from ..streamed import ProposeTally, propose_jsonl

    settings = load_settings(config)
    use_chart_values(values, set_values, release=release)
    chosen = mode or settings.proposer.mode
    runner = runner_options(executor, ray_address)
    options = FixOptions(settings.fixes, load_image_pins(image_pins), load_image_facts(image_facts, trivy_report))
    if output_format is RecordFormat.JSONL and chosen == "rules":
        with executor_errors(), contract_errors():  # patches are written as they come, not kept
            print_propose_summary(propose_jsonl(detections, options, runner, out))
        return
    if output_format is RecordFormat.JSONL:  # a model mode: records written chunk by chunk, locally or on Ray
        _propose_with_model_stream(chosen, settings, detections, out, options, jobs, runner)
        return
    found = read_contract(detections, Detection)
    if chosen != "rules" and runner.executor == "ray":
        _propose_with_model_on_ray(chosen, settings, found, out, options, jobs, output_format, runner)
        return
    if chosen != "rules":
        _propose_with_model(chosen, settings, found, out, options, jobs, output_format)
        return
    with executor_errors():
        result = propose_rules(found, options) if runner.executor == "local" else propose_distributed(found, options, runner)
    write_records(out, result.patches, output_format)
    with_ops = sum(1 for p in result.patches if not p.is_manual)
    print_propose_summary(ProposeTally(len(found), len(result.patches), with_ops, result.warnings, result.without_fix))


def print_propose_summary(tally) -> None:
    for warning in tally.warnings:
        stderr.print(f"[yellow]warning:[/yellow] {warning}")
    stderr.print(
        f"{tally.patches} fix(es) for {tally.findings} finding(s): {tally.with_ops} with a patch, "
        f"{tally.patches - tally.with_ops} manual; {sum(tally.without_fix.values())} finding(s) of checks without a fix"
    )


def _propose_with_model(endpoint: str, settings, found, out: Path, options, jobs: int, output_format: RecordFormat = RecordFormat.JSON) -> None:
    from ..propose.llm.client import ModelError
    from ..propose.llm.loop import propose_with_model
    from ..propose.llm.providers import client_for

    try:
        client = client_for(settings, endpoint)
    except ModelError as err:
        raise fail(str(err)) from None
    partial = PartialResults(out)
    try:
        result = propose_with_model(client, settings, found, endpoint, options, jobs, partial.add)
    finally:
        client.close()
        if partial.records:
            partial.flush()  # an interrupted run keeps every answer it already paid for
    write_records(out, result.patches, output_format)
    stderr.print(result.summary(len(found), client.endpoint.model))


def _propose_with_model_on_ray(endpoint: str, settings, found, out: Path, options, jobs: int, output_format, runner) -> None:
    """Model mode on Ray: one slice of the findings per CPU, every worker within the endpoint's one rate budget (a Ray actor)."""
    from ..propose.llm.client import ModelError
    from ..propose.llm.distributed import propose_with_model_on_ray
    from ..propose.llm.providers import client_for

    try:
        client = client_for(settings, endpoint)  # checks the endpoint and its key before anything starts
    except ModelError as err:
        raise fail(str(err)) from None
    client.close()
    with executor_errors():
        result = propose_with_model_on_ray(settings, endpoint, client.api_key, found, options, jobs, runner)
    write_records(out, result.patches, output_format)
    stderr.print(result.summary(len(found), client.endpoint.model))


def _propose_with_model_stream(endpoint: str, settings, detections: Path, out: Path, options, jobs: int, runner) -> None:
    """Model mode with --format jsonl: the findings read as a stream, in chunks; each chunk's records written as it is done."""
    from ..propose.llm.client import ModelError
    from ..propose.llm.loop import model_summary
    from ..propose.llm.providers import client_for
    from ..streamed import propose_with_model_jsonl

    try:
        client = client_for(settings, endpoint)  # checks the endpoint and its key before anything starts
    except ModelError as err:
        raise fail(str(err)) from None
    client.close()
    with executor_errors(), contract_errors():
        tally = propose_with_model_jsonl(settings, endpoint, client.api_key, detections, options, jobs, runner, out)
    stderr.print(model_summary(tally.sources, tally.unfixed, tally.usage, tally.findings, client.endpoint.model))


class PartialResults:
    """patches.json as the model proposals complete: rewritten atomically (a
    reader sees a whole file, never half of one) at most once per ``interval``
    seconds, and once more at the end, so a run that is stopped loses at most
    the last ``interval`` of work."""

    def __init__(self, out: Path, interval: float = 1.0):
        self.out, self.interval = out, interval
        self.records: dict[int, object] = {}
        self.written_at: float | None = None

    def add(self, index: int, record) -> None:
        import time

        if record is not None:
            self.records[index] = record
        if self.written_at is None or time.monotonic() - self.written_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        import time

        from ..contracts import write_models

        write_models(self.out, [self.records[i] for i in sorted(self.records)])
        self.written_at = time.monotonic()


@app.command()
def verify(
    patches: Annotated[Path, typer.Option("--patches", "-p", help="patches.json from propose.")],
    detections: Annotated[Path, typer.Option("--detections", "-d", help="The detections the patches are for.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write verified.json.")] = Path("verified.json"),
    include_errors: Annotated[bool, typer.Option("--include-errors", help="Record each gate's reasons in `errors`.")] = False,
    schema: Annotated[SchemaMode, typer.Option("--schema", help="offline (default), kubectl-validate, or server (dry run).")] = SchemaMode.OFFLINE,
    kube_version: KubeVersionOpt = DEFAULT_KUBE_VERSION,
    crds: CrdsOpt = None,
    kubeconfig: KubeconfigOpt = None,
    rescan: Annotated[Optional[list[Engine]], typer.Option("--rescan", help="Rescan patched objects with this engine too: kube-linter, kyverno.")] = None,
    policies: PoliciesOpt = None,
    patched_yaml: Annotated[bool, typer.Option("--patched-yaml", help="Record each patched object as YAML in patched_yaml.")] = False,
    image_facts: ImageFactsOpt = None,
    trivy_report: TrivyReportOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    output_format: FormatOpt = RecordFormat.JSON,
    executor: ExecutorOpt = Executor.LOCAL,
    ray_address: RayAddressOpt = None,
    values: ValuesOpt = None,
    set_values: SetOpt = None,
    release: ReleaseOpt = RELEASE,
) -> None:
    """Run every patch through the gates (see `checks` for the suite the regression gate runs)."""
    from ..contracts import Detection, PatchRecord
    from ..manifests.schemas import SchemaSetupError
    from ..streamed import VerifyTally, verify_jsonl
    from ..verify.external import ExternalToolError
    from ..verify.judging import VerifyOptions
    from ..verify.verifier import PatchOrderError, verify_parallel

    runner = runner_options(executor, ray_address)
    unsupported = [e.value for e in rescan or () if e not in RESCAN_ENGINES]
    if unsupported:
        raise fail(f"--rescan takes {', '.join(e.value for e in RESCAN_ENGINES)}, not {', '.join(unsupported)}")
    use_chart_values(values, set_values, kube_version, release)
    with contract_errors():  # one streamed pass: JSON Lines stay out of memory
        found_engines = {d.engine for d in stream_models(detections, Detection)}
    policy_engines = {e for e in found_engines if e in (Engine.KYVERNO, Engine.VAP)} | {e for e in rescan or () if e in (Engine.KYVERNO, Engine.VAP)}
    if not policies and policy_engines:
        raise fail("Kyverno or VAP findings, and --rescan kyverno|vap, need --policies DIR (the policies that found them)")
    if len(policy_engines) > 1:
        raise fail("one policy engine per run: --policies holds either Kyverno policies or ValidatingAdmissionPolicies")
    options = VerifyOptions(
        policies=tuple(str(p) for p in policies or ()),
        schema=schema,
        kube_version=kube_version,
        crd_paths=tuple(str(p) for p in crds or ()),
        rescan=tuple(rescan or ()),
        include_errors=include_errors,
        include_yaml=patched_yaml,
        image_facts=load_image_facts(image_facts, trivy_report),
        kubeconfig=str(kubeconfig) if kubeconfig else None,
    )
    checks = choose_checks(load_settings(config))
    if output_format is RecordFormat.JSONL:
        # Verdicts are written as they come; only the rejected ones' names are kept, for the summary.
        try:
            with executor_errors(), contract_errors():
                tally = verify_jsonl(checks, options, patches, detections, runner, out)
        except (ExternalToolError, SchemaSetupError, PatchOrderError) as err:
            raise fail(f"{patches}: {err}" if isinstance(err, PatchOrderError) else str(err)) from None
        _verify_summary(tally)
    found = read_contract(detections, Detection)
    proposed = read_contract(patches, PatchRecord)
    try:
        with executor_errors():
            result = verify_parallel(checks, options, proposed, found, runner=runner)
    except (ExternalToolError, SchemaSetupError) as err:
        raise fail(str(err)) from None
    write_records(out, result.verdicts, output_format)
    _verify_summary(VerifyTally.of(result.verdicts, result.manual))


def print_verify_summary(tally) -> None:
    stderr.print(f"{tally.accepted}/{tally.verified} patch(es) accepted; {tally.manual} manual fix(es) not verified")
    for line in tally.rejected:
        stderr.print(line)


def _verify_summary(tally) -> None:
    print_verify_summary(tally)
    raise typer.Exit(EXIT_CLEAN if tally.accepted == tally.verified else EXIT_FINDINGS)


def _chart_outputs(run, emit_values: Path | None, emit_post_renderer: Path | None, quiet: bool) -> None:
    """The fixes of rendered chart objects: never written into templates, emitted as values or a post-renderer."""
    from ..fix.chart import ChartFixError, by_chart, fixed_count
    from ..fix.chart import emit_post_renderer as write_post_renderer
    from ..fix.chart import emit_values as write_values

    try:
        if emit_post_renderer:
            script, hooks = write_post_renderer(run.chart_fixes, emit_post_renderer)
            stderr.print(f"post-renderer written: helm template ... --post-renderer {script}")
            for fix in hooks:
                stderr.print(f"  not in the post-renderer (Helm 3 does not post-render hooks): {fix.edit.ref.kind}/{fix.edit.ref.name} ({fix.edit.path})")
        if emit_values:
            covered, changed, missing = write_values(run.chart_fixes, emit_values)
            stderr.print(f"values written to {emit_values}: {covered} of {changed} fixed field(s) are exposed by the chart's values")
            for field_ in missing:
                stderr.print(f"  not exposed by values (use --emit-post-renderer): {field_}")
    except ChartFixError as err:
        raise fail(str(err)) from None
    if not quiet:
        for chart, fixes in by_chart(run.chart_fixes).items():
            stderr.print(
                f"[yellow]note:[/yellow] {chart}: {fixed_count(fixes)} finding(s) of rendered objects are fixable; chart templates are "
                "not rewritten: use --emit-values FILE or --emit-post-renderer DIR"
            )


@app.command()
def fix(
    paths: PathsArg,
    diff: Annotated[bool, typer.Option("--diff", help="Print a unified diff (the default without another output; with --write: what was written).")] = False,
    write: Annotated[bool, typer.Option("--write", help="Rewrite the files in place (combines with --diff and --out-dir).")] = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Write fixed copies of the changed files here.")] = None,
    emit_kustomize: Annotated[Optional[Path], typer.Option("--emit-kustomize", help="Write a Kustomize overlay with the fixes here.")] = None,
    unsafe_fixes: Annotated[bool, typer.Option("--unsafe-fixes", help="Also apply `review` fixes.")] = False,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    all_checks: AllChecksOpt = False,
    select: Annotated[Optional[list[str]], typer.Option("--select", hidden=True, help="Old spelling: run and fix only these checks.")] = None,
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", hidden=True, help="Old spelling of --exclude.")] = None,
    context: ContextOpt = ContextMode.DIR,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    image_pins: ImagePinsOpt = None,
    image_facts: ImageFactsOpt = None,
    trivy_report: TrivyReportOpt = None,
    kube_version: KubeVersionOpt = DEFAULT_KUBE_VERSION,
    crds: CrdsOpt = None,
    jobs: JobsOpt = 0,
    executor: ExecutorOpt = Executor.LOCAL,
    ray_address: RayAddressOpt = None,
    values: ValuesOpt = None,
    set_values: SetOpt = None,
    release: ReleaseOpt = RELEASE,
    emit_values: Annotated[
        Optional[Path], typer.Option("--emit-values", help="Helm chart input: write a values override for the fixed fields the chart exposes.")
    ] = None,
    emit_post_renderer: Annotated[
        Optional[Path], typer.Option("--emit-post-renderer", help="Helm chart input: write a post-renderer (DIR/post-render) that applies the fixes to helm's output.")
    ] = None,
    exit_zero: Annotated[
        bool, typer.Option("--exit-zero", help="Exit 0 even when findings remain (input errors still exit 2): pre-commit's fix hook, where a changed file fails the commit.")
    ] = False,
    engine: Annotated[Engine, typer.Option("--engine", help="builtin (the checks), or kyverno or vap: fix what the --policies find.")] = Engine.BUILTIN,
    policies: PoliciesOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Detect, propose and verify, then apply the verified fixes (safe ones unless --unsafe-fixes).

    Exit 0: no finding left after fixing; 1: findings left (a diff-only run fixes nothing); 2: input error."""
    from ..engines import VapError
    from ..engines.kyverno import KyvernoError
    from ..fix.apply import original_texts, run_fix, unified_diff, write_in_place, write_to_folder
    from ..fix.engine import FixSettings
    from ..manifests.source import STDIN_PATH, read_source
    from ..verify.external import ExternalToolError

    if engine not in FIX_ENGINES:
        raise fail(f"fix --engine takes {', '.join(e.value for e in FIX_ENGINES)}, not {engine.value}")
    if (engine in (Engine.KYVERNO, Engine.VAP)) != bool(policies):
        raise fail("--engine kyverno|vap and --policies DIR go together")
    if write and diff and STDIN_PATH in paths:
        raise fail("--write - prints the fixed manifest on stdout, so --diff cannot print there too: use one of them")
    settings = load_settings(config)
    checks = choose_checks(settings, include, [*(exclude or []), *(ignore or [])], all_checks, select)
    use_chart_values(values, set_values, kube_version, release)
    facts = load_image_facts(image_facts, trivy_report)
    policy_folders = tuple(str(p) for p in policies or ())
    fix_settings = FixSettings.build(
        settings, load_image_pins(image_pins), unsafe_fixes, kube_version, crds, facts, policy_folders, engine, str(kubeconfig) if kubeconfig else None
    )
    try:
        with executor_errors(), progress_bar() as progress:
            run = run_fix(paths, checks, runner_options(executor, ray_address, context=context, jobs=jobs), fix_settings, progress)
    except (KyvernoError, VapError, ExternalToolError) as err:
        raise fail(str(err)) from None
    print_problems(run.detected.problems)
    originals = original_texts(run) if write and diff else None  # --write --diff prints what it writes
    if write:
        # Standard input is no file to rewrite: like a filter, the (fixed) text goes to stdout.
        fixed_stdin = write_in_place(run, list(paths))
        stdin_unreadable = any(p.path == STDIN_PATH and p.level == "error" and p.line is None for p in run.detected.problems)
        if STDIN_PATH in paths and not stdin_unreadable:
            sys.stdout.write(fixed_stdin if fixed_stdin is not None else read_source(STDIN_PATH)[0])
    for problem in run.problems:
        stderr.print(f"[yellow]warning:[/yellow] {problem}")
    if out_dir:
        write_to_folder(run, out_dir, paths)
    if emit_kustomize:
        from ..fix.kustomize import emit_kustomize as emit

        emit(run, emit_kustomize, list(paths))
    if run.chart_fixes:
        _chart_outputs(run, emit_values, emit_post_renderer, quiet=bool(emit_values or emit_post_renderer))
    writes = bool(write or out_dir or emit_kustomize or emit_values or emit_post_renderer)
    if diff or not writes:
        sys.stdout.write(unified_diff(run, originals))
        if run.chart_fixes:
            from ..fix.chart import rendered_diff

            sys.stdout.write(rendered_diff(run.chart_fixes))
    accepted = sum(v.accepted for v in run.verdicts)
    stderr.print(
        f"{run.fixed_findings} finding(s) {'fixed' if writes else 'fixable'} in {len(run.new_texts)} file(s); "
        f"{accepted}/{len(run.verdicts)} proposed patches verified; "
        f"{len(run.detected.detections)} finding(s) in total"
        + ("" if unsafe_fixes else " (review fixes need --unsafe-fixes)")
    )
    if run.detected.errors:
        raise typer.Exit(EXIT_ERROR)
    if exit_zero:
        raise typer.Exit(EXIT_CLEAN)
    # What is left in the output: a diff-only run writes nothing, so every finding is.
    remaining = len(run.detected.detections) - (run.fixed_findings if writes else 0)
    raise typer.Exit(EXIT_FINDINGS if remaining else EXIT_CLEAN)


@contextmanager
def progress_bar():
    """A progress bar on stderr while fix works, when stderr is a terminal (silent
    otherwise): files done out of all, and the findings with a verified fix so far."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("fix"), BarColumn(), MofNCompleteColumn(), TextColumn("files, {task.fields[fixed]} finding(s) fixable"), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("fix", total=None, fixed=0)
        fixed = 0

        def update(files: int, total: int, results: list) -> None:
            nonlocal fixed
            fixed += sum(len(edit.fixed) for result in results for edit in result.edits)
            bar.update(task, completed=files, total=total, fixed=fixed)

        yield update
