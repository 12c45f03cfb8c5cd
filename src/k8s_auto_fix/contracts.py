"""The records the stages exchange, and how they are read and written.

Every file is a UTF-8 JSON array of objects, written atomically (temporary
file in the same folder, then rename) and read back through one pydantic
model, so a malformed file gives one clear error instead of a traceback. The
seed's field names are kept (other tools read them) and extended. Records
that only travel between worker processes (``ObjectEdit``, ``DetectResult``)
live here too, so that every stage speaks one vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from enum import Enum
from functools import total_ordering
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_serializer, model_validator


class ContractError(Exception):
    """A stage's input file is missing or does not follow its contract."""


class Record(BaseModel):
    """A contract record. Validators are built on first use, not at import:
    most commands use a few of these models."""

    model_config = ConfigDict(defer_build=True)


# --- closed sets ------------------------------------------------------------------


class Severity(str, Enum):
    """How bad a finding is, for ranking and for SARIF levels.

    critical: a direct path to the node or cluster (privileged, host PID,
    docker.sock); high: weakens isolation a lot (privilege escalation, host
    mounts, capabilities); medium: hardening or reliability gaps with a real
    failure mode (read-only root FS, resources, probes pointing nowhere);
    low: hygiene (labels, deprecated fields, anti-affinity).
    """

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def sarif_level(self) -> str:
        return {"critical": "error", "high": "error", "medium": "warning", "low": "note"}[self.value]

    @property
    def weight(self) -> float:
        """The severity as a number for risk scores (1.0 critical .. 0.25 low)."""
        return {"critical": 1.0, "high": 0.75, "medium": 0.5, "low": 0.25}[self.value]


class Engine(str, Enum):
    """What produced a finding."""

    BUILTIN = "builtin"
    KUBE_LINTER = "kube-linter"
    KYVERNO = "kyverno"
    VAP = "vap"  # ValidatingAdmissionPolicy, evaluated by a real API server


class SchemaMode(str, Enum):
    """How the schema gate validates."""

    OFFLINE = "offline"  # strict OpenAPI schemas shipped with a Python package
    KUBECTL_VALIDATE = "kubectl-validate"  # SIG CLI's offline validator
    SERVER = "server"  # kubectl apply --dry-run=server


@total_ordering
class Applicability(str, Enum):
    """How safe a fix is to apply unattended (like ruff's safe/unsafe fixes),
    ordered from the least to the most caution it needs."""

    SAFE = "safe"  # hardening a well-behaved workload survives
    REVIEW = "review"  # likely right, but can break a workload
    MANUAL = "manual"  # the tool cannot know the right value

    @property
    def rank(self) -> int:
        return _APPLICABILITY_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Applicability):
            return NotImplemented
        return self.rank < other.rank


_APPLICABILITY_ORDER = (Applicability.SAFE, Applicability.REVIEW, Applicability.MANUAL)


class Source(str, Enum):
    """Who wrote a patch. Model sources also name their endpoint (``PatchRecord.endpoint``)."""

    RULES = "rules"  # the check's own fix
    MODEL = "model"  # a model's answer, accepted as it was
    MODEL_WITH_RULES = "model+rules"  # a model's answer with the rule fix merged in (guardrails)
    RULES_FALLBACK = "rules-fallback"  # the model's answers were refused; the rule fix instead


# --- identity and location -------------------------------------------------------------


class ObjectRef(Record):
    """The identity of a Kubernetes object: what kube-linter and kubectl call it."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, defer_build=True)

    api_version: str = Field(alias="apiVersion")
    kind: str
    namespace: str = ""
    name: str = ""
    # ``name`` is the object's generateName: the API server adds a suffix
    # (kube-linter reports such an object with no name).
    name_is_prefix: bool = False

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


class Problem(Record):
    """One file (or one document of it) that could not be used, and why."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    path: str
    message: str
    line: int | None = None
    # "error": the input is broken (exit code 2); "warning": an unrendered
    # Helm template, skipped; "note": valid YAML that is not a Kubernetes
    # object, skipped on purpose.
    level: str = "error"

    def __init__(self, path: str, message: str, line: int | None = None, level: str = "error", **extra: Any):
        super().__init__(path=path, message=message, line=line, level=level, **extra)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


