"""Moving usage events from the Redis stream to the database, durably.

Each drainer is a consumer in one consumer group. A batch is read (own pending entries first,
then entries left pending by a consumer idle too long — a dead one — then new ones), written in
one transaction, and only after COMMIT acknowledged and deleted. A drainer killed at any point
leaves its entries pending for another to reclaim; the ledger's ``ON CONFLICT DO NOTHING`` makes
the replay harmless. While the database is down nothing is acknowledged: events wait in Redis.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from typing import Any

import redis
from flask import Flask, current_app

from .. import metrics
from ..extensions import db, get_redis
from .gate import STREAM_KEY
from .ledger import write_events
from .settler import SETTLER_KEY

log = logging.getLogger(__name__)

GROUP = "llmgate-drainers"
RECLAIM_IDLE_MS = 60_000  # an entry unacknowledged this long belongs to a dead drainer


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _read(client: redis.Redis, consumer: str, count: int, block_ms: int | None, reclaim_idle_ms: int):
    # 1. what this consumer read before and did not acknowledge (the last write failed)
    mine = client.xreadgroup(GROUP, consumer, {STREAM_KEY: "0"}, count=count)
    entries = mine[0][1] if mine else []
    if entries:
        return entries
    # 2. what a dead consumer left behind
    claimed = client.xautoclaim(STREAM_KEY, GROUP, consumer, min_idle_time=reclaim_idle_ms, start_id="0-0",
                                count=count)
    if claimed and claimed[1]:
        return claimed[1]
    # 3. new entries
    new = client.xreadgroup(GROUP, consumer, {STREAM_KEY: ">"}, count=count, block=block_ms)
    return new[0][1] if new else []


def drain_batch(*, consumer: str, count: int = 1000, block_ms: int | None = None,
                reclaim_idle_ms: int = RECLAIM_IDLE_MS) -> tuple[int, int]:
    """Move one batch; returns (entries handled, rows newly inserted). Raises if the DB fails."""
    client = get_redis()
    ensure_group(client)
    entries = _read(client, consumer, count, block_ms, reclaim_idle_ms)
    # xautoclaim lists deleted entries as (id, None): nothing to write, just acknowledge.
    ids = [entry_id for entry_id, _ in entries]
    events: list[dict[str, Any]] = []
    for entry_id, fields in entries:
        if not fields:
            continue
        try:
            events.append(json.loads(fields[b"e"]))
        except (KeyError, ValueError):
            log.error("malformed usage event dropped", extra={"stream_id": entry_id.decode(), "fields": str(fields)})
    inserted = write_events(events) if events else 0
    if ids:
        pipe = client.pipeline(transaction=True)
        pipe.xack(STREAM_KEY, GROUP, *ids)
        pipe.xdel(STREAM_KEY, *ids)
        pipe.execute()
    if inserted:
        metrics.USAGE_EVENTS_WRITTEN.inc(inserted)
    return len(ids), inserted


def flush(*, count: int = 1000, reclaim_idle_ms: int = 0) -> int:
    """Drain until the stream is empty (``llmgate usage flush``); returns rows inserted.

    Settles this process has queued (``accounting.settler``, up to a few ms after a ``/v1``
    answer) are sent first. A call settles once its answer has been sent (``call_on_close``), so
    a flush issued the instant a client has read its answer may run before that call's settle.
    ``reclaim_idle_ms=0`` also takes entries another drainer holds right now; that is safe (the
    writes are idempotent) and makes a flush after a crash complete."""
    settler = current_app.extensions.get(SETTLER_KEY)
    if settler is not None:
        settler.wait_sent()
    consumer = consumer_name()
    total = 0
    try:
        while True:
            handled, inserted = drain_batch(consumer=consumer, count=count, reclaim_idle_ms=reclaim_idle_ms)
            total += inserted
            if not handled:
                return total
    finally:
        _forget_consumer(get_redis(), consumer)


def _forget_consumer(client: redis.Redis, consumer: str) -> None:
    """Remove a finished consumer from the group, but only when it holds nothing: deleting a
    consumer drops its pending entries from the group, which would strand them."""
    try:
        if not client.xpending_range(STREAM_KEY, GROUP, min="-", max="+", count=1, consumername=consumer):
            client.xgroup_delconsumer(STREAM_KEY, GROUP, consumer)
    except redis.exceptions.RedisError:
        pass


def pending() -> int:
    return int(get_redis().xlen(STREAM_KEY))


def drain_loop(app: Flask, stop_event: threading.Event) -> None:
    """Worker loop (see ``llmgate worker``): drain until stopped, backing off while the DB is down."""
    with app.app_context():  # the worker gives loops a context already; this makes the loop self-contained
        _drain_until(app, stop_event)


def _drain_until(app: Flask, stop_event: threading.Event) -> None:
    consumer = consumer_name()
    backoff = 0.5
    count = int(app.config.get("USAGE_DRAIN_BATCH", 1000))
    while not stop_event.is_set():
        try:
            handled, _ = drain_batch(consumer=consumer, count=count, block_ms=1000)
            metrics.USAGE_EVENTS_PENDING.set(pending())
            backoff = 0.5
        except Exception:
            log.exception("usage drain failed; events stay in Redis", extra={"retry_in_s": backoff})
            db.session.remove()
            stop_event.wait(backoff)
            backoff = min(backoff * 2, 30.0)
        else:
            if not handled:
                db.session.remove()
    _forget_consumer(get_redis(), consumer)
