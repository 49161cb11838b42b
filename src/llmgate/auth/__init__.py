"""Users, passwords, JWT sessions and API keys."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import jwt
    from .keys import last_used_flush_loop

    jwt.init_app(app)
    # Keys' last-use times are kept in Redis on the hot path and copied to the database here.
    app.extensions.setdefault("llmgate.worker_loops", []).append(last_used_flush_loop)