# --- detect ---------------------------------------------------------------------


class Detection(Record):
    """One finding: a check that fired on one object (and container)."""

    id: str
    manifest_path: str
    manifest_yaml: str | None = None
    policy_id: str
    violation_text: str
    object: ObjectRef
    document_index: int = 0
    list_index: int | None = None
    # Where to change it: the line and column (1-based) of the offending
    # field in ``manifest_path``, or of its nearest written parent when the
    # field is missing (the container's ``securityContext:``, else its
    # ``- name:``); ``json_pointer`` names the field itself (RFC 6901, from
    # the object's root, as JSON Patch writes it). ``object_line`` is the
    # line the object starts on.
    line: int | None = None
    column: int | None = None
    json_pointer: str | None = None
    object_line: int | None = None
    severity: Severity = Severity.MEDIUM
    container: str | None = None
    engine: Engine = Engine.BUILTIN
    # The application the finding was made in (a folder, a chart or a file):
    # later stages rebuild the same context from it.
    application: str | None = None
    # What the workload is (node-agent, api-controller, batch, web-server,
    # windows), as its manifests show it: fixes consult it.
    profile: list[str] | None = None

    @property
    def where(self) -> str:
        """``file:line:column``, as compilers print it (editors jump to it)."""
        if not self.line:
            return self.manifest_path
        return f"{self.manifest_path}:{self.line}" + (f":{self.column}" if self.column else "")

    @property
    def key(self) -> tuple[str, str | None, str]:
        """What identifies the finding on its object: check, container, message."""
        return (self.policy_id, self.container, self.violation_text)

    @property
    def application_key(self) -> str:
        """The application to rebuild for this finding (its file, when detect recorded none)."""
        return self.application or self.manifest_path


class DetectResult(Record):
    """What an engine found in a set of paths."""

    detections: list[Detection] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    files: int = 0
    objects: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


# --- propose --------------------------------------------------------------------


class PatchRecord(Record):
    """A proposed fix for one detection: RFC 6902 operations against its object."""

    id: str  # = the detection id
    policy_id: str
    source: Source = Source.RULES
    endpoint: str | None = None  # the model endpoint of a model source
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
    # The gate that turned the check's fix into a manual one (its reason is the explanation).
    refused_by: str | None = None

    @property
    def is_manual(self) -> bool:
        """No change to verify: a person has to make it."""
        return not self.patch and self.creates is None


# --- verify ---------------------------------------------------------------------


class Reason(Record):
    """Why a gate refused a change: which gate, about which check and path."""

    gate: str
    message: str
    check: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        about = f"{self.check}: " if self.check else ""
        return f"{self.gate}: {about}{self.message}"


def _reason_from_text(text: str) -> Reason:
    gate, _, message = text.partition(": ")
    return Reason(gate=gate, message=message) if message else Reason(gate="unknown", message=text)


class Verdict(Record):
    """The verifier's judgement of one patch, gate by gate.

    ``gates`` maps each gate (in the order of the gate registry) to whether it
    passed, or None when it did not run. The seed's ``ok_<gate>`` fields and
    ``errors`` strings are written alongside, derived from these."""

    id: str
    policy_id: str = ""
    accepted: bool
    gates: dict[str, bool | None] = Field(default_factory=dict)
    applicability: Applicability = Applicability.REVIEW
    patch_ops: int = 0
    patched_yaml: str | None = None
    reasons: list[Reason] | None = None  # with --include-errors

    @property
    def errors(self) -> list[str] | None:
        return None if self.reasons is None else [str(r) for r in self.reasons]

    def first_failed_gate(self) -> str | None:
        return next((gate for gate, ok in self.gates.items() if ok is False), None)

    @model_validator(mode="before")
    @classmethod
    def _from_seed_fields(cls, data: Any) -> Any:
        """A file written with only the seed's ok_<gate> fields (or by an older version) reads the same."""
        if isinstance(data, dict) and not data.get("gates"):
            gates = {key[3:]: value for key, value in data.items() if key.startswith("ok_")}
            if gates:
                data = {**data, "gates": gates}
        if isinstance(data, dict) and data.get("reasons") is None and isinstance(data.get("errors"), list):
            data = {**data, "reasons": [_reason_from_text(str(e)) for e in data["errors"]]}
        return data

    @model_serializer(mode="wrap")
    def _with_seed_fields(self, handler):
        data = handler(self)
        for gate, ok in self.gates.items():
            data[f"ok_{gate}"] = ok
        data["errors"] = self.errors
        return data


