"""Server-sent events framing: split a byte stream into whole events, read and write single events.

Events stay ``bytes`` so pass-through streams can forward exactly what arrived.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

DONE = b"data: [DONE]\n\n"


def split_events(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Whole events, each ending in a blank line, however the transport cut the chunks."""
    for batch in split_event_batches(chunks):
        yield from batch


def split_event_batches(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Whole events, grouped by the transport chunk that completed them (never an empty group):
    what arrived together can be written on together, in one send."""
    buffer = b""
    held_cr = False  # a chunk ended in CR: it may be the first half of a CRLF the next one ends
    for chunk in chunks:
        if held_cr:
            chunk, held_cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, held_cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n")
        buffer = buffer + chunk if buffer else chunk
        start = 0
        batch = []
        while (end := buffer.find(b"\n\n", start)) != -1:
            if end > start:
                batch.append(buffer[start:end + 2])
            start = end + 2
        buffer = buffer[start:]
        if batch:
            yield batch
    if buffer.strip():
        yield [buffer.rstrip(b"\n") + b"\n\n"]


def event_name(event: bytes) -> str | None:
    """The ``event:`` field, which Anthropic streams put on the first line."""
    if event.startswith(b"event:"):
        return event[6:event.find(b"\n")].strip().decode()
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode()
    return None


def event_data(event: bytes) -> bytes:
    """The ``data:`` payload (multi-line data joined by newlines); ``b""`` when there is none."""
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines)


def event_json(event: bytes) -> Any:
    """The data payload parsed as JSON, or None for comments, pings without data and ``[DONE]``."""
    data = event_data(event)
    if not data or data == b"[DONE]":
        return None
    return json.loads(data)


def encode_event(payload: dict[str, Any], *, event: str | None = None) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
