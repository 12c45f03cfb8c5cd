"""The real Kyverno CLI as an engine: policies as they are, findings in the detections contract.

`kubectl-kyverno apply DIR... --resource FILE --policy-report` is run on
batches of objects (the CLI takes about a second to start and load its
policies, so one run per object would be most of the cost). Inside a batch
every object gets a name of its own: the CLI keeps its resources in a fake
cluster and stops on two objects of one kind with the same name, which real
inputs have all the time (a hundred Deployments called ``nginx``). The
report's results are mapped back by that name. Each failed rule becomes a
detection ``kyverno:<policy>/<rule>`` (autogen rules under the name of the
rule they were generated from); skipped and errored rules become notes.

Results are memoised per object (by its content and the policy files' content), so
the gates that ask again about an object detect already ran do not run the
CLI again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..contracts import Detection, DetectResult, Engine, Problem, Severity
from ..manifests.loader import load_paths
from ..manifests.objects import K8sObject
from .policy_files import in_object_order, policy_detection, read_policy_documents

BATCH_SIZE = 400  # objects per CLI run: large enough that start-up is a small share, small enough to bound its memory
POLICY_KINDS = ("ClusterPolicy", "Policy", "ValidatingPolicy", "NamespacedValidatingPolicy", "ValidatingAdmissionPolicy")
SEVERITY_ANNOTATION = "policies.kyverno.io/severity"
PREFIX = "kyverno:"
INSTALL_HINT = "build it with `bash scripts/tools.sh kubectl-kyverno` (or `make setup`)"
_SEVERITIES = {"critical": Severity.CRITICAL, "high": Severity.HIGH, "medium": Severity.MEDIUM, "low": Severity.LOW, "info": Severity.LOW}


class KyvernoError(Exception):
    pass


def find_kyverno() -> str | None:
    explicit = os.environ.get("KYVERNO")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    local = Path(__file__).resolve().parents[3] / ".tools" / "bin" / "kubectl-kyverno"
    return shutil.which("kubectl-kyverno") or (str(local) if local.is_file() else None)


def require_kyverno() -> str:
    binary = find_kyverno()
    if binary is None:
        raise KyvernoError(f"kubectl-kyverno not found on PATH; {INSTALL_HINT}")
    return binary


# --- the policies -------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    policy: str
    name: str
    kind: str  # validate, mutate, generate, verifyImages
    style: str  # for validate: pattern, anyPattern, deny, cel, podSecurity, foreach, ...
    message: str = ""


@dataclass
class PolicySet:
    """The policies in the folders given with --policies."""

    folders: tuple[str, ...]
    severity: dict[str, Severity] = field(default_factory=dict)  # policy -> severity (its annotation)
    files: dict[str, str] = field(default_factory=dict)  # policy -> the file it is in
    rules: list[Rule] = field(default_factory=list)
    digest: str = ""  # of every policy file's text: results are memoised under it

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(os.path.abspath(f) for f in self.folders)

    def rule(self, policy: str, name: str) -> Rule | None:
        return next((r for r in self.rules if r.policy == policy and r.name == name), None)


def load_policies(folders: Sequence[str]) -> PolicySet:
    """The policies of ``folders`` (files or folders), read again on every
    call (a policy edited between two runs of a long process counts); a policy
    file that does not parse is an error naming the file and line."""
    if not folders:
        raise KyvernoError("the kyverno engine needs --policies DIR (a folder of Kyverno policies)")
    found = PolicySet(tuple(folders))
    files, found.digest = read_policy_documents(folders, KyvernoError)
    for path, documents in files:
        _add_policies(path, documents, found)
    if not found.files:
        raise KyvernoError(f"no Kyverno policies in {', '.join(folders)}")
    return found


def _add_policies(path: str, documents: list, into: PolicySet) -> None:
    """Adds the policies of one file's documents to ``into``."""
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") not in POLICY_KINDS:
            continue
        meta = doc.get("metadata") or {}
        name = str(meta.get("name") or "")
        annotations = meta.get("annotations") or {}
        into.files[name] = path
        into.severity[name] = _SEVERITIES.get(str(annotations.get(SEVERITY_ANNOTATION, "")).lower(), Severity.MEDIUM)
        for rule in (doc.get("spec") or {}).get("rules") or []:
            if not isinstance(rule, dict):
                continue
            kind = next((k for k in ("validate", "mutate", "generate", "verifyImages") if k in rule), "validate")
            body = rule.get(kind) if isinstance(rule.get(kind), dict) else {}
            style = next((s for s in ("pattern", "anyPattern", "deny", "cel", "podSecurity", "foreach", "manifests", "assert") if s in body), kind)
            into.rules.append(Rule(name, str(rule.get("name", "")), kind, style, str(body.get("message", ""))))
        if doc.get("kind") != "ClusterPolicy" and doc.get("kind") != "Policy":  # CEL policies: one rule, the policy itself
            into.rules.append(Rule(name, name, "validate", "cel"))


