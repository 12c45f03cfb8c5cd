"""Gates that run real external tools on the patched objects, in one batch each:
`kubectl-validate` (offline, SIG CLI's validator), `kubectl apply --dry-run=server`
(the current kube context), and a rescan with the real `kube-linter`."""

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
    return _server_dry_run(changes)


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


def _server_dry_run(candidates) -> list[list[str]]:
    kubectl = _tool("kubectl")
    context = subprocess.run([kubectl, "config", "current-context"], capture_output=True, text=True)
    if context.returncode != 0 or not context.stdout.strip():
        raise ExternalToolError("--schema server needs a kube context: `kubectl config current-context` has none")
    out = []
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-dry-") as scratch:
        for i, c in enumerate(candidates):
            docs = [c.after.data] + [o.data for o in c.created]
            path = Path(scratch) / f"{i}.yaml"
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
            proc = subprocess.run([kubectl, "apply", "--dry-run=server", "-f", str(path), "-o", "name"], capture_output=True, text=True)
            out.append([] if proc.returncode == 0 else [f"server dry-run: {proc.stderr.strip()[-300:]}"])
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
