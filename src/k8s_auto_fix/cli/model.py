"""serve and llm probe: the proposer as a service, and what an endpoint can take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_CONFIG_PATH
from .app import app, llm_app
from .common import ConfigOpt, fail, load_settings


def _model_client(settings, endpoint: str, retries: int | None = None):
    from ..propose.llm.client import ModelError
    from ..propose.llm.providers import client_for

    try:
        return client_for(settings, endpoint, retries)
    except ModelError as err:
        raise fail(str(err)) from None


@llm_app.command("probe")
def llm_probe(
    mode: Annotated[str, typer.Option("--mode", help="The endpoint: grok, vendor, vllm, or one of yours.")] = "vendor",
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", help="Stop growing here.")] = 16,
    rounds: Annotated[int, typer.Option("--rounds", help="Requests per level, per concurrent slot.")] = 2,
) -> None:
    """Measure latency per concurrency level and the highest level without 429s (JSON on stdout)."""
    from ..propose.llm.probe import probe
    from ..report.render import print_json

    if mode == "rules":
        raise fail("probe needs a model endpoint, not rules")
    client = _model_client(load_settings(config), mode, retries=0)
    try:
        print_json(probe(client, max_concurrency, rounds))
    finally:
        client.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    mode: Annotated[str, typer.Option("--mode", help="rules, or a model endpoint.")] = "rules",
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    token_env: Annotated[str, typer.Option("--token-env", help="Environment variable holding the bearer token.")] = "K8S_AUTO_FIX_TOKEN",
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Refuse larger requests (413).")] = 1024 * 1024,
    allow_root: Annotated[
        Optional[Path], typer.Option("--allow-root", help="Also accept a manifest_path, for files under this folder only (default: manifest_yaml only).")
    ] = None,
    header_timeout: Annotated[float, typer.Option("--header-timeout", help="Seconds a client has to send a request's headers.")] = 10.0,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a client may pause while sending a body (408).")] = 30.0,
) -> None:
    """Serve the proposer over HTTP: POST /v1/propose, GET /healthz, GET /metrics."""
    import os

    from ..propose.service import ServiceState, server_for

    token = os.environ.get(token_env)
    if not token:
        raise fail(f"serve needs a bearer token in ${token_env}")
    settings = load_settings(config)
    client = None if mode == "rules" else _model_client(settings, mode)
    if allow_root is not None and not allow_root.is_dir():
        raise fail(f"--allow-root {allow_root}: not a folder")
    state = ServiceState(settings, token, mode, client, max_body_bytes, allow_root, header_timeout, body_timeout)
    server_for(state, host, port).run()
