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
    """Empty every table and the Redis database before a test.

    DELETE, not TRUNCATE: on tables this small PostgreSQL deletes ~10x faster than it
    truncates (TRUNCATE rewrites files), and tests never rely on ids restarting at 1.
    """
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
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
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# --- users, keys and logins (factories every test may use) ---------------------------------------
# make_user / make_key write through the auth services (so rules and caches are honoured) and
# return ORM rows; call them inside a test that uses the ``app`` fixture. Passwords are hashed
# with cheap argon2 parameters because TESTING is set (see llmgate.auth.passwords).

DEFAULT_PASSWORD = "pw-Secret-123"


@pytest.fixture
def make_user(app):
    """``make_user(email=None, password=DEFAULT_PASSWORD, role="member", **fields) -> User``."""
    from llmgate.auth import users

    counter = iter(range(1, 10_000))

    def make(email: str | None = None, password: str = DEFAULT_PASSWORD, role: str = "member", **fields: Any):
        with app.app_context():
            active = fields.pop("active", True)
            user = users.create_user(email=email or f"user{next(counter)}@example.com", password=password,
                                     role=role, active=active, **fields)
            db.session.refresh(user)
            db.session.expunge(user)
            return user

    return make


@pytest.fixture
def make_key(app):
    """``make_key(user, **fields) -> (plaintext, ApiKey)``; fields as ``keys.create_key`` takes
    them (name, models, expires_in / expires_at, rpm, tpm, max_concurrency, budget_*)."""
    from llmgate.auth import keys
    from llmgate.models.user import User

    def make(user, **fields: Any):
        with app.app_context():
            row = db.session.get(User, user.id)
            plaintext, key = keys.create_key(user=row, **fields)
            db.session.refresh(key)
            db.session.expunge(key)
            return plaintext, key

    return make


@pytest.fixture
def login(app):
    """``login(user_or_email, password=DEFAULT_PASSWORD) -> {"access_token", "refresh_token"}``,
    through ``POST /api/auth/login``."""

    def do_login(user_or_email, password: str = DEFAULT_PASSWORD, client=None) -> dict[str, str]:
        email = getattr(user_or_email, "email", user_or_email)
        response = (client or app.test_client()).post("/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return do_login


@pytest.fixture
def auth_headers(app):
    """``auth_headers(user) -> {"Authorization": "Bearer <fresh access token>"}`` (no HTTP round trip)."""
    from flask_jwt_extended import create_access_token

    def headers(user) -> dict[str, str]:
        with app.app_context():
            return {"Authorization": f"Bearer {create_access_token(identity=user, fresh=True)}"}

    return headers


@pytest.fixture
def admin(make_user):
    return make_user("admin@example.com", role="admin")


@pytest.fixture
def member(make_user):
    return make_user("member@example.com", role="member")
