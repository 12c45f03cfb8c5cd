"""ValidatingAdmissionPolicy as an engine: the API server itself evaluates the policies.

The policies and their bindings (from --policies) are applied to the API
server of the kubeconfig (`k8s-auto-fix cluster up` starts a throwaway one),
then every object is dry-run (``dryRun=All``: admission runs, nothing is
stored). Each binding is applied with its actions set to ``Warn``, so that
every failed validation of every policy comes back as a warning on the one
dry run (a ``Deny`` stops at the first policy, and ``Audit`` only reaches
the audit log); the actions the binding asked for set the severity (Deny
high, Warn medium, Audit low) unless the policy's ``k8s-auto-fix.io/severity``
annotation names one. A finding's id is ``vap:<policy>/<n>``, ``n`` the
validation's position (from 1).

Policies become active a moment after they are created (the admission
plugin watches policies and bindings): a canary policy and binding, applied
last with a token of this install, deny a ConfigMap labelled with it; once
a dry run of it is denied, every policy and binding before them is active.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import yaml

from ..cluster import ClusterError, KubeClient
from ..contracts import DetectResult, Engine, Problem, Severity
from ..manifests.loader import load_paths
from . import VapError
from .policy_files import in_object_order, policy_detection, read_policy_documents

PREFIX = "vap:"
SEVERITY_ANNOTATION = "k8s-auto-fix.io/severity"
MANAGER = "k8s-auto-fix"
API = "/apis/admissionregistration.k8s.io/v1"
CANARY = "k8s-auto-fix-canary"
CANARY_TIMEOUT_S = 30
_SEVERITIES = {"critical": Severity.CRITICAL, "high": Severity.HIGH, "medium": Severity.MEDIUM, "low": Severity.LOW}
_ACTION_SEVERITY = {"Deny": Severity.HIGH, "Warn": Severity.MEDIUM, "Audit": Severity.LOW}
# "Validation failed for ValidatingAdmissionPolicy 'NAME' with binding 'BINDING': MESSAGE"
_WARNING = re.compile(r"Validation failed for ValidatingAdmissionPolicy '([^']+)' with binding '([^']+)': (.*)", re.S)


@dataclass
class VapPolicies:
    """The ValidatingAdmissionPolicies and bindings of the --policies folders."""

    policies: dict[str, dict] = field(default_factory=dict)  # name -> the policy object
    digest: str = ""  # of every policy file's text
    bindings: dict[str, dict] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # policy -> its file

    def severity(self, policy: str) -> Severity:
        annotations = (self.policies[policy].get("metadata") or {}).get("annotations") or {}
        named = _SEVERITIES.get(str(annotations.get(SEVERITY_ANNOTATION, "")).lower())
        if named:
            return named
        actions = [a for b in self.bindings.values() if (b.get("spec") or {}).get("policyName") == policy for a in b["spec"].get("validationActions") or []]
        return max((_ACTION_SEVERITY.get(a, Severity.MEDIUM) for a in actions), key=lambda s: s.weight, default=Severity.MEDIUM)

    def rule(self, policy: str, message: str) -> int:
        """The position (from 1) of the validation whose message this is."""
        validations = (self.policies[policy].get("spec") or {}).get("validations") or []
        for index, validation in enumerate(validations, 1):
            if validation.get("message") and validation["message"] == message.strip():
                return index
            if not validation.get("message") and validation.get("expression", "").strip() in message:
                return index
        return 1


def load_vap_policies(folders: Sequence[str]) -> VapPolicies:
    """The policies and bindings of ``folders``; a file that does not parse is an error naming the file and line."""
    if not folders:
        raise VapError("the vap engine needs --policies DIR (a folder of ValidatingAdmissionPolicy and binding objects)")
    found = VapPolicies()
    files, found.digest = read_policy_documents(folders, VapError)
    for path, documents in files:
        for doc in documents:
            if not isinstance(doc, dict):
                continue
            name = str((doc.get("metadata") or {}).get("name") or "")
            if doc.get("kind") == "ValidatingAdmissionPolicy":
                found.policies[name], found.files[name] = doc, path
            elif doc.get("kind") == "ValidatingAdmissionPolicyBinding":
                found.bindings[name] = doc
    if not found.policies:
        raise VapError(f"no ValidatingAdmissionPolicy in {', '.join(folders)}")
    return found


# --- the server ------------------------------------------------------------------------------


def install(client: KubeClient, policies: VapPolicies) -> None:
    """Apply every policy, and every binding with its actions set to Warn; wait until they are active."""
    for name, policy in policies.policies.items():
        _apply(client, "validatingadmissionpolicies", name, policy)
    for name, binding in policies.bindings.items():
        spec = {**(binding.get("spec") or {}), "validationActions": ["Warn"]}
        _apply(client, "validatingadmissionpolicybindings", name, {**binding, "spec": spec})
    token = secrets.token_hex(8)  # this install's: an earlier canary must not answer for it
    _apply(client, "validatingadmissionpolicies", CANARY, _canary_policy(token))
    _apply(client, "validatingadmissionpolicybindings", CANARY, {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": CANARY},
        "spec": {"policyName": CANARY, "validationActions": ["Deny"], "matchResources": {"objectSelector": {"matchLabels": {CANARY: token}}}},
    })  # fmt: skip
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CANARY, "namespace": "default", "labels": {CANARY: token}}}
    deadline = time.monotonic() + CANARY_TIMEOUT_S
    while time.monotonic() < deadline:
        if client.dry_run(probe).error:
            return
        time.sleep(0.2)
    raise VapError(f"the API server did not activate the policies within {CANARY_TIMEOUT_S} s")


def _canary_policy(token: str) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": CANARY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]},
            "matchConditions": [
                {"name": "probe", "expression": f"has(object.metadata.labels) && object.metadata.labels['{CANARY}'] == '{token}'"}
            ],
            "validations": [{"expression": "false", "message": "the k8s-auto-fix canary: policies are active"}],
        },
    }


def _apply(client: KubeClient, plural: str, name: str, obj: dict) -> None:
    """Server-side apply: created, or replaced by this version."""
    response = client.http.patch(
        f"{API}/{plural}/{name}",
        params={"fieldManager": MANAGER, "force": "true"},
        content=yaml.safe_dump(obj).encode(),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    if response.status_code not in (200, 201):
        raise VapError(f"{plural[:-1]} {name}: the API server refused it: {response.text[:300]}")


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    policy: str
    rule: int
    message: str

    @property
    def policy_id(self) -> str:
        return f"{PREFIX}{self.policy}/{self.rule}"


def evaluate(client: KubeClient, policies: VapPolicies, objects: Sequence[dict]) -> list[tuple[list[Failure], str | None]]:
    """Per object: the failed validations, and the server's refusal when the object never reached them."""
    out = []
    for result in client.dry_run_all(objects):
        failures = []
        for warning in result.warnings:
            match = _WARNING.match(warning)
            if match and match.group(1) in policies.policies:
                policy, message = match.group(1), match.group(3).strip()
                failures.append(Failure(policy, policies.rule(policy, message), message))
        out.append((sorted(set(failures), key=lambda f: (f.policy, f.rule)), result.error))
    return out


