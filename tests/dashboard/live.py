"""A real llmgate server in a thread and a headless Chromium, for the dashboard's browser tests.

Chromium is Debian's (``scripts/install-browser.sh``), driven by Playwright for Python; Playwright's
own browser download is never used. Without /usr/bin/chromium the tests skip, except in CI
(``CI`` set), where they fail: there the browser is part of the contract.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: run scripts/install-browser.sh (as root) for the dashboard's browser tests"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class LiveServer:
    """``app`` served by werkzeug's threaded server on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def launch_chromium() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shoot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ (gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Worker:
    """One ``llmgate worker`` process (batch jobs and the usage drainer) on ``app``'s database,
    Redis, files and models, with settings that make batches move in test time."""

    def __init__(self, app: Any, log_path: Path, settings: dict[str, Any]) -> None:
        import subprocess
        import sys

        config = app.config
        env = {**os.environ, "LLMGATE_ENV": "testing", "LLMGATE_INSTANCE_PATH": config["INSTANCE_PATH"],
               "LLMGATE_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "LLMGATE_REDIS_URL": config["REDIS_URL"],
               "LLMGATE_MODELS_FILE": config["MODELS_FILE"], "LLMGATE_FILES_DIR": config["FILES_DIR"],
               "LLMGATE_SECRET_KEY": config["SECRET_KEY"], "LLMGATE_JWT_SECRET_KEY": config["JWT_SECRET_KEY"],
               "LLMGATE_LOG_LEVEL": "WARNING"}
        env.update({f"LLMGATE_{name}": str(value) for name, value in settings.items()})
        self._log = open(log_path, "wb")
        self.log_path = log_path
        self.proc = subprocess.Popen([sys.executable, "-c", "from llmgate.cli import main; main()", "worker",
                                      "--no-scheduler"], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
