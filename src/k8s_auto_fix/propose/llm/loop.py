"""The model proposer: ask, guard, merge with the rule fix, verify, retry with feedback.

For each finding, up to ``max_attempts`` times: send the redacted object and
the finding (plus, on a retry, the verifier's errors); guard the answer;
apply the rule fix on top when it is still needed (the "guardrails": the
rule fix's essential operations always land, and the record says so); run
the patch through the same gates as `verify`. The first accepted patch wins.
A finding the model never fixes falls back to the rule fix
(``source: rules-fallback``) or is reported unfixed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...checks import REGISTRY
from ...checks.patching import CannotPatch
from ...checks.registry import FixContext
from ...config import RunConfig
from ...contracts import Applicability, Detection, PatchRecord, object_digest
from ...manifests.objects import K8sObject
from ...manifests.store import ObjectStore
from ...verify.verifier import PATCH_ERRORS, Verifier, apply_patch
from .client import ChatClient, ModelError, Usage
from .guards import GuardError, check_patch
from .prompt import build_messages
from .redact import redact


@dataclass
class LLMResult:
    patches: list[PatchRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    unfixed: list[str] = field(default_factory=list)

    def summary(self, findings: int, model: str) -> str:
        sources: dict[str, int] = {}
        for patch in self.patches:
            sources[patch.source] = sources.get(patch.source, 0) + 1
        usage = self.usage.as_dict()
        return (
            f"{len(self.patches)} patch record(s) for {findings} finding(s) via {model}: "
            + ", ".join(f"{n} {s}" for s, n in sorted(sources.items()))
            + f"; {len(self.unfixed)} unfixed; {usage['requests']} request(s), "
            f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens, {usage['latency_s']} s model time"
        )


def propose_with_model(client: ChatClient, config: RunConfig, detections: list[Detection], source: str, image_pins=None, jobs: int = 4) -> LLMResult:
    """Model patches for ``detections``, verified with the default check suite."""
    from ...checks.selection import select_checks
    from ...verify.verifier import VerifyOptions

    store = ObjectStore()
    verifier = Verifier(select_checks(), VerifyOptions(), store)
    return ModelProposer(client, config, verifier, store, source, image_pins).propose_all(detections, jobs)


class ModelProposer:
    def __init__(self, client: ChatClient, config: RunConfig, verifier: Verifier, store: ObjectStore, source: str, image_pins=None):
        self.client, self.config, self.verifier, self.store = client, config, verifier, store
        self.source = source
        self.image_pins = image_pins or {}

    def propose_all(self, detections: list[Detection], jobs: int = 1) -> LLMResult:
        # Load every file first: the store is then only read by the threads.
        for d in detections:
            self.store.application(d.application, d.manifest_path)
        result = LLMResult()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for record in pool.map(self.propose_one, detections):
                if record is None:
                    continue
                result.patches.append(record)
                if not record.patch and record.creates is None:
                    result.unfixed.append(record.id)
        result.usage = self.client.usage
        return result

    def propose_one(self, detection: Detection) -> PatchRecord | None:
        obj = self.store.object(detection.manifest_path, detection.document_index, detection.list_index)
        if obj is None:
            return None
        check = REGISTRY.get(detection.policy_id)
        redacted = redact(obj.data)
        feedback: list[str] | None = None
        attempts, usage, last_error = 0, Usage(), ""
        for attempts in range(1, self.config.max_attempts + 1):
            try:
                text, cost = self.client.complete(build_messages(detection, check, redacted.data, feedback))
                usage.add(cost)
                ops = check_patch(text, obj, detection.container, self.config.proposer.max_ops)
                record = self._record(detection, obj, ops, attempts, usage)
            except (ModelError, GuardError) as err:
                last_error = f"{type(err).__name__}: {err}"
                feedback = [f"apply: {err}"] if isinstance(err, GuardError) else None
                continue
            verdict = self.verifier.verify([record], [detection]).verdicts
            if verdict and verdict[0].accepted:
                return record
            feedback = (verdict[0].errors if verdict else None) or ["rejected by the verifier"]
            last_error = "; ".join(feedback)
        return self._fallback(detection, obj, attempts, usage, last_error)

    def _record(self, detection: Detection, obj: K8sObject, ops: list[dict], attempts: int, usage: Usage) -> PatchRecord:
        source, creates, explanation = self.source, None, "model patch"
        rule = self._rule_proposal(detection, obj, ops) if self.config.rules.enabled else None
        if rule is not None and (rule.ops or rule.creates):
            ops = ops + rule.ops
            creates = rule.creates
            source, explanation = f"{self.source}+rules", "model patch, with the rule fix merged in (guardrails)"
        check = REGISTRY.get(detection.policy_id)
        applicability = check.fix.applicability if check and check.fix else Applicability.REVIEW
        return PatchRecord(
            id=detection.id,
            policy_id=detection.policy_id,
            source=source,
            patch=ops,
            applicability=max(applicability, Applicability.REVIEW, key=_strictness),
            explanation=explanation,
            creates=creates,
            object_digest=object_digest(obj.data),
            usage={**usage.as_dict(), "attempts": attempts},
        )

    def _rule_fix(self, detection: Detection, obj: K8sObject):
        """The check's rule fix for ``detection`` on ``obj`` (None if there is none)."""
        check = REGISTRY.get(detection.policy_id)
        if check is None or check.fix is None:
            return None
        app = self.store.application(detection.application, detection.manifest_path)
        ctx = FixContext(obj, app, obj.container_named(detection.container), detection.violation_text, self.config.fixes, self.image_pins)
        try:
            return check.fix.build(ctx)
        except CannotPatch:
            return None

    def _rule_proposal(self, detection: Detection, obj: K8sObject, ops: list[dict]):
        """The rule fix, proposed on the object as the model's patch leaves it,
        when the finding still fires there."""
        check = REGISTRY.get(detection.policy_id)
        if check is None or check.fix is None:
            return None
        try:
            patched = K8sObject(obj.path, obj.document_index, obj.line, apply_patch(obj.data, ops), obj.list_index)
        except PATCH_ERRORS:
            return None
        app = self.store.application(detection.application, detection.manifest_path)
        if (detection.policy_id, detection.container, detection.violation_text) not in self.verifier.findings_about(patched, app, check, detection.container):
            return None
        return self._rule_fix(detection, patched)

    def _fallback(self, detection: Detection, obj: K8sObject, attempts: int, usage: Usage, last_error: str) -> PatchRecord:
        check = REGISTRY.get(detection.policy_id)
        proposal = self._rule_fix(detection, obj) if self.config.rules.enabled else None
        meta = {**usage.as_dict(), "attempts": attempts}
        if proposal is not None and (proposal.ops or proposal.creates):
            return PatchRecord(
                id=detection.id, policy_id=detection.policy_id, source="rules-fallback", patch=proposal.ops,
                applicability=proposal.applicability or check.fix.applicability, creates=proposal.creates,
                explanation=f"the model's patches were rejected ({last_error[:200]}); rule fix instead",
                object_digest=object_digest(obj.data), usage=meta,
            )
        return PatchRecord(
            id=detection.id, policy_id=detection.policy_id, source=self.source, patch=[],
            applicability=Applicability.MANUAL, explanation=f"unfixed: {last_error[:300] or 'no usable answer'}", usage=meta,
        )


def _strictness(applicability: Applicability) -> int:
    return {Applicability.SAFE: 0, Applicability.REVIEW: 1, Applicability.MANUAL: 2}[applicability]