# --- fix ------------------------------------------------------------------------


class ObjectEdit(Record):
    """Everything done to one object: operations in order, objects to create."""

    path: str
    document_index: int
    list_index: int | None = None
    ref: ObjectRef
    ops: list[dict[str, Any]] = Field(default_factory=list)
    creates: list[dict[str, Any]] = Field(default_factory=list)
    fixed: list[str] = Field(default_factory=list)  # detection ids

    @property
    def location(self) -> tuple[str, int, int | None]:
        return (self.path, self.document_index, self.list_index)


# --- risk and schedule ----------------------------------------------------------------


class RiskRecord(Record):
    id: str
    policy_id: str
    risk: float  # 0..1
    severity: Severity
    severity_weight: float
    exposure: float
    exposure_reasons: list[str] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list)
    cves: int = 0
    max_epss: float = 0.0
    kev: bool = False
    kev_cves: list[str] = Field(default_factory=list)


class ScheduleItem(Record):
    id: str
    policy_id: str
    score: float
    R: float
    p: float
    Et: float
    wait: float
    kev: bool
    explore: float
    first_seen: str
    # Ageing: T, the wait (hours) past which the fix ages, and the largest drain time of the
    # backlog seen so far (hours), which the next schedule carries on from (--previous).
    T: float = 0.0
    drain_peak: float = 0.0
    # Kept so the queue can file each review under its check and applicability
    # (E[t] is learned per both); older schedule files read as ``review``.
    applicability: Applicability = Applicability.REVIEW
    reviews: int = 0  # reviews of this check that p and E[t] were learned from


class ReviewOutcome(Record):
    """One finished review from the queue: the person accepted the fix
    (``queue ack``) or rejected it (``queue fail``), ``minutes`` after leasing it."""

    id: str
    policy_id: str
    applicability: Applicability = Applicability.REVIEW
    accepted: bool
    minutes: float


# --- ids and digests --------------------------------------------------------------


def object_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def detection_id(path: str, ref: ObjectRef, check: str, container: str | None, message: str) -> str:
    """Stable id: the same finding on the same input gets the same id."""
    key = "\0".join([path, ref.api_version, ref.kind, ref.namespace, ref.name, check, container or "", message])
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


