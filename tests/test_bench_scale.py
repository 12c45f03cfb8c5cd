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


def test_the_comparison_tells_amortised_start_up_from_cost_that_grows_faster_than_the_input():
    def rows(walls):
        return [{"executor": "local", "factor": f, "objects": 1000 * f, "wall_s": w, "ms_per_object": w / f, "peak_rss_mb": 100.0} for f, w in zip((1, 2, 4, 8), walls)]

    amortised = rows([3.0, 5.0, 9.0, 17.0])  # 1 s to start, then 2 ms an object
    verdict = compare(amortised, ["local"])
    assert verdict["linear"] == {"local": False} and verdict["marginal_linear"] == {"local": True}
    assert [r["marginal_ms_per_object"] for r in amortised] == [None, 2.0, 2.0, 2.0]
    quadratic = rows([1.0, 4.0, 16.0, 64.0])
    assert compare(quadratic, ["local"])["marginal_linear"] == {"local": False}


def test_an_executors_overhead_is_its_wall_time_over_the_local_executors_at_the_same_size():
    rows = [{"executor": e, "factor": f, "objects": 1000 * f, "wall_s": w, "ms_per_object": w / f, "peak_rss_mb": 100.0}
            for e, walls in (("local", (2.0, 4.0)), ("ray", (3.0, 5.0))) for f, w in zip((1, 2), walls)]
    compare(rows, ["local", "ray"])
    assert [r["wall_vs_local"] for r in rows] == [1.0, 1.0, 1.5, 1.25]
