"""What the policy engines (Kyverno, VAP) share: reading their --policies
folders (YAML files in a stable order, each parsed once, and one digest of
all their text, under which engine results are memoised), and turning a
failed policy rule into a detection."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from ..contracts import Detection, Engine, Severity, detection_id
from ..manifests.objects import K8sObject

POLICY_SUFFIXES = (".yaml", ".yml", ".json")


def read_policy_documents(folders: Sequence[str], error: type[Exception]) -> tuple[list[tuple[str, list]], str]:
    """([(file, its YAML documents)], digest of every file's text). A missing
    folder, an unreadable file or one that does not parse raises ``error``
    naming the file (and the line)."""
    digest = hashlib.sha256()
    read = []
    for folder in folders:
        if not os.path.exists(folder):
            raise error(f"{folder}: no such policy file or folder")
        files = [folder] if os.path.isfile(folder) else sorted(str(p) for p in Path(folder).rglob("*") if p.suffix in POLICY_SUFFIXES)
        for path in files:
            raw = _read(path, error)
            digest.update(raw)
            read.append((path, _parse(path, raw, error)))
    return read, digest.hexdigest()


def _read(path: str, error: type[Exception]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read: {err}") from None


def _parse(path: str, raw: bytes, error: type[Exception]) -> list:
    try:
        return list(yaml.safe_load_all(raw.decode("utf-8")))
    except UnicodeDecodeError as err:
        raise error(f"{path}: cannot read: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise error(f"{where}: not a YAML policy file: {getattr(err, 'problem', err)}") from None


def policy_detection(obj: K8sObject, policy_id: str, message: str, severity: Severity, engine: Engine) -> Detection:
    """A policy's failure on an object, as a detection."""
    return Detection(
        id=detection_id(obj.path, obj.ref, policy_id, None, message),
        manifest_path=obj.path,
        policy_id=policy_id,
        violation_text=message,
        object=obj.ref,
        document_index=obj.document_index,
        list_index=obj.list_index,
        line=obj.line,
        severity=severity,
        engine=engine,
    )


def in_object_order(detections: list[Detection]) -> None:
    """Sort a policy engine's detections by object, then policy (in place)."""
    detections.sort(key=lambda d: (d.manifest_path, d.document_index, d.list_index or 0, d.policy_id))
