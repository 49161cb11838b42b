from tests.fakes.fixtures import fake, fake_server, providers  # noqa: F401  (fixtures)


# === /v1 views, router, catalog and service (helper "gateway") ====================================
# A llmgate app whose models.yaml points at the fake upstream, served on real HTTP so the official
# SDKs can talk to it, and a key to call it with. Backoff and cool-down are shortened for speed.

import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from tests.fakes.upstream import FakeUpstream  # noqa: E402

FAST_ROUTING = {"GATEWAY_MAX_RETRIES": 2, "GATEWAY_BACKOFF_BASE_S": 0.001, "GATEWAY_BACKOFF_MAX_S": 0.005,
                "GATEWAY_RETRY_AFTER_MAX_S": 2.0, "GATEWAY_COOLDOWN_FAILURES": 3, "GATEWAY_COOLDOWN_S": 30.0,
                "GATEWAY_RELOAD_CHECK_S": 0.0}
UNSET_KEY_VARIABLE = "LLMGATE_TEST_NEVER_SET_KEY"


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_models(fake: FakeUpstream) -> list[dict[str, Any]]:
    openai_base, anthropic_base = fake.openai_base_url, fake.base_url
    return [
        {"name": "gpt", "provider": "openai", "model": "up-gpt", "api_base": openai_base, "api_key": "sk-up",
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}, "timeout_s": 5},
        {"name": "claude", "provider": "anthropic", "model": "up-claude", "api_base": anthropic_base,
         "api_key": "sk-ant-up", "timeout_s": 5},
        {"name": "local", "provider": "openai-compatible", "model": "up-local", "api_base": openai_base},
        {"name": "pool", "provider": "openai", "model": "up-pool-a", "api_base": openai_base, "api_key": "k"},
        {"name": "pool", "provider": "openai", "model": "up-pool-b", "api_base": openai_base, "api_key": "k"},
        {"name": "flaky", "provider": "openai", "model": "up-flaky", "api_base": openai_base, "api_key": "k",
         "timeout_s": 5, "fallbacks": ["claude"]},
        {"name": "broken", "provider": "openai", "model": "up-broken", "api_key": "k",
         "api_base": f"http://127.0.0.1:{closed_port()}/v1", "fallbacks": ["gpt"]},
        {"name": "nokey", "provider": "anthropic", "model": "up-nokey", "api_base": anthropic_base,
         "api_key": f"env:{UNSET_KEY_VARIABLE}"},
        {"name": "slow", "provider": "openai", "model": "up-slow", "api_base": openai_base, "api_key": "k",
         "timeout_s": 0.3},
    ]


def write_models(path: Path, models: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return path


@pytest.fixture
def models_path(tmp_path: Path, fake: FakeUpstream) -> Path:
    return write_models(tmp_path / "models.yaml", default_models(fake))


@pytest.fixture
def gateway_app(app, app_factory, models_path: Path):
    """A second app on the test database and Redis (``app`` empties them), reading ``models_path``."""
    return app_factory(MODELS_FILE=str(models_path), **FAST_ROUTING)


class LiveServer:
    def __init__(self, app: Any) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live(gateway_app) -> Iterator[LiveServer]:
    server = LiveServer(gateway_app)
    yield server
    server.stop()


@pytest.fixture
def api_key(make_user, make_key) -> str:
    plaintext, _ = make_key(make_user())
    return plaintext


@pytest.fixture
def openai_client(live: LiveServer, api_key: str):
    import openai

    with openai.OpenAI(base_url=live.url + "/v1", api_key=api_key, max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture
def anthropic_client(live: LiveServer, api_key: str):
    import anthropic

    with anthropic.Anthropic(base_url=live.url, api_key=api_key, max_retries=0, timeout=20) as client:
        yield client
