"""models.yaml: validation that names entry and field, pools, hot reload, and the empty start."""
from __future__ import annotations

import os
import signal
import time

import pytest

from llmgate.gateway.catalog import MissingCredentials, get_catalog, get_holder
from llmgate.gateway.models_file import ModelsFileError, parse
from tests.gateway.conftest import write_models

VALID = """
models:
  - name: a
    provider: openai
    model: up-a
    api_key: sk-1
    fallbacks: [b]
  - name: b
    provider: anthropic
    model: up-b
    api_key: env:LLMGATE_TEST_B_KEY
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ModelsFileError) as raised:
        parse(text, environ={})
    return raised.value.problems


def test_valid_file_resolves_env_keys_and_pools():
    models = parse(VALID + """
  - name: a
    provider: openai
    model: up-a2
    api_key: sk-2
""", environ={"LLMGATE_TEST_B_KEY": "secret"})
    assert [d.id for d in models.deployments] == ["a#0", "b#0", "a#1"]
    assert models.deployments[1].api_key == "secret" and models.missing_keys == {}


def test_unset_env_key_is_reported_not_fatal():
    models = parse(VALID, environ={})
    assert models.missing_keys == {"b#0": "LLMGATE_TEST_B_KEY"}
    assert models.missing_key_problems() == [
        "models[1] ('b'): api_key: environment variable LLMGATE_TEST_B_KEY is not set"]


@pytest.mark.parametrize("entry, expected", [
    ("{name: x, provider: openai}", "models[0] ('x'): 'model' is required"),
    ("{name: x, provider: nope, model: m}", "models[0] ('x'): provider: unknown provider 'nope'"),
    ("{name: x, provider: openai-compatible, model: m}", "models[0] ('x'): api_base: is required"),
    ("{name: x, provider: openai, model: m, price: {input_per_mtok: cheap}}",
     "models[0] ('x'): price.input_per_mtok: 'cheap' is not of type"),
    ("{name: x, provider: openai, model: m, limits: {rpm: 0}}", "models[0] ('x'): limits.rpm: 0 is less than"),
    ("{name: x, provider: openai, model: m, timeout_s: -1}", "models[0] ('x'): timeout_s:"),
    ("{name: x, provider: openai, model: m, colour: red}", "models[0] ('x'): unknown field 'colour'"),
    ("{name: x, provider: openai, model: m, api_base: 'ftp://h'}", "models[0] ('x'): api_base: 'ftp://h' is not"),
    ("{name: x, provider: openai, model: m, fallbacks: [ghost]}",
     "models[0] ('x'): fallbacks: no model is named 'ghost'"),
    ("{name: x, provider: openai, model: m, fallbacks: [x]}", "models[0] ('x'): fallbacks: a model cannot fall back"),
    ("{name: 'two words', provider: openai, model: m}", "models[0] ('two words'): name: must not contain spaces"),
    ("{name: x, provider: openai, model: m, api_key: 'env:'}", "models[0] ('x'): api_key: 'env:' must be followed"),
])
def test_each_problem_names_entry_and_field(entry, expected):
    found = problems(f"models:\n  - {{name: ok, provider: openai, model: m}}\n  - {entry}\n".replace(
        "models[0]", "models[1]"))
    assert any(p.startswith(expected.replace("models[0]", "models[1]")) for p in found), found


def test_fallback_cycle():
    found = problems("""
models:
  - {name: a, provider: openai, model: m, fallbacks: [b]}
  - {name: b, provider: openai, model: m, fallbacks: [c]}
  - {name: c, provider: openai, model: m, fallbacks: [a]}
