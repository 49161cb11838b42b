"""llmgate: a self-hosted LLM gateway and batch service.

``create_app`` is the only place that assembles things: config → extensions → logging →
blueprints → CLI. Nothing is connected or configured at import time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the WSGI app. ``config`` overrides what the environment says (tests use it)."""
    from . import config as config_module
    from . import errors, extensions, logging as llmgate_logging, observability

    # The instance folder (SQLite file, embedded Redis, uploads, dev secrets) defaults to
    # ./instance in the working directory, not inside the installed package.
    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("LLMGATE_INSTANCE_PATH") or "instance"
    app = Flask(__name__, instance_path=str(Path(instance_path).resolve()), instance_relative_config=True)
    app.config.update(config_module.load(app.instance_path))
    app.config["MIGRATIONS_DIR"] = str(PACKAGE_DIR / "migrations")
    if config:
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    llmgate_logging.init_app(app)
    extensions.init_app(app)
    errors.init_app(app)
    observability.init_app(app)

    from . import accounting, api, auth, batches, dashboard, gateway
    from . import models  # noqa: F401  (registers every table on db.metadata)

    auth.init_app(app)
    api.init_app(app)
    for feature in (gateway, accounting, batches, dashboard):
        feature.init_app(app)
    return app
