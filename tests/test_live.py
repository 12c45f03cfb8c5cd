"""Opt-in: the three sample manifests end to end against a real model API.

Skipped unless XAI_API_KEY (grok) or OPENAI_API_KEY (vendor) is set; nothing
else in the suite needs the internet."""

from __future__ import annotations

import json
import os

import pytest
from conftest import REPO

MODES = [(mode, env) for mode, env in (("grok", "XAI_API_KEY"), ("vendor", "OPENAI_API_KEY")) if os.environ.get(env)]


@pytest.mark.skipif(not MODES, reason="set XAI_API_KEY or OPENAI_API_KEY to run the live model test")
@pytest.mark.parametrize(("mode", "env"), MODES or [("none", "none")])
def test_samples_end_to_end_against_the_real_api(tmp_path, cli, mode, env):
    d, p, v = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "v.json"
    cli("detect", str(REPO / "examples"), "--out", str(d))
    code, _, stderr = cli("propose", "--detections", str(d), "--out", str(p), "--mode", mode, "--jobs", "2")
    assert code == 0, stderr
    cli("verify", "--patches", str(p), "--detections", str(d), "--out", str(v))
    verdicts = json.loads(v.read_text())
    assert verdicts and sum(x["accepted"] for x in verdicts) / len(verdicts) >= 0.9
