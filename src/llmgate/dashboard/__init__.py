"""Server-rendered pages under /dashboard: sign-in, overview, keys, usage, batches, models, admin."""
from __future__ import annotations

from flask import Flask

from .app_hooks import install
from .blueprint import bp


def init_app(app: Flask) -> None:
    from .views import admin, batches, keys, models, overview, signin, usage  # noqa: F401  (add routes to bp)

    install(app)
    app.register_blueprint(bp)
