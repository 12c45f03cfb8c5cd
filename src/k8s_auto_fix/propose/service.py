"""`k8s-auto-fix serve`: the proposer as an HTTP service (FastAPI on uvicorn).

POST /v1/propose   a detection in (with ``manifest_yaml``), the patch and its verdict out
GET  /healthz      liveness
GET  /metrics      Prometheus text format

Every request needs ``Authorization: Bearer <token>``, the token coming from
an environment variable. All requests share one model client, so they share
its rate budget.

Hardening (issue 11):

- The object travels in the request (``manifest_yaml``). A ``manifest_path``
  is read only when the server was started with ``--allow-root DIR``, and then
  only a file under DIR once symlinks are resolved; anything else is the same
  403, whether the file exists or not, so the service is no oracle of the
  server's files.
- A response never carries the digest of an object that holds a secret (a
  Secret, or any value redaction would hide): a digest would let a caller
  test guesses of the secret.
- Bodies over ``max_body_bytes`` are refused (413) as they stream in, chunked
  or not, before they are buffered; 413s are counted in /metrics.
- A request's headers must arrive within ``header_timeout`` seconds and each
  part of its body within ``body_timeout`` seconds, or the connection is closed
  (408 for a stalled body).
- Malformed requests are 4xx with what is wrong (a bad manifest names its
  line), never 500.
"""

from __future__ import annotations

import asyncio
import hmac
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..checks.fixes import FixOptions
from ..checks.selection import select_checks
from ..config import RunConfig
from ..contracts import Detection
from ..manifests.store import ObjectStore
from ..propose.rules import propose_rules
from ..verify.verifier import Verifier, VerifyOptions

DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0


@dataclass
class ServiceState:
    config: RunConfig
    token: str
    mode: str = "rules"
    client: object | None = None  # a ModelClient for model modes
    max_body_bytes: int = DEFAULT_MAX_BODY
    allow_root: Path | None = None  # manifest_path is read only under this folder (None: never)
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    counters: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, value: float = 1) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + value