TEMP_MARK = ".k8s-auto-fix-"  # in every temporary file's name: ".<name>.k8s-auto-fix-<pid>-<random>.tmp"


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half.

    A symlink is written through (its target is replaced, the link stays), and
    the file keeps its mode (setuid and sticky bits included) and its owner
    and group. The temporary file sits beside the target (a rename is only
    atomic within one file system); one a killed run left behind is removed by
    the next write into that folder."""
    path = Path(os.path.realpath(path)) if os.path.islink(path) else path
    if _special(path):
        with open(path, "wb") as handle:  # /dev/null, /dev/stdout, a FIFO: written to, never replaced by a file
            handle.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    before = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if before is not None:
            if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
                os.chown(tmp, before.st_uid, before.st_gid)  # before chmod: a chown clears setuid
            os.chmod(tmp, stat.S_IMODE(before.st_mode))
        else:  # a new file: what open() would give it (mkstemp's is 0600, whatever the umask)
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _special(path: Path) -> bool:
    """A device or a FIFO: a rename over it would replace it (as root, /dev/null itself)."""
    try:
        return not stat.S_ISREG(path.stat().st_mode) and not stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it
    (``/proc/self/status``); elsewhere set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files of runs that were killed before their rename
    (their process is gone); a running process's are left alone."""
    removed = []
    try:
        names = [n for n in os.listdir(folder) if TEMP_MARK in n and n.endswith(".tmp")]
    except OSError:
        return removed
    for name in names:
        pid = name.rpartition(TEMP_MARK)[2].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            (folder / name).unlink(missing_ok=True)
            removed.append(folder / name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def write_json_atomic(path: str | Path, payload: Any) -> None:
    write_text_atomic(Path(path), dumps(payload))


def write_models(path: str | Path, items: list[BaseModel]) -> None:
    write_json_atomic(path, [item.model_dump(by_alias=True, mode="json") for item in items])


def read_models(path: str | Path, model: type[Model]) -> list[Model]:
    """Load a contract file, a JSON array or JSON Lines (told apart by the
    first character); any problem is one ``ContractError`` naming the file."""
    if is_json_lines(path):
        return list(iter_models(path, model))
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


# --- JSON Lines: one record a line, written and read as a stream -------------------------


def is_json_lines(path: str | Path) -> bool:
    """A contract file in JSON Lines starts with an object; a JSON array with ``[``.
    An empty file is JSON Lines with no record (what a stage that found nothing streams)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
            while not head:  # whitespace only so far: read on, to tell an empty file from a late start
                chunk = handle.read(65536)
                if not chunk:
                    return True
                head = chunk.lstrip()
    except OSError:
        return False  # read_models reports it
    return head.startswith(b"{")


def iter_models(path: str | Path, model: type[Model]) -> Iterator[Model]:
    """The records of a JSON Lines file, one at a time (memory stays flat);
    a bad line is one ``ContractError`` naming the file and the line."""
    adapter = TypeAdapter(model)
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise ContractError(f"{path}: cannot read: {err.strerror or err}") from None
    with handle:
        number = 0
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield adapter.validate_json(line)
                except ValidationError as err:
                    first = err.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    what = "invalid JSON" if first["type"] == "json_invalid" else f"not a valid {model.__name__}"
                    raise ContractError(f"{path}:{number}: {what}: at [{where}]: {first['msg']}") from None
        except UnicodeDecodeError:
            raise ContractError(f"{path}:{number + 1}: not UTF-8 text") from None


def stream_models(path: str | Path, model: type[Model]) -> Iterator[Model]:
    """A contract file one record at a time: JSON Lines are streamed, a JSON array is read whole."""
    return iter_models(path, model) if is_json_lines(path) else iter(read_models(path, model))


class JsonLinesWriter:
    """Records written one line each as they come, into a temporary file beside
    ``path`` that replaces it when the writer closes without an error (readers
    see the old file or the whole new one); ``path`` None writes to stdout.
    With ``keep_partial``, an error keeps the records written so far (whole
    lines, each a finished record) instead of the old file."""

    def __init__(self, path: str | Path | None, keep_partial: bool = False):
        self.path = Path(os.path.realpath(path)) if path is not None and os.path.islink(path) else (Path(path) if path is not None else None)
        self.keep_partial = keep_partial  # stopped by an error: the records written so far replace the file (answers paid for)
        self.count = 0
        self._tmp: str | None = None

    def __enter__(self) -> JsonLinesWriter:
        if self.path is None:
            import sys

            self.handle = sys.stdout
            return self
        if _special(self.path):
            self.handle = open(self.path, "w", encoding="utf-8")  # a device or a FIFO is written to, never replaced
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.path.parent)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}{TEMP_MARK}{os.getpid()}-", suffix=".tmp", dir=self.path.parent)
        self.handle = os.fdopen(fd, "w", encoding="utf-8")
        return self

    def write(self, records: Iterable[BaseModel]) -> None:
        for record in records:
            self.handle.write(json.dumps(record.model_dump(by_alias=True, mode="json"), ensure_ascii=False))
            self.handle.write("\n")
            self.count += 1
        self.handle.flush()  # a reader of stdout (or a watcher of the size) sees each application as it is done

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._tmp is None:
            if self.path is not None:
                self.handle.close()
            return False
        self.handle.close()
        if exc_type is None or (self.keep_partial and self.count):
            if self.path.exists():
                os.chmod(self._tmp, stat.S_IMODE(self.path.stat().st_mode))
            else:  # a new file: what open() would give it, as write_bytes_atomic does
                os.chmod(self._tmp, 0o666 & ~current_umask())
            os.replace(self._tmp, self.path)
        else:
            Path(self._tmp).unlink(missing_ok=True)
        return False
