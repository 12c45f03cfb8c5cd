"""`k8s-auto-fix serve`: the proposer as an HTTP service (FastAPI on uvicorn).

POST /v1/propose   a detection in (with ``manifest_yaml``, or a path the
                   server can read), the patch and its verdict out
GET  /healthz      liveness
GET  /metrics      Prometheus text format

Every request needs ``Authorization: Bearer <token>``, the token coming from
an environment variable. Bodies over ``max_body_bytes`` are refused. All
requests share one model client, so they share its rate budget.
"""

from __future__ import annotations

import hmac
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError

from ..checks.fixes import FixOptions
from ..checks.selection import select_checks
from ..config import RunConfig
from ..contracts import Detection
from ..manifests.store import ObjectStore
from ..propose.rules import propose_rules
from ..verify.verifier import Verifier, VerifyOptions

DEFAULT_MAX_BODY = 1024 * 1024


@dataclass
class ServiceState:
    config: RunConfig
    token: str
    mode: str = "rules"
    client: object | None = None  # a ModelClient for model modes
    max_body_bytes: int = DEFAULT_MAX_BODY
    counters: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, value: float = 1) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + value


def create_app(state: ServiceState) -> FastAPI:
    app = FastAPI(title="k8s-auto-fix proposer", version="1")
    checks = select_checks()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path != "/healthz":
            expected = f"Bearer {state.token}"
            if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
                state.count("k8s_auto_fix_requests_unauthorized_total")
                return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
        length = request.headers.get("content-length")
        if length is not None and int(length) > state.max_body_bytes:
            state.count("k8s_auto_fix_requests_too_large_total")
            return JSONResponse({"detail": f"body over {state.max_body_bytes} bytes"}, status_code=413)
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
        body = await request.body()
        if len(body) > state.max_body_bytes:
            raise HTTPException(413, f"body over {state.max_body_bytes} bytes")
        try:
            detection = Detection.model_validate_json(body)
        except ValidationError as err:
            raise HTTPException(422, f"not a detection: {err.errors()[0]['msg']}") from None
        state.count("k8s_auto_fix_proposals_total")
        # The work is synchronous (model calls, verification): run it off the event loop.
        import anyio

        result = await anyio.to_thread.run_sync(_propose_one, state, checks, detection)
        if result["verdict"] and result["verdict"]["accepted"]:
            state.count("k8s_auto_fix_proposals_accepted_total")
        return result

    return app


def _propose_one(state: ServiceState, checks, detection: Detection) -> dict:
    with tempfile.TemporaryDirectory(prefix="k8s-auto-fix-svc-") as scratch:
        if detection.manifest_yaml:
            # The object travels in the request: lint and patch that text only.
            path = Path(scratch) / "object.yaml"
            path.write_text(detection.manifest_yaml, encoding="utf-8")
            detection = detection.model_copy(update={"manifest_path": str(path), "document_index": 0, "list_index": None, "application": str(path)})
        elif not Path(detection.manifest_path).is_file():
            raise HTTPException(422, "send manifest_yaml, or a manifest_path the server can read")
        store = ObjectStore()
        verifier = Verifier(checks, VerifyOptions(include_errors=True), store)
        if state.mode == "rules":
            patches = propose_rules([detection], FixOptions(state.config.fixes), store).patches
        else:
            from ..propose.llm.loop import ModelProposer

            patches = ModelProposer(state.client, state.config, verifier, store, state.mode).propose_all([detection]).patches
        if not patches:
            return {"patch": None, "verdict": None, "detail": f"no fix for {detection.policy_id}"}
        verdicts = verifier.verify(patches, [detection]).verdicts
        return {
            "patch": patches[0].model_dump(mode="json"),
            "verdict": verdicts[0].model_dump(mode="json") if verdicts else None,
        }
