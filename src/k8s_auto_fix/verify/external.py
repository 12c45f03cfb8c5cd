"""Gates that run real external tools on the patched objects, in one batch each:
`kubectl-validate` (offline, SIG CLI's validator), a server-side dry run (the
API server of the kubeconfig's current context, e.g. `k8s-auto-fix cluster up`),
and a rescan with the real `kube-linter`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from ..checks import REGISTRY
from ..contracts import SchemaMode
from ..engines.kube_linter import KubeLinterError, require_kube_linter, run_kube_linter

TOOLS_BIN = Path(__file__).resolve().parents[3] / ".tools" / "bin"


class ExternalToolError(Exception):
    pass


def _tool(name: str) -> str:
    found = shutil.which(name) or (str(TOOLS_BIN / name) if (TOOLS_BIN / name).is_file() else None)
    if found is None:
        raise ExternalToolError(f"{name} not found on PATH; install it with `make setup` (scripts/setup.sh)")
    return found


def _dump(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def schema_errors(changes, options, crds: list[dict]) -> list[list[str]]:
    """Per change: the schema errors the external validator reports that the
    original did not have (and every error of a created object)."""
    if options.schema is SchemaMode.KUBECTL_VALIDATE:
        return _kubectl_validate(changes, options, crds)
    return _server_dry_run(changes, options, crds)


def _kubectl_validate(candidates, options, crds: list[dict]) -> list[list[str]]:
    binary = _tool("kubectl-validate")
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-kv-") as scratch:
        root = Path(scratch)
        (root / "objects").mkdir()
        (root / "crds").mkdir()
        for i, crd in enumerate(crds):
            _dump(root / "crds" / f"{i}.yaml", crd)
        files: dict[str, tuple] = {}
        for i, c in enumerate(candidates):
            files[_dump(root / "objects" / f"{i}-after.yaml", c.after.data)] = (c, "after")
            files[_dump(root / "objects" / f"{i}-before.yaml", c.before.data)] = (c, "before")
            for j, created in enumerate(c.created):
                files[_dump(root / "objects" / f"{i}-created-{j}.yaml", created.data)] = (c, "created")
        command = [binary, str(root / "objects"), "--version", options.kube_version, "--output", "json"]
        if crds:
            command += ["--local-crds", str(root / "crds")]
        proc = subprocess.run(command, capture_output=True, text=True)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise ExternalToolError(f"kubectl-validate failed: {(proc.stderr or proc.stdout).strip()[-300:]}") from None
    messages: dict[tuple[int, str], list[str]] = {}
    for path, results in report.items():
        key = files.get(path) or files.get(os.path.realpath(path))
        if key is None:
            continue
        c, role = key
        messages.setdefault((id(c), role), []).extend(r.get("message", "") for r in results if r.get("status") != "Success")
    out = []
    for c in candidates:
        before = set(messages.get((id(c), "before"), []))
        new = [m for m in messages.get((id(c), "after"), []) if m not in before] + messages.get((id(c), "created"), [])
        out.append([f"kubectl-validate: {m}" for m in new])
    return out


def _server_dry_run(candidates, options, crds: list[dict]) -> list[list[str]]:
    """The API server's own verdict on each patched object (a dry-run create):
    the input's CRDs are applied first, so their instances are judged too.
    An error counts when the original did not have the same one."""
    import httpx

    from ..cluster import ClusterError, KubeClient

    objects: list[dict] = []
    for c in candidates:
        objects += [c.before.data, c.after.data, *(o.data for o in c.created)]
    try:
        client = KubeClient.from_kubeconfig(options.kubeconfig)
        try:
            client.apply_crds(crds)
            results = client.dry_run_all(objects)
        finally:
            client.close()
    except (ClusterError, httpx.HTTPError) as err:
        raise ExternalToolError(f"--schema server: {err}") from None
    out, position = [], 0
    for c in candidates:
        before, after, *created = results[position : position + 2 + len(c.created)]
        position += 2 + len(c.created)
        errors = [after.error] if after.error and after.error != before.error else []
        out.append([f"server dry-run: {e}" for e in errors + [r.error for r in created if r.error]])
    return out


def still_reported_by_kube_linter(candidates) -> list[list[str]]:
    """Lint every patched object (with any object its fix creates) in a folder
    of its own; per change, the targeted checks whose findings kube-linter still reports."""
    try:
        binary = require_kube_linter()
    except KubeLinterError as err:
        raise ExternalToolError(str(err)) from None
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-rescan-") as scratch:
        owners: dict[str, object] = {}
        for i, c in enumerate(candidates):
            folder = Path(scratch) / str(i)
            folder.mkdir()
            docs = [c.after.data] + [o.data for o in c.created]
            path = folder / "object.yaml"
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
            owners[str(path)] = c
        checks = [REGISTRY[i] for i in sorted({i for c in candidates for i in c.check_ids}) if i in REGISTRY]
        report = run_kube_linter(binary, [scratch], checks)
    still: set[tuple[int, str, str]] = set()
    for item in report.get("Reports") or []:
        path = ((item.get("Object") or {}).get("Metadata") or {}).get("FilePath", "")
        c = owners.get(path) or owners.get(os.path.realpath(path))
        if c is not None:
            still.add((id(c), item.get("Check", ""), (item.get("Diagnostic") or {}).get("Message", "")))
    return [sorted({d.policy_id for d in c.detections if (id(c), d.policy_id, d.violation_text) in still}) for c in candidates]


# --- policy engines -----------------------------------------------------------------------


def _policy_set(options):
    from ..engines.kyverno import KyvernoError, load_policies

    try:
        return load_policies(options.policies)
    except KyvernoError as err:
        raise ExternalToolError(str(err)) from None


def _kyverno(policies, objects: list[dict]):
    from ..engines.kyverno import KyvernoError, evaluate

    try:
        return evaluate(policies, objects)
    except KyvernoError as err:
        raise ExternalToolError(str(err)) from None


def _vap(options, objects: list[dict]) -> list[list[tuple[str, str]]]:
    from ..engines.vap import VapError, failures_of

    try:
        return [[(f.policy_id, f.message) for f in found] for found in failures_of(objects, options.policies, options.kubeconfig)]
    except VapError as err:
        raise ExternalToolError(str(err)) from None


def policy_failures(engine, options, objects: list[dict]) -> list[list[tuple[str, str]]]:
    """(rule, message) of every rule of the policy engine that fails on each object."""
    from ..contracts import Engine

    if engine is Engine.VAP:
        return _vap(options, objects)
    return [[(r.policy_id, r.message) for r in found if r.failed] for found in _kyverno(_policy_set(options), objects)]


def still_failing_policies(changes, options) -> list[set[str]]:
    """Per change: the policy rules that still fail on the patched object, by
    the engine that found each (only changes meant to fix a policy finding are
    sent to it, all in one batch)."""
    from ..contracts import Engine

    out: list[set[str]] = [set() for _ in changes]
    for engine in (Engine.KYVERNO, Engine.VAP):
        wanted = [i for i, c in enumerate(changes) if any(d.engine is engine for d in c.detections)]
        if wanted:
            for i, found in zip(wanted, policy_failures(engine, options, [changes[i].after.data for i in wanted])):
                out[i] |= {policy_id for policy_id, _ in found}
    return out


def new_policy_failures(changes, options, engine) -> list[list[tuple[str, str]]]:
    """Per change: (rule, message) of every rule of the policy engine that fails
    on the patched object but not on the original, and every failure of an
    object the patch creates."""
    objects: list[dict] = []
    for c in changes:
        objects += [c.before.data, c.after.data, *(o.data for o in c.created)]
    results = iter(policy_failures(engine, options, objects))
    out = []
    for c in changes:
        before = {policy_id for policy_id, _ in next(results)}
        found = [(policy_id, message) for policy_id, message in next(results) if policy_id not in before]
        for _ in c.created:
            found += next(results)
        out.append(sorted(set(found)))
    return out