# --- running the CLI ----------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    policy: str
    rule: str  # autogen rules under the name of the rule they come from
    result: str  # pass, fail, warn, error, skip
    message: str
    severity: str = ""

    @property
    def policy_id(self) -> str:
        return f"{PREFIX}{self.policy}/{self.rule}"

    @property
    def failed(self) -> bool:
        return self.result in ("fail", "warn")


@dataclass
class CliStats:
    """Where the time went: the CLI's own runs, and everything."""

    runs: int = 0
    objects: int = 0
    cli_seconds: float = 0.0


STATS = CliStats()
_RESULTS: dict[tuple, list[RuleResult]] = {}  # (policies digest, object digest) -> its results


def base_rule(rule: str) -> str:
    """Kyverno's autogen rules (for Pod controllers and CronJobs) under the rule they were generated from."""
    for prefix in ("autogen-cronjob-", "autogen-"):
        if rule.startswith(prefix):
            return rule[len(prefix) :]
    return rule


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def evaluate(policies: PolicySet, objects: Sequence[dict], batch_size: int = BATCH_SIZE) -> list[list[RuleResult]]:
    """Every policy's results on each object, in order: the CLI runs on the
    objects it has not judged before, ``batch_size`` at a time."""
    keys = [(policies.digest, _digest(o)) for o in objects]
    todo: dict[tuple, dict] = {}
    for key, obj in zip(keys, objects):
        if key not in _RESULTS:
            todo.setdefault(key, obj)
    pending = list(todo.items())
    if pending:
        binary = require_kyverno()
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            for (key, _), results in zip(chunk, run_cli(binary, policies, [o for _, o in chunk])):
                _RESULTS[key] = results
    return [_RESULTS[k] for k in keys]


def _renamed(obj: dict, index: int) -> tuple[dict, str]:
    """The object under a name unique in its batch (and without generateName)."""
    name = f"k8s-auto-fix-{index}"
    meta = dict(obj.get("metadata") or {}) if isinstance(obj.get("metadata"), dict) else {}
    meta.pop("generateName", None)
    meta["name"] = name
    return {**obj, "metadata": meta}, name


