"""bench scale's parts that decide what it reports: the replicas and the comparison (no timing)."""

from __future__ import annotations

import yaml
from conftest import REPO

from k8s_auto_fix.bench.scale import compare, make_replicas


def test_replicas_are_copies_with_every_object_renamed(tmp_path):
    replicas = make_replicas(REPO / "examples", 2, tmp_path)
    assert [r.name for r in replicas] == ["replica-1", "replica-2"]
    original = {p.name: [d["metadata"]["name"] for d in yaml.safe_load_all(p.read_text()) if d] for p in (REPO / "examples").glob("*.yaml")}
    for k, replica in enumerate(replicas, 1):
        copied = {p.name: [d["metadata"]["name"] for d in yaml.safe_load_all(p.read_text()) if d] for p in replica.glob("*.yaml")}
        assert copied == {name: [f"{n}-r{k}" for n in names] for name, names in original.items()}


def _rows(executor, walls, cpus, rss=(100.0, 100.0, 100.0, 100.0)):
    return [{"executor": executor, "factor": f, "objects": 1000 * f, "wall_s": w, "ms_per_object": w / f, "cpu_ms_per_object": c / f, "peak_rss_mb": m}
            for f, w, c, m in zip((1, 2, 4, 8), walls, cpus, rss)]


def test_cost_is_linear_when_the_time_per_object_stays_within_15_percent_of_1x_and_memory_flat_when_the_peak_does():
    amortised = _rows("local", [3.0, 5.0, 9.0, 17.0], [4.0, 8.0, 16.0, 32.0])  # 1 s of start-up in the wall time, none in the CPU time
    verdict = compare(amortised, ["local"])
    assert verdict == {"linear": {"local": False}, "cpu_linear": {"local": True}, "rss_flat": {"local": True}}
    growing = _rows("local", [1.0, 2.2, 4.4, 8.9], [1.0, 2.0, 4.0, 8.0], rss=(100.0, 120.0, 150.0, 200.0))
    assert compare(growing, ["local"]) == {"linear": {"local": True}, "cpu_linear": {"local": True}, "rss_flat": {"local": False}}
    quadratic = _rows("local", [1.0, 4.0, 16.0, 64.0], [1.0, 4.0, 16.0, 64.0])
    assert compare(quadratic, ["local"])["cpu_linear"] == {"local": False}


def test_an_executors_overhead_is_its_wall_time_over_the_local_executors_at_the_same_size():
    rows = _rows("local", [2.0, 4.0], [2.0, 4.0]) + _rows("ray", [3.0, 5.0], [3.0, 5.0])
    compare(rows, ["local", "ray"])
    assert [r["wall_vs_local"] for r in rows] == [1.0, 1.0, 1.5, 1.25]
