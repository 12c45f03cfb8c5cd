"""The model proposer: ask, guard, merge with the rule fix, verify, retry with feedback.

For each finding, up to ``max_attempts`` times: send the redacted object and
the finding (plus, on a retry, the verifier's reasons); guard the answer;
apply the rule fix on top when it is still needed (the "guardrails": the
rule fix's essential operations always land, and the record says so); run
the patch through the same gates as `verify`. The first accepted patch wins.
A finding the model never fixes falls back to the rule fix
(``source: rules-fallback``) or is reported unfixed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from ...checks import REGISTRY
from ...checks.fixes import FixOptions, fix_of, propose_fix, strictest
from ...checks.selection import select_checks
from ...config import RunConfig
from ...contracts import Applicability, Detection, PatchRecord, Reason, Source, object_digest
from ...manifests.objects import K8sObject
from ...manifests.store import ObjectStore
from ...patch import PATCH_ERRORS, apply_patch
from ...verify.gates.apply import APPLY
from ...verify.verifier import Verifier, VerifyOptions
from ..rules import patch_record
from .client import ModelError, Usage
from .guards import GuardError, check_patch
from .prompt import build_messages
from .providers import ModelClient
from .redact import redact


@dataclass
class LLMResult:
    patches: list[PatchRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    unfixed: list[str] = field(default_factory=list)

    def summary(self, findings: int, model: str) -> str:
        return model_summary(Counter(p.source.value for p in self.patches), len(self.unfixed), self.usage, findings, model)


def model_summary(sources: Counter, unfixed: int, usage: Usage, findings: int, model: str) -> str:
    """The one-line account of a model run: records by source, unfixed findings, requests, tokens, model time."""
    spent = usage.as_dict()
    return (
        f"{sum(sources.values())} patch record(s) for {findings} finding(s) via {model}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(sources.items()))
        + f"; {unfixed} unfixed; {spent['requests']} request(s), "
        f"{spent['prompt_tokens']}+{spent['completion_tokens']} tokens, {spent['latency_s']} s model time"
    )


Progress = Callable[[int, "PatchRecord | None"], None]  # told (the finding's index, its record) as each completes


def propose_with_model(
    client: ModelClient, config: RunConfig, detections: list[Detection], endpoint: str, options: FixOptions | None = None, jobs: int = 4,
    progress: Progress | None = None, store: ObjectStore | None = None,
) -> LLMResult:  # fmt: skip
    """Model patches for ``detections``, verified with the default check suite (objects from ``store``, or a new one)."""
    options = options or FixOptions(config.fixes)
    store = store or ObjectStore()
    verifier = Verifier(select_checks(), VerifyOptions(image_facts=options.facts), store)
    return ModelProposer(client, config, verifier, store, endpoint, options).propose_all(detections, jobs, progress)


class ModelProposer:
    def __init__(self, client: ModelClient, config: RunConfig, verifier: Verifier, store: ObjectStore, endpoint: str, options: FixOptions | None = None):
        self.client, self.config, self.verifier, self.store = client, config, verifier, store
        self.endpoint = endpoint
        self.fix_options = options or FixOptions(config.fixes)

    def propose_all(self, detections: list[Detection], jobs: int = 1, progress: Progress | None = None) -> LLMResult:
        """One record per finding, in the findings' order. A finding whose work
        fails in any way is that finding's unfixed record, never the batch's
        end; ``progress`` is told of each record as it completes."""
        # Load every file first: the store is then only read by the threads.
        for d in detections:
            self.store.application_of(d)
        done: dict[int, PatchRecord | None] = {}
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(self._propose_safely, d): index for index, d in enumerate(detections)}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if progress is not None:
                    progress(futures[future], done[futures[future]])
        result = LLMResult()
        for index in range(len(detections)):
            record = done[index]
            if record is None:
                continue
            result.patches.append(record)
            if record.is_manual:
                result.unfixed.append(record.id)
        result.usage = self.client.usage
        return result

    def _propose_safely(self, detection: Detection) -> PatchRecord | None:
        try:
            return self.propose_one(detection)
        except Exception as err:  # noqa: BLE001 - one finding's failure, whatever it is, stays that finding's
            return PatchRecord(
                id=detection.id, policy_id=detection.policy_id, source=Source.MODEL, endpoint=self.endpoint, patch=[],
                applicability=Applicability.MANUAL, explanation=f"unfixed: {type(err).__name__} while proposing: {str(err)[:200]}",
            )  # fmt: skip

    def propose_one(self, detection: Detection) -> PatchRecord | None:
        obj = self.store.object(detection.manifest_path, detection.document_index, detection.list_index)
        if obj is None:
            return None
        check = REGISTRY.get(detection.policy_id)
        redacted = redact(obj.data)
        feedback: list[Reason] | None = None
        attempts, usage, last_error = 0, Usage(), ""
        for attempts in range(1, self.config.max_attempts + 1):
            try:
                text, cost = self.client.complete(build_messages(detection, check, redacted.data, feedback))
                usage.add(cost)
                ops = check_patch(text, obj, detection.container, self.config.proposer.max_ops, detection.policy_id)
                record = self._record(detection, obj, ops, attempts, usage)
            except (ModelError, GuardError) as err:
                last_error = f"{type(err).__name__}: {err}"
                feedback = [APPLY.reason(str(err))] if isinstance(err, GuardError) else None
                continue
            verdict = self.verifier.verify([record], [detection]).verdicts
            if verdict and verdict[0].accepted:
                return record
            feedback = (verdict[0].reasons if verdict else None) or [Reason(gate="verify", message="rejected by the verifier")]
            last_error = "; ".join(str(r) for r in feedback)
        return self._fallback(detection, obj, attempts, usage, last_error)

    def _record(self, detection: Detection, obj: K8sObject, ops: list[dict], attempts: int, usage: Usage) -> PatchRecord:
        source, creates, explanation = Source.MODEL, None, "model patch"
        rule = self._rule_on_top(detection, obj, ops) if self.config.rules.enabled else None
        if rule is not None and not rule.is_manual:
            ops = ops + rule.ops
            creates = rule.creates
            source, explanation = Source.MODEL_WITH_RULES, "model patch, with the rule fix merged in (guardrails)"
        fix = fix_of(detection.policy_id)
        # A model's patch is never applied unattended.
        applicability = strictest(fix.applicability if fix else Applicability.REVIEW, Applicability.REVIEW)
        return PatchRecord(
            id=detection.id,
            policy_id=detection.policy_id,
            source=source,
            endpoint=self.endpoint,
            patch=ops,
            applicability=applicability,
            explanation=explanation,
            creates=creates,
            object_digest=object_digest(obj.data),
            usage={**usage.as_dict(), "attempts": attempts},
        )

    def _rule_on_top(self, detection: Detection, obj: K8sObject, ops: list[dict]):
        """The rule fix, proposed on the object as the model's patch leaves it,
        when the finding still fires there (None when it does not)."""
        if fix_of(detection.policy_id) is None:
            return None
        try:
            patched = obj.with_data(apply_patch(obj.data, ops))
        except PATCH_ERRORS:
            return None
        return propose_fix(detection.key, patched, self.store.application_of(detection), self.fix_options)

    def _fallback(self, detection: Detection, obj: K8sObject, attempts: int, usage: Usage, last_error: str) -> PatchRecord:
        meta = {**usage.as_dict(), "attempts": attempts}
        if self.config.rules.enabled and fix_of(detection.policy_id) is not None:
            proposal = propose_fix(detection.key, obj, self.store.application_of(detection), self.fix_options)
            if proposal is not None and not proposal.is_manual:
                record = patch_record(detection, obj, proposal, object_digest(obj.data), Source.RULES_FALLBACK)
                explanation = f"the model's patches were rejected ({last_error[:200]}); rule fix instead"
                return record.model_copy(update={"explanation": explanation, "usage": meta, "endpoint": self.endpoint})
        return PatchRecord(
            id=detection.id, policy_id=detection.policy_id, source=Source.MODEL, endpoint=self.endpoint, patch=[],
            applicability=Applicability.MANUAL, explanation=f"unfixed: {last_error[:300] or 'no usable answer'}", usage=meta,
        )
