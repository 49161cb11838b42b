"""Signed, time-limited download links for result tables.

The token (itsdangerous ``URLSafeTimedSerializer`` over ``SECRET_KEY``) names the batch, the
format and the owner; whoever holds the link may download until it expires, without logging in.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..errors import Forbidden, NotFound
from ..extensions import db
from ..models.batch import Batch
from . import tables

SALT = "llmgate.batch-download"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def ttl_seconds() -> int:
    return int(current_app.config.get("BATCH_DOWNLOAD_TTL_S", 3600))


def make_token(batch: Batch, fmt: str) -> str:
    return _serializer().dumps({"b": batch.id, "f": tables.detect_format(None, fmt), "u": batch.user_id})


def download_link(batch: Batch, fmt: str, *, external: bool = True) -> dict[str, Any]:
    token = make_token(batch, fmt)
    url = url_for("api.batches_download", token=token, _external=external)
    return {"url": url, "format": tables.detect_format(None, fmt), "expires_in": ttl_seconds()}


def resolve(token: str) -> tuple[Batch, str]:
    try:
        data = _serializer().loads(token, max_age=ttl_seconds())
    except SignatureExpired:
        raise Forbidden("This download link has expired; ask for a new one.", code="link_expired") from None
    except BadSignature:
        raise Forbidden("This download link is not valid.", code="link_invalid") from None
    batch = db.session.get(Batch, data.get("b"))
    if batch is None or batch.user_id != data.get("u"):
        raise NotFound("The batch of this link is gone.", code="batch_not_found")
    return batch, data["f"]
