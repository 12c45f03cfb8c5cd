"""Independent judges of a fixed corpus, each a real tool run on the input and
on a fixed copy of it:

- kube-linter: none of the findings we fixed may be found again, and nothing new;
- Checkov: which (check, resource) fail before and after, and which newly fail;
- Pod Security Admission: how many workloads' pods a namespace enforcing a
  level admits before and after (a dry run on a real API server).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..contracts import Detection
from ..engines.kube_linter import KubeLinterError, detect_with_kube_linter
from ..fix.apply import FixRun, common_base, write_to_folder
from ..manifests.loader import iter_manifest_files, load_paths
from ..runner import RunnerOptions

CHECKOV_BATCH = 400  # files per Checkov run; a crash is narrowed down to its file by halving
EXAMPLES = 10


@dataclass(frozen=True)
class FixedTree:
    """The inputs and a copy of them with every fix written, side by side."""

    base: str  # the inputs' common folder
    root: str  # the copy of ``base``
    before: list[str]  # the input paths
    after: list[str]  # the same paths in the copy

    def relative(self, path: str) -> str:
        """A file's name relative to its tree (the input or the copy)."""
        path = os.path.abspath(path)
        for top in (self.root, self.base):
            if path.startswith(top + os.sep):
                return os.path.relpath(path, top)
        return path


def fixed_tree(run: FixRun, inputs: Sequence[str], scratch: Path) -> FixedTree:
    """Copy the inputs into ``scratch`` and write the run's fixed texts over the copy."""
    base = common_base(inputs)
    after = []
    for path in (os.path.abspath(p) for p in inputs):
        target = scratch / os.path.relpath(path, base)
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(path):
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(path, target)
        after.append(os.path.normpath(target))
    write_to_folder(run, scratch, inputs)
    return FixedTree(base, str(scratch.resolve()), [os.path.abspath(p) for p in inputs], after)


# --- kube-linter --------------------------------------------------------------------------


def kube_linter_rescan(tree: FixedTree, run: FixRun, checks, options: RunnerOptions) -> dict:
    """Lint the input and the fixed copy with the real kube-linter."""
    try:
        before = detect_with_kube_linter(tree.before, checks, options).detections
        after = detect_with_kube_linter(tree.after, checks, options).detections
    except KubeLinterError as err:
        return {"error": str(err)}
    was, now = Counter(_key(tree, d) for d in before), Counter(_key(tree, d) for d in after)
    by_id = {d.id: d for d in run.detected.detections}
    written = [i for edits in run.edits.values() for e in edits if e.path in run.new_texts for i in e.fixed if i in by_id]
    # Only what kube-linter itself found before can be found again (it has no check of ours).
    fixed = Counter(k for k in (_key(tree, by_id[i]) for i in written) if was[k])
    refound = Counter({k: min(n, now[k] - (was[k] - n)) for k, n in fixed.items() if now[k] > was[k] - n})
    new = now - was
    return {
        "fixed": sum(fixed.values()),
        "before": sum(was.values()),
        "after": sum(now.values()),
        "refound": sum(refound.values()),
        "new": sum(new.values()),
        "refound_examples": [list(k) for k in list(refound)[:EXAMPLES]],
        "new_examples": [list(k) for k in list(new)[:EXAMPLES]],
    }


def _key(tree: FixedTree, d: Detection) -> tuple:
    name = "" if d.object.name_is_prefix else d.object.name
    return (tree.relative(d.manifest_path), d.object.kind, d.object.namespace, name, d.policy_id)


# --- Checkov ------------------------------------------------------------------------------


def checkov_delta(tree: FixedTree, checkov: str) -> dict:
    """Failed Checkov checks before and after, and every (check, resource) that newly fails."""
    before, seen_before, crashed_before = _checkov_failures(checkov, _yaml_files(tree.before), tree)
    after, _, crashed_after = _checkov_failures(checkov, _yaml_files(tree.after), tree)
    new = after - before
    # A resource Checkov did not see before is one a fix created (a ServiceAccount, a NetworkPolicy).
    on_created = Counter({k: n for k, n in new.items() if k[1:] not in seen_before})
    on_existing = new - on_created
    return {
        "failed_before": sum(before.values()),
        "failed_after": sum(after.values()),
        "newly_failing": sum(new.values()),
        "newly_failing_on_existing": sum(on_existing.values()),
        "newly_failing_on_created": sum(on_created.values()),
        "newly_failing_by_check": dict(Counter(k[0] for k in on_existing.elements()).most_common()),
        "on_created_by_check": dict(Counter(k[0] for k in on_created.elements()).most_common()),
        "newly_failing_examples": [list(k) for k in list(on_existing)[: EXAMPLES * 3]],
        "crashed_files": sorted({tree.relative(f) for f in crashed_before + crashed_after}),
    }


