"""Per application, in worker processes: how detect and fix spread work over cores.

Work is split by application, never inside one, so cross-object checks see
every object they need: each worker loads the files of its applications and
runs the stage's work on them. An application larger than a fair share of
the input is sliced instead: every slice does its per-object work in a
worker, and the parent joins the slices' results once they are all back
(the cross-object work). Results come back typed, one per application, in
the order of the inputs. One application's failure is reported as a problem
of that application; the others go on.

``stream_applications`` gives the same work one application at a time, in
input order, as results arrive, for outputs that must not hold everything in
memory (JSON Lines). Both run on local worker processes or, with
``executor="ray"``, as Ray tasks (``runner/on_ray.py``): the unit of work is
one application, or a slice of a large one, either way. ``map_ordered`` runs
the later stages (propose, verify) the same way, per application or piece.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ..contracts import Problem
from ..manifests.context import Application, ContextMode, application_key
from ..manifests.loader import DEFAULT_MAX_FILE_BYTES, STDIN_PATH, iter_manifest_files, load_file
from ..manifests.objects import K8sObject

# Below this many files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 200
# Batches of work for Ray: enough to spread over a cluster's CPUs, few enough that each task outweighs its overhead.
RAY_BATCHES = 64
# A streamed application larger than a worker's share of the input is cut into
# slices of this fraction of a share: small enough for the workers to share it.
STREAM_SLICES_PER_SHARE = 8
# A streamed application with more records than this is cut into pieces, a few
# per worker (a worker parses the application once for all the pieces it takes:
# see ``store_for_application``), so that one large application does not leave
# the other workers idle, at the end of a stage least of all.
SPLIT_RECORDS = 1000
PIECES_PER_WORKER = 4
R = TypeVar("R")
# Told as work completes: files done, files in all, and the results just made
# (one application's, or a batch's). For a progress bar; called in the parent.
Progress = Callable[[int, int, list], None]


@dataclass(frozen=True)
class RunnerOptions:
    context: ContextMode = ContextMode.DIR
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    jobs: int = 0  # worker processes (Ray: CPUs of a local Ray); 0: one per core
    executor: str = "local"  # "local" (a process pool) or "ray"
    ray_address: str | None = None  # a running Ray cluster; None: start Ray locally


class ApplicationWork(Protocol[R]):
    """A stage's work on applications."""

    def whole(self, app: Application) -> R:
        """All the work on a whole application."""

    def part(self, app: Application) -> R:
        """The per-object work on a slice of a large application."""

    def joined(self, app: Application, parts: list[R]) -> R:
        """In the parent: the cross-object work on a sliced application, with its slices' results."""


@dataclass
class Outcome(Generic[R]):
    results: list[R] = field(default_factory=list)  # one per application, in input order
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    objects: int = 0


@dataclass(frozen=True)
class _Unit:
    """The files of one application, or a slice of a large one."""

    order: int  # the application's position in the input
    key: str
    files: list[str]
    split: bool


@dataclass
class _Done(Generic[R]):
    """What a batch of units gives back (one object per batch: cheap to send between processes)."""

    results: dict[int, R] = field(default_factory=dict)  # application order -> result
    parts: list[tuple[_Unit, R | None, list[K8sObject]]] = field(default_factory=list)  # slices, for the join
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    objects: int = 0

    def merge(self, other: _Done[R]) -> None:
        self.results.update(other.results)
        self.parts += other.parts
        self.problems += other.problems
        self.files += other.files
        self.objects += other.objects


# Python's collector runs a young-generation pass every 700 new container
# objects, and every pass walks the young objects that a big application's
# parse just made: half the CPU time of `fix` on a 2,000-item List went there.
# Passes every 50,000 allocations cost a few MB of garbage kept a little longer.
COLLECTOR_THRESHOLD = 50_000


@contextmanager
def relaxed_collector():
    """The collector's young-generation threshold raised while applications are processed (restored after)."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], COLLECTOR_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def for_each_application(paths: Sequence[str], options: RunnerOptions, work: ApplicationWork[R], progress: Progress | None = None) -> Outcome[R]:
    with relaxed_collector():  # worker processes inherit it (fork)
        return _for_each_application(paths, options, work, progress)


def _applications(paths: Sequence[str], options: RunnerOptions) -> tuple[dict[str, list[str]], list[Problem]]:
    """The input's files grouped by application, in input order, and the paths that could not be listed."""
    apps: dict[str, list[str]] = {}
    problems: list[Problem] = []
    chart_roots: dict[str, str | None] = {}
    for path, problem in iter_manifest_files(paths):
        if problem:
            problems.append(problem)
        else:
            apps.setdefault(application_key(path, options.context, chart_roots), []).append(path)
    return apps, problems


