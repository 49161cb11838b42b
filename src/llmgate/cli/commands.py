"""Every command group added to ``llmgate``; one module per group."""
from __future__ import annotations


def all_commands():
    from .batches import batch
    from .keys import key
    from .models import models
    from .redis import redis_group
    from .serve import run, serve
    from .worker import worker
    from .setup import setup
    from .users import user

    return [user, key, setup, run, serve, worker, redis_group, models, batch]
