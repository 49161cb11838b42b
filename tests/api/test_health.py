"""Liveness and readiness probes, on whichever backends the session runs."""


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_when_redis_is_down(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"].startswith("error")


def test_readyz_is_503_when_the_database_is_down(app_factory, database_url):
    dead = ("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2" if database_url.startswith("postgresql")
            else "sqlite:////nonexistent-llmgate-dir/none.db")
    response = app_factory(SQLALCHEMY_DATABASE_URI=dead).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["checks"]["database"].startswith("error")
    assert body["checks"]["redis"] == "ok"
