"""--baseline: report only the findings a saved run did not have.

A team adopting the tool on an old repository saves today's findings once
(`detect --out baseline.json`, or the SARIF it uploads) and from then on
fails only on new ones. Findings are matched by their stable ids (a hash of
file, object, check, container and message), so a finding stays known
while the object around it is edited, and a fixed then re-introduced one is
new again only if its message changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..contracts import DetectResult

SARIF_FINGERPRINT = "k8sAutoFixId/v1"


class BaselineError(Exception):
    pass


def baseline_ids(path: Path) -> set[str]:
    """The finding ids of a saved `detect` JSON (a list of detections) or SARIF file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise BaselineError(f"{path}: cannot read the baseline: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: the baseline is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise BaselineError(f"{path}:{err.lineno}: the baseline is not valid JSON: {err.msg}") from None
    if isinstance(data, list) and all(isinstance(d, dict) and isinstance(d.get("id"), str) for d in data):
        return {d["id"] for d in data}
    if isinstance(data, dict) and isinstance(data.get("runs"), list):
        results = [r for run in data["runs"] if isinstance(run, dict) for r in run.get("results") or []]
        ids = [(r.get("partialFingerprints") or {}).get(SARIF_FINGERPRINT) for r in results if isinstance(r, dict)]
        if all(isinstance(i, str) for i in ids):
            return set(ids)
        raise BaselineError(f"{path}: a SARIF result has no {SARIF_FINGERPRINT} fingerprint: not written by k8s-auto-fix")
    raise BaselineError(f"{path}: not a baseline: expected the JSON list `detect --out` writes, or its SARIF")


def without_baseline(result: DetectResult, known: set[str]) -> tuple[DetectResult, int]:
    """The result without the findings in ``known``, and how many were left out."""
    new = [d for d in result.detections if d.id not in known]
    return result.model_copy(update={"detections": new}), len(result.detections) - len(new)