def create_app(state: ServiceState) -> FastAPI:
    app = FastAPI(title="k8s-auto-fix proposer", version="1")
    checks = select_checks()

    expected = f"Bearer {state.token}".encode()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path != "/healthz":
            # Bytes, not text: compare_digest refuses non-ASCII str, and a header is whatever the client sent.
            given = request.headers.get("authorization", "").encode("latin-1", errors="replace")
            if not hmac.compare_digest(given, expected):
                state.count("k8s_auto_fix_requests_unauthorized_total")
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > state.max_body_bytes):
            return _too_large(state)
        return await call_next(request)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "mode": state.mode}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        with state.lock:
            counters = dict(state.counters)
        if state.client is not None:
            usage = state.client.usage
            counters.update(
                {
                    "k8s_auto_fix_model_requests_total": usage.requests,
                    "k8s_auto_fix_model_prompt_tokens_total": usage.prompt_tokens,
                    "k8s_auto_fix_model_completion_tokens_total": usage.completion_tokens,
                    "k8s_auto_fix_model_latency_seconds_total": round(usage.latency_s, 3),
                }
            )
        lines = []
        for name, value in sorted(counters.items()):
            lines += [f"# TYPE {name} counter", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"

    @app.post("/v1/propose")
    async def propose(request: Request):
        body = await _read_body(request, state)
        if isinstance(body, JSONResponse):
            return body
        try:
            detection = Detection.model_validate_json(body)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "body"
            raise HTTPException(422, f"not a detection: {where}: {first['msg']}") from None
        state.count("k8s_auto_fix_proposals_total")
        # The work is synchronous (model calls, verification): run it off the event loop.
        result = await anyio.to_thread.run_sync(_propose_one, state, checks, detection)
        if result["verdict"] and result["verdict"]["accepted"]:
            state.count("k8s_auto_fix_proposals_accepted_total")
        return result

    return app


def _too_large(state: ServiceState) -> JSONResponse:
    state.count("k8s_auto_fix_requests_too_large_total")
    return JSONResponse({"detail": f"body over {state.max_body_bytes} bytes"}, status_code=413, headers={"Connection": "close"})


async def _read_body(request: Request, state: ServiceState) -> bytes | JSONResponse:
    """The body, read as it streams in: refused (413) as soon as it passes the
    limit, so a chunked body is never buffered whole; each part must arrive
    within the body timeout (408)."""
    parts, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(state.body_timeout):
                part = await stream.__anext__()
        except StopAsyncIteration:
            return b"".join(parts)
        except TimeoutError:
            state.count("k8s_auto_fix_requests_timed_out_total")
            return JSONResponse({"detail": f"no body data for {state.body_timeout:g} s"}, status_code=408, headers={"Connection": "close"})
        size += len(part)
        if size > state.max_body_bytes:
            return _too_large(state)
        parts.append(part)


def _propose_one(state: ServiceState, checks, detection: Detection) -> dict:
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-svc-") as scratch:
        if detection.manifest_yaml:
            # The object travels in the request: lint and patch that text only.
            path = Path(scratch) / "object.yaml"
            path.write_text(detection.manifest_yaml, encoding="utf-8")
            detection = detection.model_copy(update={"manifest_path": str(path), "document_index": 0, "list_index": None, "application": str(path)})
        else:
            path = _allowed_path(state, detection.manifest_path)
            detection = detection.model_copy(update={"manifest_path": str(path), "application": str(path)})
        store = ObjectStore()
        obj = _the_object(store, detection, "manifest_yaml" if detection.manifest_yaml else detection.manifest_path)
        verifier = Verifier(checks, VerifyOptions(include_errors=True), store)
        if state.mode == "rules":
            patches = propose_rules([detection], FixOptions(state.config.fixes), store).patches
        else:
            from ..propose.llm.loop import ModelProposer

            patches = ModelProposer(state.client, state.config, verifier, store, state.mode).propose_all([detection]).patches
        if not patches:
            return {"patch": None, "verdict": None, "detail": f"no fix for {detection.policy_id}"}
        verdicts = verifier.verify(patches, [detection]).verdicts
        patch = patches[0].model_dump(mode="json")
        if holds_a_secret(obj.data):
            patch["object_digest"] = None  # a digest of secret content lets a caller test guesses of it
        return {"patch": patch, "verdict": verdicts[0].model_dump(mode="json") if verdicts else None}


def _allowed_path(state: ServiceState, given: str) -> Path:
    """``given`` when it is a file under the allowed root (symlinks resolved). Every
    refusal is the same 403, so a caller learns nothing of files outside the root."""
    refused = HTTPException(403, "manifest_path is not accepted here: send the object as manifest_yaml")
    if state.allow_root is None or not given:
        raise refused
    root = state.allow_root.resolve()
    path = Path(given) if Path(given).is_absolute() else root / given
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise refused from None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        raise refused
    return resolved


def _the_object(store: ObjectStore, detection: Detection, shown_as: str):
    """The detection's object; a 422 saying what is wrong with the input when there is none."""
    loaded = store.file(detection.manifest_path)
    if loaded.errors:
        problem = loaded.errors[0]
        line = f" line {problem.line}:" if problem.line else ""
        raise HTTPException(422, f"{shown_as}:{line} {problem.message}")
    obj = store.object(detection.manifest_path, detection.document_index, detection.list_index)
    if obj is None:
        raise HTTPException(422, f"{shown_as}: no Kubernetes object at document {detection.document_index}")
    if detection.container is not None and obj.container_named(detection.container) is None:
        raise HTTPException(422, f"{shown_as}: {obj.kind} {obj.name} has no container {detection.container!r}")
    return obj


def holds_a_secret(data: dict) -> bool:
    """A Secret, or an object with a value the model redaction would hide."""
    from .llm.redact import redact

    return data.get("kind") == "Secret" or bool(redact(data).originals)


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request's headers:
    a client that opens a connection (or starts a new request on a kept-alive
    one) and never finishes the headers is disconnected, instead of holding a
    connection forever."""

    header_timeout = DEFAULT_HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        waiting_for = self.cycle  # a new request replaces the cycle
        self.loop.call_later(self.header_timeout, self._headers_overdue, waiting_for)

    def _headers_overdue(self, waiting_for) -> None:
        if self.cycle is waiting_for and not self.transport.is_closing():
            self.transport.close()


def server_for(state: ServiceState, host: str, port: int) -> uvicorn.Server:
    """The uvicorn server of ``serve``, with the header deadline."""
    protocol = type("ServiceH11Protocol", (TimedH11Protocol,), {"header_timeout": state.header_timeout})
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level="warning", http=protocol, timeout_keep_alive=5)
    return uvicorn.Server(config)
