"""The runner's units of work as Ray tasks (``--executor ray``).

One task per application, as the local runner cuts the input. The stage's
work object (the checks, the options) is put in Ray's object store once and
shared by every task. Results come back in input order: a window of tasks
runs ahead of the one being read, so a slow application does not stall the
cluster, and what the driver holds stays bounded by the window, not the
input. Workers read the files at the paths the driver lists, so on a cluster
of several machines the inputs must be at the same path on every node (a
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
TASKS_AHEAD_PER_CPU = 4


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
        ahead = max(2, int(ray.cluster_resources().get("CPU", 1)) * TASKS_AHEAD_PER_CPU)
        pending: deque = deque()
        remaining = iter(items)
        for item in remaining:
            pending.append(task.remote(shared_ref, item))
            if len(pending) >= ahead:
                break
        while pending:
            result = ray.get(pending.popleft())
            for item in remaining:  # keep the window full
                pending.append(task.remote(shared_ref, item))
                break
            yield result


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
