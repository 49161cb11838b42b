"""Every command group added to ``llmgate``; one module per group."""
from __future__ import annotations


def all_commands():
    from .keys import key
    from .models import models
    from .setup import setup
    from .users import user

    return [user, key, setup, models]