_INSTALLED: set[tuple[str, str]] = set()  # (server, policies digest): installed by this process (or its parent)
_RESULTS: dict[tuple[str, str, str], list[Failure]] = {}  # (server, policies digest, object digest) -> failures


def connect(kubeconfig: str | None, policies: VapPolicies) -> KubeClient:
    """A client of the kubeconfig's API server, with the policies installed (once per process and server)."""
    try:
        client = KubeClient.from_kubeconfig(kubeconfig)
        if (client.server, policies.digest) not in _INSTALLED:
            install(client, policies)
            _INSTALLED.add((client.server, policies.digest))
        return client
    except (ClusterError, httpx.HTTPError) as err:
        raise VapError(f"the vap engine needs an API server (`k8s-auto-fix cluster up`): {err}") from None


def failures_of(objects: Sequence[dict], policy_folders: Sequence[str], kubeconfig: str | None) -> list[list[Failure]]:
    """The failed validations of each object, memoised per object (the gates ask again about objects detect judged)."""
    policies = load_vap_policies(policy_folders)
    client = connect(kubeconfig, policies)
    try:
        keys = [(client.server, policies.digest, _digest(o)) for o in objects]
        todo = {k: o for k, o in zip(keys, objects) if k not in _RESULTS}
        if todo:
            for key, (found, _) in zip(todo, evaluate(client, policies, list(todo.values()))):
                _RESULTS[key] = found
    except (ClusterError, httpx.HTTPError) as err:
        raise VapError(f"dry run: {err}") from None
    finally:
        client.close()
    return [_RESULTS[k] for k in keys]


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def detect_with_vap(paths: Sequence[str], policy_folders: Sequence[str], kubeconfig: str | None = None) -> DetectResult:
    policies = load_vap_policies(policy_folders)
    loaded = load_paths(paths)
    result = DetectResult(problems=list(loaded.problems), files=len(loaded.files), objects=len(loaded.objects))
    objects = [o for o in loaded.objects if not o.skimmed]
    client = connect(kubeconfig, policies)
    try:
        judged = evaluate(client, policies, [o.data for o in objects])
    except (ClusterError, httpx.HTTPError) as err:
        raise VapError(f"dry run: {err}") from None
    finally:
        client.close()
    for obj, (found, _) in zip(objects, judged):
        _RESULTS[(client.server, policies.digest, _digest(obj.data))] = found
    for obj, (failures, refused) in zip(objects, judged):
        result.detections += [policy_detection(obj, f.policy_id, f.message, policies.severity(f.policy), Engine.VAP) for f in failures]
        if refused and not failures:
            result.problems.append(Problem(obj.path, f"{obj.ref}: not evaluated by the policies, the API server refused it: {refused}", line=obj.line, level="note"))
    in_object_order(result.detections)
    return result
