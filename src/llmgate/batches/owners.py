"""Whose batch it is: the principal every row of a batch runs as.

The batch runs with the key it was submitted with (its allow-list, limits and budget), read
through the auth cache, so a revoked key or a deactivated user stops the batch too.
"""
from __future__ import annotations

from ..auth import principal_cache
from ..auth.principal import Principal
from ..errors import Forbidden
from ..extensions import db
from ..models.api_key import ApiKey
from ..models.batch import Batch


def principal_of(batch: Batch) -> Principal:
    if batch.key_id is not None:
        key = db.session.get(ApiKey, batch.key_id)
        principal = principal_cache.for_key_hash(key.key_hash).usable() if key is not None else None
    else:
        principal = principal_cache.for_user_id(batch.user_id).usable()
    if principal is None:
        raise Forbidden("The key or user this batch was submitted with is no longer valid.", code="owner_invalid")
    return principal
