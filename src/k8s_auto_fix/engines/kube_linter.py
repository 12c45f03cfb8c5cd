"""The real kube-linter as an engine: run the binary, map its JSON reports.

Paths are handed to kube-linter as given, so its own application rule (one
context per folder, one per Helm chart) applies. With ``--context file``
every file is linked into a folder of its own first, which is exactly
"each file is its own application".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..checks.registry import REGISTRY, Check, KubeLinter
from ..contracts import Detection, DetectResult, Engine, ObjectRef, Severity, detection_id
from ..manifests.context import ContextMode
from ..manifests.loader import STDIN_PATH, iter_manifest_files
from ..runner import RunnerOptions

INSTALL_HINT = "install it with `go install golang.stackrox.io/kube-linter/cmd/kube-linter@v0.8.3` or `make setup`"


class KubeLinterError(Exception):
    pass


def find_kube_linter() -> str | None:
    explicit = os.environ.get("KUBE_LINTER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    local = Path(__file__).resolve().parents[3] / ".tools" / "bin" / "kube-linter"
    return shutil.which("kube-linter") or (str(local) if local.is_file() else None)


def require_kube_linter() -> str:
    binary = find_kube_linter()
    if binary is None:
        raise KubeLinterError(f"kube-linter not found on PATH; {INSTALL_HINT}")
    return binary


def run_kube_linter(binary: str, targets: Sequence[str], checks: Sequence[Check]) -> dict:
    """One `kube-linter lint --format json` run of exactly ``checks``; returns
    its parsed report. Custom checks (a template with parameters) go to
    kube-linter in a config file of its own format."""
    custom = [c for c in checks if c.id not in REGISTRY]
    ids = [c.id for c in checks if c.kube_linter is not KubeLinter.NONE or c in custom]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="k8s-auto-fix-kl-") as config:
        yaml.safe_dump(
            {
                "checks": {"doNotAutoAddDefaults": True, "include": ids},
                "customChecks": [{"name": c.id, "template": c.template, "params": c.params} for c in custom],
            },
            config,
        )
        config.flush()
        command = [binary, "lint", "--format", "json", "--config", config.name, *targets]
        proc = subprocess.run(command, capture_output=True, text=True)
    # Exit 1 means "lint errors found"; anything else without JSON is a failure.
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise KubeLinterError(f"kube-linter failed (exit {proc.returncode}): {message[-1] if message else 'no output'}") from None


def detect_with_kube_linter(paths: Sequence[str], checks: Sequence[Check], options: RunnerOptions) -> DetectResult:
    binary = require_kube_linter()
    by_id = {c.id: c for c in checks}
    result = DetectResult()
    files = []
    for path, problem in iter_manifest_files(paths):
        if path == STDIN_PATH:
            raise KubeLinterError("the kube-linter engine reads files, not stdin")
        if problem:
            result.problems.append(problem)
        else:
            files.append(path)
    result.files = len(files)
    if not files or not checks:
        return result
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-kl-") as scratch:
        targets, back = kube_linter_targets(paths, files, options.context, Path(scratch))
        report = run_kube_linter(binary, targets, checks)
    for item in report.get("Reports") or []:
        detection = _to_detection(item, back, by_id)
        if detection is not None:
            result.detections.append(detection)
    result.detections.sort(key=lambda d: (d.manifest_path, d.policy_id, d.object.kind, d.object.name, d.violation_text))
    return result


def kube_linter_targets(
    paths: Sequence[str], files: list[str], context: ContextMode, scratch: Path
) -> tuple[list[str], dict[str, str]]:
    """What to pass to kube-linter, and how to map its paths back to ours."""
    if context is ContextMode.DIR:
        return list(paths), {os.path.abspath(f): f for f in files}
    back: dict[str, str] = {}
    for index, path in enumerate(files):
        folder = scratch / str(index)
        folder.mkdir()
        link = folder / Path(path).name
        try:
            os.link(path, link)
        except OSError:
            shutil.copyfile(path, link)
        back[str(link)] = path
    return [str(scratch)], back


def _to_detection(item: dict, back: dict[str, str], by_id: dict[str, Check]) -> Detection | None:
    obj = item.get("Object") or {}
    k8s = obj.get("K8sObject") or {}
    gvk = k8s.get("GroupVersionKind") or {}
    raw_path = (obj.get("Metadata") or {}).get("FilePath", "")
    path = back.get(raw_path) or back.get(os.path.abspath(raw_path)) or os.path.normpath(raw_path)
    group, ver = gvk.get("Group", ""), gvk.get("Version", "")
    ref = ObjectRef(
        api_version=f"{group}/{ver}" if group else ver,
        kind=gvk.get("Kind", ""),
        namespace=k8s.get("Namespace", "") or "",
        name=k8s.get("Name", "") or "",
    )
    check_id = item.get("Check", "")
    message = (item.get("Diagnostic") or {}).get("Message", "")
    check = by_id.get(check_id)
    return Detection(
        id=detection_id(path, ref, check_id, None, message),
        manifest_path=path,
        policy_id=check_id,
        violation_text=message,
        object=ref,
        severity=check.severity if check else Severity.MEDIUM,
        engine=Engine.KUBE_LINTER,
    )
