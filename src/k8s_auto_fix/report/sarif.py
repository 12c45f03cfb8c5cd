"""Detections as SARIF 2.1.0, for code-scanning dashboards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..checks.registry import Check
from ..contracts import Detection, Problem
from ..defaults import tool_version

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _artifact_uri(path: str) -> str:
    """Relative paths stay relative (SARIF consumers resolve them against the repo)."""
    if path == "-":
        return "stdin"
    as_path = Path(path)
    return as_path.as_uri() if as_path.is_absolute() else as_path.as_posix()


def _rule(check: Check) -> dict:
    return {
        "id": check.id,
        "name": "".join(part.capitalize() for part in check.id.split("-")),
        "shortDescription": {"text": check.description or check.id},
        "help": {"text": check.remediation or check.description or check.id},
        "defaultConfiguration": {"level": check.severity.sarif_level},
        "properties": {"severity": check.severity.value, "kinds": str(check.kinds)},
    }


def _result(detection: Detection, rule_index: dict[str, int]) -> dict:
    region = None
    if detection.line:
        region = {"startLine": detection.line}
        if detection.column:
            region["startColumn"] = detection.column
    location = {"artifactLocation": {"uri": _artifact_uri(detection.manifest_path)}}
    if region:
        location["region"] = region
    obj = detection.object
    result = {
        "ruleId": detection.policy_id,
        "level": detection.severity.sarif_level,
        "message": {"text": detection.violation_text},
        "locations": [
            {
                "physicalLocation": location,
                "logicalLocations": [
                    {
                        "name": obj.name,
                        "fullyQualifiedName": f"{obj.namespace}/{obj.kind}/{obj.name}".lstrip("/"),
                        "kind": "object",
                    }
                ],
            }
        ],
        "partialFingerprints": {"k8sAutoFixId/v1": detection.id},
    }
    if detection.json_pointer is not None:
        result["properties"] = {"jsonPointer": detection.json_pointer}
    if detection.policy_id in rule_index:
        result["ruleIndex"] = rule_index[detection.policy_id]
    return result


def _notification(problem: Problem) -> dict:
    location = {"physicalLocation": {"artifactLocation": {"uri": _artifact_uri(problem.path)}}}
    if problem.line:
        location["physicalLocation"]["region"] = {"startLine": problem.line}
    return {
        "level": problem.level if problem.level in ("error", "warning") else "note",
        "message": {"text": problem.message},
        "locations": [location],
    }


def to_sarif(detections: Sequence[Detection], problems: Sequence[Problem], checks: Sequence[Check]) -> dict:
    rules = sorted(checks, key=lambda c: c.id)
    rule_index = {check.id: i for i, check in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "k8s-auto-fix",
                        "version": tool_version(),
                        "rules": [_rule(c) for c in rules],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not any(p.level == "error" for p in problems),
                        "toolExecutionNotifications": [_notification(p) for p in problems],
                    }
                ],
                "results": [_result(d, rule_index) for d in detections],
            }
        ],
    }