def run_cli(binary: str, policies: PolicySet, objects: list[dict]) -> list[list[RuleResult]]:
    names: dict[str, int] = {}
    originals: list[str] = []
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-kyverno-") as scratch:
        resources = Path(scratch) / "resources.yaml"
        docs = []
        for index, obj in enumerate(objects):
            renamed, name = _renamed(obj, index)
            names[name] = index
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            originals.append(str(meta.get("name") or meta.get("generateName") or ""))
            docs.append(renamed)
        resources.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        # Mutated resources go to a file of their own, away from the report; a
        # resource the CLI cannot process does not stop the batch.
        command = [binary, "apply", *policies.key, "--resource", str(resources), "--policy-report", "--output-format", "json", "--remove-color"]
        command += ["--continue-on-fail", "--output", str(Path(scratch) / "mutated.yaml")]
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        STATS.cli_seconds += time.perf_counter() - started
        STATS.runs += 1
        STATS.objects += len(objects)
        if os.environ.get("K8S_AUTO_FIX_TRACE"):
            print(f"kyverno: {len(objects)} object(s) in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    report = _report_json(proc)
    out: list[list[RuleResult]] = [[] for _ in objects]
    for item in report.get("results") or []:
        for resource in item.get("resources") or []:
            index = names.get(str(resource.get("name", "")))
            if index is None:
                continue
            # A message that names the object names it as the author did (ids stay stable across batches).
            message = str(item.get("message", "")).replace(f"k8s-auto-fix-{index}", originals[index])
            rule = base_rule(str(item.get("rule", "")))
            out[index].append(RuleResult(str(item.get("policy", "")), rule, str(item.get("result", "")), message, str(item.get("severity", ""))))
    return out


def _report_json(proc: subprocess.CompletedProcess) -> dict:
    """The policy report in the CLI's output, which also holds its warnings
    and, with mutate rules, a summary of what they changed (before or after it)."""
    text = proc.stdout
    start = text.find('{"kind"')
    try:
        return json.JSONDecoder().raw_decode(text, start)[0] if start >= 0 else _fail(proc)
    except json.JSONDecodeError:
        return _fail(proc)


def _fail(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip() and "is deprecated" not in line]
    raise KyvernoError(f"kubectl-kyverno failed (exit {proc.returncode}): {lines[0] if lines else 'no output'}")


# --- as detections ------------------------------------------------------------------------


def detect_with_kyverno(paths: Sequence[str], policy_folders: Sequence[str], batch_size: int = BATCH_SIZE) -> DetectResult:
    """Every object of ``paths`` through the policies: failed (and warned) rules as detections, the rest as notes."""
    policies = load_policies(policy_folders)
    loaded = load_paths(paths)
    result = DetectResult(problems=list(loaded.problems), files=len(loaded.files), objects=len(loaded.objects))
    objects = [o for o in loaded.objects if not o.skimmed]
    results = evaluate(policies, [o.data for o in objects], batch_size)
    for obj, found in zip(objects, results):
        result.detections += [to_detection(obj, r, policies) for r in found if r.failed]
    result.problems += notes(policies, objects, results)
    in_object_order(result.detections)
    return result


def to_detection(obj: K8sObject, r: RuleResult, policies: PolicySet) -> Detection:
    severity = policies.severity.get(r.policy) or _SEVERITIES.get(r.severity, Severity.MEDIUM)
    return policy_detection(obj, r.policy_id, r.message, severity, Engine.KYVERNO)


def notes(policies: PolicySet, objects: list[K8sObject], results: list[list[RuleResult]]) -> list[Problem]:
    """Rules that are no detectors (mutate, generate), and rules the CLI skipped
    or could not evaluate: one note per rule and outcome, naming the first object."""
    out = [
        Problem(policies.files.get(r.policy, r.policy), f"{PREFIX}{r.policy}/{r.name} is a {r.kind} rule: not evaluated as a detector", level="note")
        for r in policies.rules
        if r.kind in ("mutate", "generate")
    ]
    counts: Counter = Counter()
    first: dict[tuple, tuple[K8sObject, RuleResult]] = {}
    for obj, found in zip(objects, results):
        for r in found:
            if r.result in ("skip", "error"):
                key = (r.policy_id, r.result)
                counts[key] += 1
                first.setdefault(key, (obj, r))
    for (policy_id, outcome), count in sorted(counts.items()):
        obj, r = first[(policy_id, outcome)]
        verb = "skipped" if outcome == "skip" else "could not be evaluated"
        out.append(Problem(obj.path, f"{policy_id} {verb} on {count} object(s), first {obj.ref}: {r.message}", line=obj.line, level="note"))
    return out
