"""The prompt: one object, one finding, the check's remediation and our guidance.

Guidance snippets live in ``docs/policy_guidance/<check>.md``; on a retry the
verifier's errors also pull in the snippet for their gate (``_schema``,
``_safety``, ``_apply``) and for any check they name.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import yaml

from ...checks.registry import Check
from ...contracts import Detection

GUIDANCE_DIR = Path(os.environ.get("K8S_AUTO_FIX_GUIDANCE", Path(__file__).resolve().parents[4] / "docs" / "policy_guidance"))
ALIASES = {"host-pid": "host-network", "host-ipc": "host-network"}
GATE_GUIDANCE = {"schema": "_schema", "safety": "_safety", "apply": "_apply"}

SYSTEM = """You fix Kubernetes misconfigurations. You receive one Kubernetes object and one finding about it.
Answer with a JSON array of RFC 6902 JSON Patch operations against that object, and nothing else: no prose, no code fences.
Rules: make the smallest change that removes the finding; paths are JSON Pointers from the object's root;
never change apiVersion, kind, metadata, selectors or pod template labels; never remove containers, volumes or ports;
never invent image tags; values shown as <redacted-N> are hidden secrets: never write them.
If no safe change exists, answer []."""


@lru_cache(maxsize=None)
def guidance(name: str) -> str:
    path = GUIDANCE_DIR / f"{ALIASES.get(name, name)}.md"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def guidance_for_errors(errors: list[str]) -> list[str]:
    names = []
    for error in errors:
        gate = error.split(":", 1)[0].split(" ")[0]
        if gate in GATE_GUIDANCE:
            names.append(GATE_GUIDANCE[gate])
        match = re.match(r"regression: ([a-z0-9-]+):", error)
        if match:
            names.append(match.group(1))
    return [text for text in dict.fromkeys(guidance(n) for n in names) if text]


def build_messages(detection: Detection, check: Check | None, redacted_object: dict, feedback: list[str] | None = None) -> list[dict]:
    parts = [
        f"Finding: {detection.policy_id}: {detection.violation_text}",
        f"Container: {detection.container}" if detection.container else "",
        f"Remediation: {check.remediation}" if check else "",
        f"Guidance:\n{guidance(detection.policy_id)}" if guidance(detection.policy_id) else "",
        "Object:\n" + yaml.safe_dump(redacted_object, sort_keys=False),
    ]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(p for p in parts if p)}]
    if feedback:
        extra = "\n\n".join(guidance_for_errors(feedback))
        retry = "Your previous patch was rejected by the verifier:\n- " + "\n- ".join(feedback)
        messages.append({"role": "user", "content": retry + (f"\n\nMore guidance:\n{extra}" if extra else "") + "\n\nAnswer with a corrected JSON array only."})
    return messages