""")
    assert found == ["models[0] ('a'): fallbacks: cycle a -> b -> c -> a"]


def test_all_problems_at_once_and_bad_yaml():
    assert len(problems("models:\n  - {name: a}\n  - {name: b, provider: x, model: m}\n")) == 3
    assert problems("models: [\n")[0].startswith("not valid YAML at line")
    assert problems("{modelz: []}") == ["top level: unknown field 'modelz'"]


def test_empty_file_is_an_empty_catalog():
    assert parse("", environ={}).deployments == ()


def test_missing_file_starts_empty(app_factory, app, tmp_path):
    gateway_app = app_factory(MODELS_FILE=str(tmp_path / "absent.yaml"))
    with gateway_app.app_context():
        assert get_catalog().names() == []


def test_invalid_file_refuses_to_start(app_factory, app, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: a, provider: nope, model: m}\n")
    with pytest.raises(ModelsFileError) as raised:
        app_factory(MODELS_FILE=str(path))
    assert "unknown provider 'nope'" in str(raised.value)


def test_missing_key_raises_only_when_used(app_factory, app, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(VALID)
    gateway_app = app_factory(MODELS_FILE=str(path))
    with gateway_app.app_context():
        catalog = get_catalog()
        catalog.provider(catalog.deployments("a")[0])
        with pytest.raises(MissingCredentials, match="LLMGATE_TEST_B_KEY"):
            catalog.provider(catalog.deployments("b")[0])


def test_warm_up_builds_every_usable_provider_before_any_request(app_factory, app, tmp_path):
    # What a gunicorn worker runs before serving (llmgate.gunicorn_conf.warm_up).
    from llmgate.gunicorn_conf import warm_up

    path = tmp_path / "models.yaml"
    path.write_text(VALID)
    gateway_app = app_factory(MODELS_FILE=str(path))
    warm_up(gateway_app)
    with gateway_app.app_context():
        catalog = get_catalog()
        a = catalog.deployments("a")[0]
        assert catalog._providers.keys() == {a}  # b has no key: skipped, and still refused when used
        assert catalog.build_providers() == []
        with pytest.raises(MissingCredentials):
            catalog.provider(catalog.deployments("b")[0])


def _touch_later(path):
    # Filesystems with coarse timestamps: make sure the new mtime differs.
    stat = os.stat(path)
    os.utime(path, (stat.st_atime, stat.st_mtime + 2))


def test_reload_on_change_keeps_unchanged_providers(app_factory, app, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(VALID)
    gateway_app = app_factory(MODELS_FILE=str(path), GATEWAY_RELOAD_CHECK_S=0.0)
    with gateway_app.app_context():
        before = get_catalog()
        provider_a = before.provider(before.deployments("a")[0])
        path.write_text(VALID + "  - {name: c, provider: openai, model: up-c, api_key: k}\n")
        _touch_later(path)
        after = get_catalog()
        assert after is not before and after.names() == ["a", "b", "c"]
        assert after.provider(after.deployments("a")[0]) is provider_a
        # A request that started on the old catalog keeps its deployments.
        assert before.names() == ["a", "b"]


def test_invalid_change_keeps_the_previous_catalog(app_factory, app, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(VALID)
    gateway_app = app_factory(MODELS_FILE=str(path), GATEWAY_RELOAD_CHECK_S=0.0)
    with gateway_app.app_context():
        before = get_catalog()
        path.write_text("models:\n  - {name: a, provider: nope, model: m}\n")
        _touch_later(path)
        assert get_catalog() is before


def test_checks_at_most_once_per_interval(app_factory, app, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(VALID)
    gateway_app = app_factory(MODELS_FILE=str(path), GATEWAY_RELOAD_CHECK_S=60.0)
    with gateway_app.app_context():
        before = get_catalog()
        path.write_text(VALID + "  - {name: c, provider: openai, model: up-c, api_key: k}\n")
        _touch_later(path)
        assert get_catalog() is before  # not checked again yet
        get_holder().request_reload()
        assert get_catalog().names() == ["a", "b", "c"]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_reloads(app_factory, app, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(VALID)
    gateway_app = app_factory(MODELS_FILE=str(path), GATEWAY_RELOAD_CHECK_S=60.0)
    if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
        pytest.skip("another handler owns SIGHUP in this process")
    with gateway_app.app_context():
        get_catalog()
        path.write_text(VALID + "  - {name: c, provider: openai, model: up-c, api_key: k}\n")
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.01)
        assert get_catalog().names() == ["a", "b", "c"]


def test_models_endpoint_follows_the_file(gateway_app, models_path, fake, api_key):
    client = gateway_app.test_client()
    headers = {"Authorization": f"Bearer {api_key}"}
    assert len(client.get("/v1/models", headers=headers).get_json()["data"]) == 8
    write_models(models_path, [{"name": "only", "provider": "openai", "model": "m", "api_key": "k",
                                "api_base": fake.openai_base_url}])
    _touch_later(models_path)
    assert [m["id"] for m in client.get("/v1/models", headers=headers).get_json()["data"]] == ["only"]
    anthropic_list = client.get("/v1/models", headers={**headers, "anthropic-version": "2023-06-01"}).get_json()
    assert anthropic_list["data"][0]["type"] == "model" and anthropic_list["has_more"] is False
