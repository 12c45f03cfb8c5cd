"""The prompt: one object, one finding, the check's remediation and its guidance.

A check's guidance is part of its declaration (checks/); on a retry the
verifier's reasons also bring the guidance of the gates that refused the
patch and of any check that now fires.
"""

from __future__ import annotations

import yaml

from ...checks import REGISTRY, Check
from ...contracts import Detection, Reason
from ...verify.gates import gate

SYSTEM = """You fix Kubernetes misconfigurations. You receive one Kubernetes object and one finding about it.
Answer with a JSON array of RFC 6902 JSON Patch operations against that object, and nothing else: no prose, no code fences.
Rules: make the smallest change that removes the finding; paths are JSON Pointers from the object's root;
never change apiVersion, kind, metadata, selectors or pod template labels; never remove containers, volumes or ports;
change only the fields the finding's remedy needs, in the finding's container or the pod securityContext; never add,
remove or replace a container or the pod spec; never change image, command, args, env, nodeName, tolerations,
replicas, hostAliases or shareProcessNamespace;
never invent image tags; values shown as <redacted-N> are hidden secrets: never write them.
If no safe change exists, answer []."""


def guidance_for(reasons: list[Reason]) -> list[str]:
    """The guidance of each gate that refused a patch, and of each check a reason names."""
    texts = []
    for reason in reasons:
        refusing = gate(reason.gate)
        texts.append(refusing.guidance.strip() if refusing else "")
        if reason.gate != "policy" and reason.check in REGISTRY:
            texts.append(REGISTRY[reason.check].guidance)
    return [text for text in dict.fromkeys(texts) if text]


def build_messages(detection: Detection, check: Check | None, redacted_object: dict, feedback: list[Reason] | None = None) -> list[dict]:
    parts = [
        f"Finding: {detection.policy_id}: {detection.violation_text}",
        f"Container: {detection.container}" if detection.container else "",
        f"Remediation: {check.remediation}" if check else "",
        f"Guidance:\n{check.guidance}" if check and check.guidance else "",
        "Object:\n" + yaml.safe_dump(redacted_object, sort_keys=False),
    ]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(p for p in parts if p)}]
    if feedback:
        extra = "\n\n".join(guidance_for(feedback))
        retry = "Your previous patch was rejected by the verifier:\n- " + "\n- ".join(str(r) for r in feedback)
        messages.append({"role": "user", "content": retry + (f"\n\nMore guidance:\n{extra}" if extra else "") + "\n\nAnswer with a corrected JSON array only."})
    return messages
