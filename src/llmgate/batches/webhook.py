"""The webhook a batch calls when it ends: checked at create time and again at send time.

Built on ``llmgate.webhooks`` (private/loopback targets refused unless in
``WEBHOOK_ALLOWLIST``; body signed ``X-LLMGate-Signature: sha256=<hmac>``); this module adds
the payload and retries with backoff.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import requests
from flask import current_app

from .. import webhooks
from ..errors import ValidationError
from ..models.batch import Batch

log = logging.getLogger(__name__)
EVENT = "batch.finished"


def check(url: Any) -> str | None:
    if url in (None, ""):
        return None
    if not isinstance(url, str) or len(url) > 2000:
        raise ValidationError("webhook_url must be a URL.", details={"webhook_url": "invalid"}, param="webhook_url")
    webhooks.check_url(url, allowlist=current_app.config.get("WEBHOOK_ALLOWLIST") or (), field="webhook_url")
    return url


def payload(batch: Batch) -> dict[str, Any]:
    from .service import batch_object, progress

    return {"event": EVENT, "batch": batch_object(batch), "kind": batch.kind, "progress": progress(batch)}


def send(batch: Batch) -> bool:
    """POST the payload, retrying on failure (``BATCH_WEBHOOK_ATTEMPTS``, exponential backoff)."""
    config = current_app.config
    attempts = int(config.get("BATCH_WEBHOOK_ATTEMPTS", 5))
    base = float(config.get("BATCH_WEBHOOK_BACKOFF_S", 1.0))
    body = payload(batch)
    for attempt in range(attempts):
        try:
            status = webhooks.post(batch.webhook_url, body, secret=webhooks.secret_for(config),
                                   allowlist=config.get("WEBHOOK_ALLOWLIST") or (), event=EVENT)
            if 200 <= status < 300:
                return True
            log.warning("batch webhook refused", extra={"batch_id": batch.id, "status": status})
        except ValidationError as error:  # the URL turned unsafe since creation (DNS changed): never send
            log.warning("batch webhook URL refused at send time", extra={"batch_id": batch.id, "why": error.message})
            return False
        except requests.RequestException as error:
            log.warning("batch webhook failed", extra={"batch_id": batch.id, "error": str(error)})
        if attempt + 1 < attempts:
            time.sleep(base * 2 ** attempt)
    return False
