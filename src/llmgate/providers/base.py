"""The provider contract: deployment config, usage, raw results and streams, and the abstract ``Provider``.

Providers move JSON bodies and SSE bytes in their own wire format and never translate;
translation lives in ``llmgate.gateway.translate``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

WireFormat = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. ``input_tokens`` counts the whole prompt (OpenAI's ``prompt_tokens``
    semantics: cached tokens included); ``cached_tokens`` is the part read from the prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        details = usage.get("prompt_tokens_details") or {}
        # Embeddings report only prompt_tokens; chat reports completion_tokens too.
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                   int(details.get("cached_tokens") or 0))

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        # Anthropic's input_tokens exclude cache reads and writes; ours include them.
        cached = int(usage.get("cache_read_input_tokens") or 0)
        written = int(usage.get("cache_creation_input_tokens") or 0)
        return cls(int(usage.get("input_tokens") or 0) + cached + written,
                   int(usage.get("output_tokens") or 0), cached)

    def to_openai(self) -> dict[str, Any]:
        return {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                "total_tokens": self.total_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens}}

    def to_anthropic(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens - self.cached_tokens, "output_tokens": self.output_tokens,
                "cache_read_input_tokens": self.cached_tokens, "cache_creation_input_tokens": 0}


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    """One entry of models.yaml: ``name`` is what clients ask for, ``model`` the upstream id."""

    name: str
    provider: str
    model: str
    index: int = 0  # position among the entries sharing ``name`` (a pool)
    api_base: str | None = None
    api_key: str | None = None
    price: Price = field(default_factory=Price)
    limits: Limits = field(default_factory=Limits)
    timeout_s: float = 60.0
    fallbacks: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.name}#{self.index}"


@dataclass(frozen=True, slots=True)
class RawResult:
    """A whole upstream answer, bytes exactly as received, with the usage read from them."""

    status: int
    body: bytes
    usage: Usage
    content_type: str = "application/json"


class UsageSniffer(Protocol):
    """Reads usage off SSE events as they pass, touching as little of each as it can."""

    usage: Usage

    def feed(self, event: bytes) -> None: ...


class RawStream:
    """Complete SSE events (``bytes``, blank-line terminated, as received) from an upstream stream.

    Iterate for one event at a time, or call ``next_batch()`` for every event already received
    (a pass-through writes those on in one send). ``usage`` fills in as events pass. ``close()``
    closes the HTTP response, which drops the connection and so cancels the upstream
    generation; iterating to the end closes it too. Transport failures mid-stream surface as
    ``ProviderError`` from iteration.
    """

    def __init__(self, batches: Iterator[list[bytes]], *, sniffer: UsageSniffer, close: Callable[[], None],
                 status: int = 200) -> None:
        self._batches = batches
        self._pending: deque[bytes] = deque()
        self._sniffer = sniffer
        self._close = close
        self.status = status
        self.closed = False

    @property
    def usage(self) -> Usage:
        return self._sniffer.usage

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if not self._pending:
            self._pending.extend(self._receive())
        event = self._pending.popleft()
        self._sniffer.feed(event)
        return event

    def next_batch(self) -> list[bytes]:
        """The events received and not yet taken, at least one; ``StopIteration`` at the end."""
        if self._pending:
            batch = list(self._pending)
            self._pending.clear()
        else:
            batch = self._receive()
        for event in batch:
            self._sniffer.feed(event)
        return batch

    def _receive(self) -> list[bytes]:
        try:
            return next(self._batches)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Provider(ABC):
    """One long-lived client per deployment (connection pool), SDK retries off: retries are the gateway's."""

    wire_format: ClassVar[WireFormat]
    # The output-cap field of a translated OpenAI-format body (OpenAI proper wants
    # max_completion_tokens; compatible servers know max_tokens).
    max_tokens_param: ClassVar[str] = "max_tokens"

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @abstractmethod
    def chat(self, body: dict[str, Any], *, stream: bool, timeout: float | None = None) -> RawResult | RawStream:
        """Send a chat body already in this provider's wire format (``model`` already set)."""

    @abstractmethod
    def embeddings(self, body: dict[str, Any], *, timeout: float | None = None) -> RawResult:
        """Send an OpenAI-format embeddings body; providers without embeddings raise BadRequestError."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection pool."""
