"""An OpenAI-compatible chat-completions client (xAI Grok, OpenAI, vLLM, Ollama, ...).

httpx does the HTTP; this adds what a batch of hundreds of requests needs:
connect and read timeouts, retries with exponential backoff and jitter on 429,
5xx and timeouts (honouring ``Retry-After``), a requests-per-minute and
tokens-per-minute budget shared by every thread, and per-request accounting
of tokens and latency.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import httpx

from ...config import EndpointSettings, ProposerSettings

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


class ModelError(Exception):
    """The endpoint did not give a usable answer (after the retries)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    retries: int = 0

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.latency_s += other.latency_s
        self.retries += other.retries

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 3),
            "retries": self.retries,
        }


class RateBudget:
    """A requests-per-minute pace and a tokens-per-minute window, shared by all threads.

    The contract is on *starts*: ``acquire`` lets requests start at least
    60/rpm seconds apart on the budget's clock, rather than in a burst that
    then waits out the minute; tokens are counted over a sliding minute. When
    they *arrive* at the server is up to the network and the scheduler (two
    requests started 0.1 s apart may arrive 0.08 s apart on a busy machine):
    a provider counting per minute still sees at most rpm of them."""

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None, clock=time.monotonic, sleep=time.sleep):
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self._next_start = 0.0
        self._tokens: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self, expected_tokens: int) -> float:
        """Wait until a request may start; returns that start time on the budget's clock."""
        while True:
            wait, start = self.try_acquire(expected_tokens)
            if wait <= 0:
                return start
            self._sleep(min(wait, 1.0))

    def try_acquire(self, expected_tokens: int) -> tuple[float, float]:
        """(0, the start time) when a request may start now, its place taken; else
        (how long to wait before asking again, now). Never sleeps: a Ray actor
        holding the budget for many workers answers this (propose/llm/distributed.py)."""
        with self._lock:
            now = self._clock()
            while self._tokens and now - self._tokens[0][0] >= 60:
                self._tokens.popleft()
            wait = self._next_start - now if self.rpm else 0.0
            if self.tpm and self._tokens and sum(t for _, t in self._tokens) + expected_tokens > self.tpm:
                wait = max(wait, 60 - (now - self._tokens[0][0]))
            if wait <= 0:
                if self.rpm:
                    self._next_start = max(now, self._next_start) + 60 / self.rpm
                self._tokens.append((now, expected_tokens))
                return 0.0, now
            return wait, now


@dataclass
class ChatClient:
    """An endpoint speaking OpenAI's chat-completions protocol (``api: openai``)."""

    endpoint: EndpointSettings
    settings: ProposerSettings
    api_key: str | None = None
    budget: RateBudget | None = None
    transport: httpx.BaseTransport | None = None
    usage: Usage = field(default_factory=Usage)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            scheme = f"{self.endpoint.auth_scheme} " if self.endpoint.auth_scheme else ""
            headers[self.endpoint.auth_header] = f"{scheme}{self.api_key}"
        timeout = httpx.Timeout(self.settings.timeout_seconds, connect=self.settings.connect_timeout_seconds)
        self._http = httpx.Client(base_url=self.endpoint.endpoint.rstrip("/"), headers=headers, timeout=timeout, transport=self.transport)
        if self.budget is None:
            self.budget = RateBudget(self.endpoint.requests_per_minute, self.endpoint.tokens_per_minute)

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: list[dict]) -> tuple[str, Usage]:
        """The assistant's text for ``messages``, and what the call cost."""
        body = {
            "model": self.endpoint.model,
            "messages": messages,
            "temperature": self.endpoint.temperature,
            "max_tokens": self.endpoint.max_tokens,
        }
        usage = Usage()
        expected = sum(len(m["content"]) for m in messages) // 4 + self.endpoint.max_tokens
        attempt, status = 0, None
        while True:
            self.budget.acquire(expected)
            start = time.perf_counter()
            try:
                response = self._http.post("/chat/completions", json=body)
            except httpx.TimeoutException as err:
                failure, retry_after = f"timed out ({type(err).__name__})", None
            except httpx.TransportError as err:
                failure, retry_after = f"cannot reach {self.endpoint.endpoint}: {err}", None
            else:
                usage.latency_s += time.perf_counter() - start
                usage.requests += 1
                if response.status_code == 200:
                    text = self._text(response, usage)
                    self._record(usage)
                    return text, usage
                if response.status_code not in RETRYABLE_STATUS:
                    self._record(usage)
                    raise ModelError(f"HTTP {response.status_code}: {response.text[:200]}", response.status_code)
                failure, retry_after = f"HTTP {response.status_code}", _retry_after(response)
                status = response.status_code
            if attempt >= self.settings.retries:
                self._record(usage)
                raise ModelError(f"{failure} after {attempt + 1} attempt(s)", status if failure.startswith("HTTP") else None)
            attempt += 1
            usage.retries += 1
            time.sleep(retry_after if retry_after is not None else _backoff(attempt))

    def _text(self, response: httpx.Response, usage: Usage) -> str:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError(f"unexpected response: {response.text[:200]}") from None
        tokens = data.get("usage") or {}
        usage.prompt_tokens += int(tokens.get("prompt_tokens") or 0)
        usage.completion_tokens += int(tokens.get("completion_tokens") or 0)
        if not isinstance(text, str) or not text.strip():
            raise ModelError("empty answer")
        return text

    def _record(self, usage: Usage) -> None:
        with self._lock:
            self.usage.add(usage)


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... capped."""
    return random.uniform(0, min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value)))
    except ValueError:
        return None
