"""Model providers: the small interface a model client offers, and the clients by protocol.

Every built-in endpoint speaks OpenAI's chat-completions protocol (xAI Grok,
OpenAI, vLLM, Ollama, llama.cpp): ``api: openai``. A provider that speaks
something else is a class with ``complete``, ``usage``, ``endpoint`` and
``close`` (``ModelClient``) and one line in ``PROVIDERS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from ...config import EndpointSettings, ProposerSettings, RunConfig
from .client import ChatClient, ModelError, Usage


class ModelClient(Protocol):
    endpoint: EndpointSettings
    usage: Usage  # summed over every request made so far

    def complete(self, messages: list[dict]) -> tuple[str, Usage]:
        """The model's text answer to chat ``messages``, and what the call cost."""

    def close(self) -> None: ...


ProviderFactory = Callable[[EndpointSettings, ProposerSettings, "str | None"], ModelClient]
PROVIDERS: dict[str, ProviderFactory] = {
    "openai": lambda endpoint, settings, api_key: ChatClient(endpoint, settings, api_key),
}


def client_for(config: RunConfig, name: str, retries: int | None = None) -> ModelClient:
    """The client of endpoint ``name``, with its key from the configured variable.
    A missing key is an error naming the variable; nothing is sent."""
    if name not in config.endpoints:
        raise ModelError(f"no endpoint {name!r} in the configuration (known: {', '.join(config.endpoints)})")
    endpoint = config.endpoint(name)
    api_key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
    if endpoint.api_key_env and not api_key:
        raise ModelError(f"--mode {name} needs an API key in ${endpoint.api_key_env} (set it, or change endpoints.{name}.api_key_env)")
    proposer = config.proposer if retries is None else config.proposer.model_copy(update={"retries": retries})
    return PROVIDERS[endpoint.api](endpoint, proposer, api_key)
