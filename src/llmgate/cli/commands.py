"""Every command group added to ``llmgate``; one module per group."""
from __future__ import annotations


def all_commands():
    from .batches import batch
    from .keys import key
    from .models import models
    from .redis import redis_group
    from .serve import run, serve
    from .setup import setup
    from .usage import usage
    from .users import user
    from .worker import worker

    return [user, key, setup, usage, run, serve, worker, redis_group, models, batch]