def _for_each_application(paths: Sequence[str], options: RunnerOptions, work: ApplicationWork[R], progress: Progress | None = None) -> Outcome[R]:
    outcome: Outcome[R] = Outcome()
    apps, outcome.problems = _applications(paths, options)
    jobs = options.jobs or os.cpu_count() or 1
    file_count = sum(len(files) for files in apps.values())
    tell = (lambda files, results: progress(files, file_count, results)) if progress else None
    if options.executor == "ray" and STDIN_PATH not in paths:
        # The same plan as the local pool's (large applications sliced); each batch is a Ray task.
        done = _Done()
        for part in map_ordered(_run_batch_shared, (options, work), _plan(apps, RAY_BATCHES), options):
            done.merge(part)
            if tell:
                tell(done.files, list(part.results.values()))
    elif jobs > 1 and file_count >= PARALLEL_MIN_FILES and STDIN_PATH not in paths:
        done = _in_pool(_plan(apps, jobs * 16), options, work, jobs, tell)
    else:
        done = _run_batch_with([_Unit(order, key, files, split=False) for order, (key, files) in enumerate(apps.items())], options, work, tell)

    _join_slices(done, work)
    outcome.results = [done.results[order] for order in sorted(done.results)]
    outcome.problems = sorted(outcome.problems + done.problems, key=lambda p: (p.path, p.line or 0))
    outcome.files, outcome.objects = done.files, done.objects
    return outcome


def _join_slices(done: _Done[R], work: ApplicationWork[R]) -> None:
    """In the parent: each sliced application's slices joined into its result (the cross-object work)."""
    sliced: dict[int, list[tuple[_Unit, R | None, list[K8sObject]]]] = {}
    for unit, result, objects in done.parts:
        sliced.setdefault(unit.order, []).append((unit, result, objects))
    for order, parts in sliced.items():
        objects = sorted((o for _, _, objs in parts for o in objs), key=lambda o: (o.path, o.document_index, o.list_index or 0))
        app = Application(parts[0][0].key, objects)
        joined = _guarded(done.problems, app.key, work.joined, app, [r for _, r, _ in parts if r is not None])
        if joined is not None:
            done.results[order] = joined
    done.parts = []


def _run_batch_shared(shared: tuple, batch: list[_Unit]) -> _Done:
    options, work = shared
    with relaxed_collector():
        return _run_batch_with(batch, options, work)


@contextmanager
def executor_session(options: RunnerOptions):
    """One executor for several stages (``run``): Ray is started or joined once, not per stage."""
    if options.executor != "ray":
        yield
        return
    from .on_ray import ray_session

    with ray_session(options):
        yield


def parallelism(options: RunnerOptions) -> int:
    """How many units of work run at once: the local worker processes, or the Ray cluster's CPUs (inside ``executor_session``)."""
    if options.executor == "ray":
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return options.jobs or os.cpu_count() or 1


def _collected(outcome: Outcome[R], streamed: Iterator[Streamed[R]]) -> Outcome[R]:
    """A stream gathered into one outcome (what ``for_each_application`` returns)."""
    for item in streamed:
        if item.result is not None:
            outcome.results.append(item.result)
        outcome.problems += item.problems
        outcome.files += item.files
        outcome.objects += item.objects
    outcome.problems.sort(key=lambda p: (p.path, p.line or 0))
    return outcome


@dataclass
class Streamed(Generic[R]):
    """One application's outcome as it streams back."""

    order: int
    key: str
    result: R | None  # None: no objects, or the application failed (see problems)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    objects: int = 0


def stream_applications(paths: Sequence[str], options: RunnerOptions, work: ApplicationWork[R]) -> tuple[list[Problem], Iterator[Streamed[R]]]:
    """The paths that could not be listed, and each application's whole work
    as it completes, in input order. What is held at once is a few
    applications, not the input. An application larger than a worker's share
    of the input is cut into slices (spread over the workers, joined here once
    they are all back), so that it does not leave the other workers idle."""
    apps, problems = _applications(paths, options)
    return problems, _stream_units(apps, options, work, paths)


