"""Shared fixtures: an app per test on a real database and a real Redis, both isolated.

Backends come from the environment, so the same suite runs twice in CI:
- ``LLMGATE_TEST_DATABASE_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1/postgres``):
  a fresh database is created for the session beside the one named, migrated once with
  ``flask db upgrade``, and dropped at the end. Unset: a SQLite file in a temp folder.
- ``LLMGATE_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379``): the session claims a free
  logical database (1–15) so that several test sessions on one machine never meet. Unset:
  the embedded Redis that llmgate starts under its instance folder.
Every test starts with empty tables and an empty Redis database.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from llmgate import create_app, embedded_redis
from llmgate.extensions import db

TEST_SECRET = "test-secret-" + "x" * 40


# --- backends -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def instance_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="llmgate-test-"))
    yield path
    embedded_redis.stop(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(instance_dir: Path) -> Iterator[str]:
    base = os.environ.get("LLMGATE_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{instance_dir / 'test.db'}"
        return
    url = make_url(base)
    name = f"llmgate_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url(instance_dir: Path) -> Iterator[str]:
    base = os.environ.get("LLMGATE_TEST_REDIS_URL")
    if not base:
        yield embedded_redis.ensure_running(instance_dir)
        return
    claims = redis.Redis.from_url(base, db=0)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    for index in range(1, 16):
        if claims.set(f"llmgate:test-db-claim:{index}", token, nx=True, ex=3 * 3600):
            break
    else:
        pytest.exit("no free Redis database (1-15) for this test session", returncode=3)
    url = urlsplit(base)._replace(path=f"/{index}").geturl()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        if claims.get(f"llmgate:test-db-claim:{index}") == token.encode():
            claims.delete(f"llmgate:test-db-claim:{index}")


@pytest.fixture(scope="session")
def base_config(instance_dir: Path, database_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "LLMGATE_ENV": "testing",
        "TESTING": True,
        "INSTANCE_PATH": str(instance_dir),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "JWT_SECRET_KEY": TEST_SECRET + "-jwt",
        "MODELS_FILE": str(instance_dir / "models.yaml"),
        "FILES_DIR": str(instance_dir / "files"),
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def migrated(base_config: dict[str, Any]) -> dict[str, Any]:
    """Build the schema once per session, through the migrations (never create_all)."""
    from flask_migrate import upgrade

    app = create_app(base_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return base_config


def _empty_everything(app) -> None:
    with app.app_context():
        tables = [t for t in reversed(db.metadata.sorted_tables)]
        if tables:
            if db.engine.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                db.session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    db.session.execute(table.delete())
            db.session.commit()
        db.session.remove()
        from llmgate.extensions import get_redis

        get_redis().flushdb()


# --- app ----------------------------------------------------------------------------------------

@pytest.fixture
def app_factory(migrated: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """``app_factory(**overrides)`` builds another app on the same database and Redis."""
    apps = []

    def make(**overrides: Any):
        app = create_app({**migrated, **overrides})
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory):
    app = app_factory()
    _empty_everything(app)
    yield app
    _empty_everything(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
