"""Configuration from LLMGATE_* variables and the production checks."""
from __future__ import annotations

import logging

from llmgate.config import check_production_ready, is_generated_secret, load

STRONG = "s" * 40


def test_defaults_match_the_documented_table(tmp_path):
    config = load(tmp_path, environ={})
    assert config["LLMGATE_ENV"] == "development"
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'llmgate.db'}"
    assert config["REDIS_URL"] is None and config["MODELS_FILE"] == "models.yaml"
    assert (config["LOG_FORMAT"], config["LOG_FILE"]) == ("json", None)
    assert config["CORS_ORIGINS"] == [] and config["BIND"] == "127.0.0.1:8000"
    assert config["METRICS_TOKEN"] is None
    assert is_generated_secret(config["SECRET_KEY"]) and is_generated_secret(config["JWT_SECRET_KEY"])


def test_environment_overrides(tmp_path):
    config = load(tmp_path, environ={
        "LLMGATE_CORS_ORIGINS": "https://a.example, https://b.example ,", "LLMGATE_LOG_FORMAT": "text",
        "LLMGATE_BIND": "0.0.0.0:9000", "LLMGATE_METRICS_TOKEN": "tok", "LLMGATE_SECRET_KEY": STRONG})
    assert config["CORS_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert (config["LOG_FORMAT"], config["BIND"], config["METRICS_TOKEN"]) == ("text", "0.0.0.0:9000", "tok")
    assert config["SECRET_KEY"] == STRONG


def test_generated_secrets_are_stable_per_instance_folder(tmp_path):
    assert load(tmp_path, environ={})["SECRET_KEY"] == load(tmp_path, environ={})["SECRET_KEY"]


def test_production_refuses_generated_or_short_secrets(tmp_path):
    generated = load(tmp_path, environ={"LLMGATE_ENV": "production"})
    assert len(check_production_ready(generated)) == 2
    short = load(tmp_path, environ={"LLMGATE_SECRET_KEY": "short", "LLMGATE_JWT_SECRET_KEY": STRONG})
    assert [p for p in check_production_ready(short) if "at least 32" in p]
    ready = load(tmp_path, environ={"LLMGATE_SECRET_KEY": STRONG, "LLMGATE_JWT_SECRET_KEY": STRONG + "j"})
    assert check_production_ready(ready) == []


def test_create_app_warns_in_production_with_generated_secrets(app_factory, caplog):
    with caplog.at_level(logging.WARNING, logger="llmgate.observability"):
        app_factory(LLMGATE_ENV="production", SECRET_KEY="llmgate-generated:" + "x" * 40)
    assert any("LLMGATE_SECRET_KEY" in r.getMessage() for r in caplog.records)