def _stream_units(apps: dict[str, list[str]], options: RunnerOptions, work: ApplicationWork[R], paths: Sequence[str]) -> Iterator[Streamed[R]]:
    jobs = options.jobs or os.cpu_count() or 1
    parallel = options.executor == "ray" or (jobs > 1 and sum(map(len, apps.values())) >= PARALLEL_MIN_FILES and STDIN_PATH not in paths)
    # Slicing costs a join here, so only an application larger than a worker's share of the
    # input is sliced: one that would keep its worker busy while the others run out of work.
    share = sum(_file_bytes(p) for files in apps.values() for p in files) // jobs
    largest = share if parallel and jobs > 1 else None
    slice_bytes = max(1, share // STREAM_SLICES_PER_SHARE)
    units = [unit for order, (key, files) in enumerate(apps.items()) for _, unit in _units_of(order, key, files, largest, slice_bytes)]
    slice_count = Counter(unit.order for unit in units)
    held: _Done[R] = _Done()
    with relaxed_collector():
        for unit, done in _in_order(units, options, work, jobs if parallel else 1):
            if not unit.split:
                yield streamed(unit, done)
                continue
            held.merge(done)
            slice_count[unit.order] -= 1
            if slice_count[unit.order] == 0:  # the application's last slice: join, and hand it over
                _join_slices(held, work)
                yield streamed(unit, held)
                held = _Done()


def _in_order(units: list[_Unit], options: RunnerOptions, work: ApplicationWork[R], jobs: int) -> Iterator[tuple[_Unit, _Done[R]]]:
    """Each unit with its outcome, in the units' order: as Ray tasks, in a local pool of ``jobs``, or here."""
    if options.executor == "ray":
        from .on_ray import map_on_ray

        yield from zip(units, map_on_ray(_run_batch_shared, (options, work), ([u] for u in units), options))
    elif jobs > 1:
        yield from _stream_in_pool(units, options, work, jobs)
    else:
        for unit in units:
            yield unit, _run_batch_with([unit], options, work)


def streamed(unit: _Unit, done: _Done[R]) -> Streamed[R]:
    return Streamed(unit.order, unit.key, done.results.get(unit.order), done.problems, done.files, done.objects)


def _run_batch_with(batch: list[_Unit], options: RunnerOptions, work: ApplicationWork[R], tell=None) -> _Done[R]:
    done: _Done[R] = _Done()
    for unit in batch:
        objects: list[K8sObject] = []
        for path in unit.files:
            loaded = load_file(path, options.max_file_bytes)
            objects.extend(loaded.objects)
            done.problems.extend(loaded.problems)
            done.files += 1
        done.objects += len(objects)
        app = Application(unit.key, objects)
        if unit.split:
            done.parts.append((unit, _guarded(done.problems, unit.key, work.part, app), objects))
        elif objects:
            result = _guarded(done.problems, unit.key, work.whole, app)
            if result is not None:
                done.results[unit.order] = result
        if tell:
            tell(done.files, [done.results[unit.order]] if unit.order in done.results else [])
    return done


def _guarded(problems: list[Problem], key: str, step, *args):
    """One application's failure must not stop the others: it becomes its problem."""
    try:
        return step(*args)
    except Exception as err:  # noqa: BLE001 - reported, and the run goes on
        problems.append(Problem(key, f"could not process this application: {type(err).__name__}: {err}"))
        return None


def _file_bytes(path: str) -> int:
    return os.path.getsize(path) if path != STDIN_PATH else 0


def _units_of(order: int, key: str, files: list[str], largest: int | None, slice_bytes: int | None = None) -> list[tuple[int, _Unit]]:
    """An application as one unit, or, larger than ``largest`` bytes, as slices
    of about ``slice_bytes`` (default: ``largest``), marked split; each with its size in bytes."""
    sizes = [_file_bytes(p) for p in files]
    if largest is None or sum(sizes) <= largest:
        return [(sum(sizes), _Unit(order, key, files, split=False))]
    slice_bytes = slice_bytes or largest
    pieces: list[tuple[int, _Unit]] = []
    chunk: list[str] = []
    chunk_bytes = 0
    for path, size in zip(files, sizes):
        chunk.append(path)
        chunk_bytes += size
        if chunk_bytes >= slice_bytes:
            pieces.append((chunk_bytes, _Unit(order, key, chunk, split=True)))
            chunk, chunk_bytes = [], 0
    if chunk:
        pieces.append((chunk_bytes, _Unit(order, key, chunk, split=True)))
    return pieces


def _plan(apps: dict[str, list[str]], batch_count: int) -> list[list[_Unit]]:
    """Spread applications over batches of similar size, biggest first; an
    application larger than one batch is sliced (and marked split)."""
    total = sum(_file_bytes(p) for files in apps.values() for p in files)
    target = max(1, total // batch_count)
    pieces = [piece for order, (key, files) in enumerate(apps.items()) for piece in _units_of(order, key, files, target)]
    batches: list[list[_Unit]] = [[] for _ in range(batch_count)]
    loads = [0] * batch_count
    for size, unit in sorted(pieces, key=lambda p: p[0], reverse=True):
        lightest = loads.index(min(loads))
        batches[lightest].append(unit)
        loads[lightest] += size
    return [b for b in batches if b]


# --- worker side: fork, so the work object and the check registry are inherited ----------

_worker_state: tuple | None = None


def _in_pool(batches: list[list[_Unit]], options: RunnerOptions, work: ApplicationWork[R], jobs: int, tell=None) -> _Done[R]:
    global _worker_state
    _worker_state = (options, work)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            done: _Done[R] = _Done()
            # Batches in any order: results are keyed by application, sorted after.
            for part in pool.imap_unordered(_run_batch, batches, chunksize=1):
                done.merge(part)
                if tell:
                    tell(done.files, list(part.results.values()))
            return done
    finally:
        _worker_state = None


def _run_batch(batch: list[_Unit]) -> _Done:
    assert _worker_state is not None
    options, work = _worker_state
    return _run_batch_with(batch, options, work)


def _stream_in_pool(units: list[_Unit], options: RunnerOptions, work: ApplicationWork[R], jobs: int) -> Iterator[tuple[_Unit, _Done[R]]]:
    """imap keeps the input order and hands each result over as soon as the ones before it are in."""
    global _worker_state
    _worker_state = (options, work)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            yield from zip(units, pool.imap(_run_unit, units, chunksize=1))
    finally:
        _worker_state = None


def _run_unit(unit: _Unit) -> _Done:
    return _run_batch([unit])


# --- any per-application step, in input order: propose and verify ---------------------

S = TypeVar("S")
T = TypeVar("T")


def map_ordered(step: Callable[[S, T], R], shared: S, items: Iterable[T], options: RunnerOptions, parallel: bool = True) -> Iterator[R]:
    """``step(shared, item)`` for every item (one application's records), results
    in input order as they arrive: on Ray as tasks (``shared`` sent once), in a
    local process pool when ``parallel`` and there is more than one core, else here."""
    if options.executor == "ray":
        from .on_ray import map_on_ray

        yield from map_on_ray(step, shared, items, options)
        return
    jobs = options.jobs or os.cpu_count() or 1
    if not parallel or jobs < 2:
        for item in items:
            yield step(shared, item)
        return
    global _map_state
    _map_state = (step, shared)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            # A window of tasks, not imap: imap reads its whole input at once, and the input may be a stream.
            pending: deque = deque()
            remaining = iter(items)
            for item in remaining:
                pending.append(pool.apply_async(_map_one, (item,)))
                if len(pending) >= jobs * 4:
                    break
            while pending:
                result = pending.popleft().get()
                for item in remaining:
                    pending.append(pool.apply_async(_map_one, (item,)))
                    break
                yield result
    finally:
        _map_state = None


def pieces(records: list[T], workers: int) -> list[list[T]]:
    """One application's records (findings, patches) for ``map_ordered``: whole,
    or, when there are many, cut into a few contiguous pieces per worker."""
    if workers < 2 or len(records) < SPLIT_RECORDS:
        return [records]
    size = -(-len(records) // (workers * PIECES_PER_WORKER))
    return [records[start : start + size] for start in range(0, len(records), size)]


_map_state: tuple | None = None


def _map_one(item):
    assert _map_state is not None
    step, shared = _map_state
    return step(shared, item)
