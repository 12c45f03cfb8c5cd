"""The runner's units of work as Ray tasks (``--executor ray``).

One task per application, as the local runner cuts the input. The stage's
work object (the checks, the options) is put in Ray's object store once and
shared by every task. Results come back in input order: a window of tasks
runs ahead of the one being read, so a slow application does not stall the
cluster, and what is held stays bounded by the window, not the input.
Workers read the files at the paths the driver lists, so on a cluster of
several machines the inputs must be at the same path on every node (a
shared volume, or the repository in the image; see deploy/ray-cluster.yaml).

Without an address Ray starts on this machine (``address="local"``: a fresh
instance, never another user's running cluster), limited to the CPUs asked
for, without its dashboard, and is stopped at the end.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from . import R, RunnerOptions, S, T

# Object store for a local Ray: the units and results are small (paths in, detections out).
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024
TASKS_AHEAD_PER_CPU = 4  # unfinished tasks per CPU: a queue for every worker
# Finished tasks waiting for the one at the head to be read: their results are
# held (in Ray's object store) so that the workers never wait for the reader.
DONE_AHEAD = 256


class RayUnavailable(Exception):
    pass


@contextmanager
def ray_session(options: RunnerOptions):
    """Ray connected (to ``options.ray_address``) or started locally, and shut down after."""
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable(f"--executor ray needs Ray ({err}): pip install 'k8s-auto-fix[ray]'") from None
    if ray.is_initialized():
        yield ray  # the caller's own session (a test, a notebook): leave it running
        return
    if options.ray_address:
        ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(
            address="local",
            num_cpus=options.jobs or os.cpu_count() or 1,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="WARNING",
        )
    try:
        yield ray
    finally:
        ray.shutdown()


def map_on_ray(step: Callable[[S, T], R], shared: S, items: Iterable[T], options: RunnerOptions) -> Iterator[R]:
    """``step(shared, item)`` as one Ray task per item, results in input order."""
    from ..manifests import helm

    with ray_session(options) as ray:
        task = ray.remote(num_cpus=1, max_retries=2)(_in_worker)  # a worker that dies is retried: the steps are pure
        # The driver's process-wide settings (chart values, release) and its working folder go with
        # the work: a worker is another process, started where the cluster was, and paths may be relative.
        shared_ref = ray.put((step, helm.current(), os.getcwd(), shared))
        window = _Window(ray, lambda item: task.remote(shared_ref, item), items, max(2, int(ray.cluster_resources().get("CPU", 1)) * TASKS_AHEAD_PER_CPU))
        yield from window.in_order()


class _Window:
    """Tasks in flight, read back in input order. It keeps ``running`` tasks
    unfinished, not ``running`` tasks in all: behind a large application at the
    head, the ones after it go on running (the next large one among them) and
    wait, done (their results held by Ray), up to ``DONE_AHEAD`` of them."""

    def __init__(self, ray, submit: Callable, items: Iterable, running: int):
        self.ray, self.submit, self.items, self.running = ray, submit, iter(items), running
        self.pending: deque = deque()  # submitted, in input order
        self.unfinished: set = set()

    def in_order(self) -> Iterator:
        self._fill()
        while self.pending:
            head = self.pending.popleft()
            while head in self.unfinished:
                finished, _ = self.ray.wait(list(self.unfinished), num_returns=1)
                self.unfinished.difference_update(finished)
                self._fill()
            result = self.ray.get(head)
            self._fill()
            yield result

    def _fill(self) -> None:
        while len(self.unfinished) < self.running and len(self.pending) < self.running + DONE_AHEAD:
            item = next(self.items, _END)
            if item is _END:
                return
            ref = self.submit(item)
            self.pending.append(ref)
            self.unfinished.add(ref)


_END = object()


def _in_worker(bundle: tuple, item):
    """In a Ray worker (of this job only): the driver's chart settings and working folder, then the step."""
    from ..manifests import helm

    step, chart_options, folder, shared = bundle
    helm.configure(chart_options)
    if os.getcwd() != folder:
        try:
            os.chdir(folder)  # the inputs' relative paths are the driver's, and are recorded as given
        except OSError:
            pass  # not on this node: absolute paths still work, relative ones are reported unreadable
    return step(shared, item)
