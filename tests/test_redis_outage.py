"""With Redis unreachable, authenticated routes answer 503 in the caller's format, never 500."""


def test_v1_answers_503_when_redis_is_down(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/v1/models", headers={"Authorization": "Bearer sk-lg-whatever"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["type"] == "server_error"


def test_api_answers_503_when_redis_is_down(app_factory):
    app = app_factory(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/api/me", headers={"Authorization": "Bearer sk-lg-whatever"})
    assert response.status_code == 503
    assert response.get_json()["code"] == "service_unavailable"
