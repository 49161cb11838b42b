"""Extensions created unbound here and bound in ``create_app``; clients live in ``app.extensions``.

Nothing connects at import time. Redis and the RQ queues are built by :func:`init_redis` and
fetched with :func:`get_redis` / :func:`get_queue` inside an app context.
"""
from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app
from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from rq import Queue
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from . import embedded_redis, redis_client

# Stable constraint names so that migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
cors = CORS()

REDIS_KEY = "llmgate.redis"
QUEUES_KEY = "llmgate.queues"
QUEUE_NAMES = ("default", "usage", "batches")


def init_redis(app: Flask) -> None:
    url = app.config.get("REDIS_URL") or embedded_redis.ensure_running(app.config["INSTANCE_PATH"])
    app.config["REDIS_URL"] = url
    client = redis_client.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
    app.extensions[REDIS_KEY] = client
    # RQ stores pickled results: it needs a client that returns bytes, which this one does.
    app.extensions[QUEUES_KEY] = {name: Queue(name, connection=client) for name in QUEUE_NAMES}


def get_redis(app: Flask | None = None) -> redis.Redis:
    return (app or current_app).extensions[REDIS_KEY]


def get_queue(name: str = "default", app: Flask | None = None) -> Queue:
    return (app or current_app).extensions[QUEUES_KEY][name]


_SCRIPTS_KEY = "llmgate.redis_scripts"


def redis_script(source: str, app: Flask | None = None) -> Any:
    """``source`` registered with the app's Redis client, once per client (redis-py's ``Script``:
    EVALSHA, loading the script on NOSCRIPT)."""
    app = app or current_app
    client = get_redis(app)
    scripts = app.extensions.setdefault(_SCRIPTS_KEY, {})
    script = scripts.get(source)
    if script is None or script.registered_client is not client:
        script = scripts[source] = client.register_script(source)
    return script


def init_app(app: Flask, **_: Any) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=app.config["MIGRATIONS_DIR"], render_as_batch=True, compare_type=True)
    jwt.init_app(app)
    if app.config["CORS_ORIGINS"]:
        cors.init_app(
            app,
            origins=app.config["CORS_ORIGINS"],
            expose_headers=["x-request-id", "x-llmgate-overhead-ms", "retry-after"],
            allow_headers=["Authorization", "Content-Type", "x-api-key", "x-request-id", "anthropic-version"],
        )
    init_redis(app)
