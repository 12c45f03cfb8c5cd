"""The JSON files the stages exchange (DESIGN.md section 3).

Every file is a UTF-8 JSON array of objects, written atomically (temporary
file in the same folder, then rename) and read back through one pydantic
model, so a malformed file gives one clear error instead of a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class ContractError(Exception):
    """A stage's input file is missing or does not follow its contract."""


class ObjectRef(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    api_version: str = Field(alias="apiVersion")
    kind: str
    namespace: str = ""
    name: str = ""


class Detection(BaseModel):
    """One finding: a check that fired on one object (and container)."""

    id: str
    manifest_path: str
    manifest_yaml: str | None = None
    policy_id: str
    violation_text: str
    object: ObjectRef
    document_index: int = 0
    list_index: int | None = None
    line: int | None = None
    severity: str = "medium"
    container: str | None = None
    engine: str = "builtin"
    # The application the finding was made in (a folder, a chart or a file):
    # later stages rebuild the same context from it.
    application: str | None = None


class Applicability(str, Enum):
    """How safe a fix is to apply unattended (like ruff's safe/unsafe fixes)."""

    SAFE = "safe"  # hardening a well-behaved workload survives
    REVIEW = "review"  # likely right, but can break a workload
    MANUAL = "manual"  # the tool cannot know the right value


class PatchRecord(BaseModel):
    """A proposed fix for one detection: RFC 6902 operations against its object."""

    id: str  # = the detection id
    policy_id: str
    source: str = "rules"
    patch: list[dict[str, Any]] = Field(default_factory=list)
    applicability: Applicability = Applicability.REVIEW
    explanation: str = ""
    # A fix that creates an object (a missing ServiceAccount) instead of
    # editing one: the new object; ``patch`` is then empty.
    creates: dict[str, Any] | None = None
    # sha256 of the object the patch was made for: a changed file is
    # detected instead of patched blindly.
    object_digest: str | None = None
    # Model modes: requests, tokens, latency and attempts spent on this patch.
    usage: dict[str, Any] | None = None


class Verdict(BaseModel):
    """The verifier's judgement of one patch, gate by gate."""

    id: str
    policy_id: str = ""
    accepted: bool
    ok_apply: bool = False
    ok_policy: bool = False
    ok_regression: bool = False
    ok_schema: bool = False
    ok_safety: bool = False
    ok_rescan: bool | None = None  # None: the rescan was not requested
    applicability: Applicability = Applicability.REVIEW
    patch_ops: int = 0
    patched_yaml: str | None = None
    errors: list[str] | None = None


def object_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def detection_id(path: str, obj: dict, check: str, container: str | None, message: str) -> str:
    """Stable id: the same finding on the same input gets the same id.

    ``obj`` is the object reference in contract form (apiVersion, kind,
    namespace, name)."""
    key = "\0".join(
        [path, obj["apiVersion"], obj["kind"], obj["namespace"], obj["name"], check, container or "", message]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# --- reading and writing -----------------------------------------------------

Model = TypeVar("Model", bound=BaseModel)


def dumps(payload: Any) -> str:
    """JSON text for a contract file: a top-level array holds one item a line
    (diff-friendly, and the C encoder does the work); anything else is indented."""
    if isinstance(payload, list):
        items = ",\n".join(json.dumps(item, ensure_ascii=False) for item in payload)
        return f"[\n{items}\n]\n" if payload else "[]\n"
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dumps(payload))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_models(path: str | Path, items: list[BaseModel]) -> None:
    write_json_atomic(path, [item.model_dump(by_alias=True, mode="json") for item in items])


def read_models(path: str | Path, model: type[Model]) -> list[Model]:
    """Load a contract file; any problem is one ``ContractError`` naming the file."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ContractError(f"{path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ContractError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    try:
        return TypeAdapter(list[model]).validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ContractError(
            f"{path}: not a valid {model.__name__} list: at [{where}]: {first['msg']}"
            f" ({err.error_count()} error(s))"
        ) from None