def _yaml_files(paths: Sequence[str]) -> list[str]:
    return [p for p, problem in iter_manifest_files(paths) if problem is None and os.path.isfile(p) and p.lower().endswith((".yaml", ".yml"))]


def _checkov_failures(checkov: str, files: list[str], tree: FixedTree) -> tuple[Counter, set, list[str]]:
    """(failed (check, resource, file) counts, every (resource, file) seen, files Checkov crashed on)."""
    failures: Counter = Counter()
    seen: set = set()
    crashed: list[str] = []
    pending = [files[i : i + CHECKOV_BATCH] for i in range(0, len(files), CHECKOV_BATCH)]
    while pending:
        batch = pending.pop()
        report = _run_checkov(checkov, batch)
        if report is None:  # Checkov crashed on one of them: halve until the file is found
            if len(batch) == 1:
                crashed.append(batch[0])
            else:
                pending += [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
            continue
        for result in report:
            results = result.get("results") or {}
            for outcome in ("passed_checks", "failed_checks"):
                for item in results.get(outcome) or []:
                    where = (item["resource"], tree.relative(item["file_abs_path"]))
                    seen.add(where)
                    if outcome == "failed_checks":
                        failures[(item["check_id"], *where)] += 1
    return failures, seen, crashed


def _run_checkov(checkov: str, files: list[str]) -> list[dict] | None:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run(
        [checkov, "--framework", "kubernetes", "-o", "json", "--quiet", "--compact", "--skip-results-upload", "-f", *files],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    return report if isinstance(report, list) else [report]


# --- Pod Security Admission -------------------------------------------------------------------


def pod_security(tree: FixedTree, level: str, kubeconfig: str | None, scratch: Path) -> dict:
    """Each workload's pod, dry-run in a namespace that enforces ``level``, before and after."""
    from ..cluster import KubeClient, down, up

    started = None
    if kubeconfig is None and not os.environ.get("KUBECONFIG"):
        started = scratch / "cluster"
        kubeconfig = str(up(started).kubeconfig)
    client = KubeClient.from_kubeconfig(kubeconfig)
    try:
        namespace = f"k8s-auto-fix-psa-{level}"
        client.ensure_namespace(namespace, {"pod-security.kubernetes.io/enforce": level})
        report = {"level": level}
        for side, paths in (("before", tree.before), ("after", tree.after)):
            pods = _pods(paths, tree)
            results = client.dry_run_all([pod for _, pod in pods], namespace)
            refused = [(where, r.error) for (where, _), r in zip(pods, results) if r.error]
            others = [f"{where}: {error[:160]}" for where, error in refused if not _VIOLATES.search(error)]
            report[side] = {
                "workloads": len(pods), "admitted": len(pods) - len(refused), "refused_by_reason": _reasons(refused),
                "not_judged_examples": others[:EXAMPLES],
            }  # fmt: skip
        return report
    finally:
        client.close()
        if started:
            down(started)


def _pods(paths: Sequence[str], tree: FixedTree) -> list[tuple[str, dict]]:
    """A Pod for each workload's pod template (enforcement judges Pods only)."""
    pods = []
    for obj in load_paths(paths).objects:
        if obj.pod_spec is None or not obj.deployment_like_kind:
            continue
        metadata = {"name": f"psa-{len(pods)}", "labels": {k: str(v) for k, v in obj.pod_labels.items()}}
        pods.append((f"{tree.relative(obj.path)} {obj.kind}/{obj.name}", {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": obj.pod_spec}))
    return pods


_VIOLATES = re.compile(r'violates PodSecurity "[^"]*": (.*)', re.S)


NOT_JUDGED = "not judged: invalid before Pod Security, or names what the test server lacks"


def _reasons(refused: list[tuple[str, str]]) -> dict[str, int]:
    """Refusals counted by each PodSecurity rule named (``allowPrivilegeEscalation != false`` ...);
    every other refusal (a missing volume, an unrendered name, an unknown PriorityClass) counts once as NOT_JUDGED."""
    counts: Counter = Counter()
    for _, error in refused:
        match = _VIOLATES.search(error)
        for rule in _split_rules(match.group(1)) if match else [NOT_JUDGED]:
            counts[rule] += 1
    return dict(counts.most_common())


def _split_rules(text: str) -> list[str]:
    """'a (x), b (y, z)' -> ['a', 'b']: the rule names, without their details."""
    rules, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            rules.append(current)
            current = ""
        else:
            current += char
    rules.append(current)
    return sorted({r.split("(")[0].strip() for r in rules if r.strip()})
