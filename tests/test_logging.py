"""JSON access logs, request ids, secrets kept out, text format, and the shared rotating file.

The access line is written when the server closes the response (as every WSGI server does);
the test client closes it when asked for a buffered response.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest
from flask import Blueprint, g

from llmgate.auth.principal import Principal
from llmgate.logging import configure

SECRET_KEY_VALUE = "sk-lg-supersecret0123456789"
SECRET_HEADER_VALUE = "sk-lg-othersecret9876543210"


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def access_lines(text: str) -> list[dict]:
    return [line for line in json_lines(text) if line["logger_name"] == "llmgate.access"]


@pytest.fixture
def logging_app(app_factory):
    app = app_factory(LOG_LEVEL="INFO")
    bp = Blueprint("logtest", __name__)

    @bp.get("/logtest/as-user")
    def as_user():
        g.principal = Principal(user_id=7, email="u@example.com", role="member", key_id=9, key_prefix="sk-lg-abcd")
        return {"ok": True}

    app.register_blueprint(bp)
    yield app
    configure(log_format="json", log_file=None, level="WARNING")  # what the other tests' apps use


def test_access_line_is_logstash_json_with_request_fields(logging_app, capsys):
    capsys.readouterr()
    response = logging_app.test_client().get("/logtest/as-user", headers={"X-Request-ID": "req-123"}, buffered=True)
    assert response.status_code == 200
    [line] = access_lines(capsys.readouterr().out)
    assert line["@version"] == "1" and line["@timestamp"].endswith("Z")
    assert line["level"] == "INFO" and line["logger_name"] == "llmgate.access"
    assert line["message"].startswith("GET /logtest/as-user 200")
    assert line["request_id"] == "req-123"
    assert (line["method"], line["path"], line["route"], line["status"]) == ("GET", "/logtest/as-user",
                                                                               "/logtest/as-user", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert (line["user_id"], line["key_id"]) == (7, 9)


def test_request_id_is_kept_or_generated_and_returned(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc.DEF-42"}).headers["x-request-id"] == "abc.DEF-42"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32 and generated != client.get("/healthz").headers["x-request-id"]
    # Ids that could forge log lines or headers are replaced, not echoed.
    for bad in ("a b", "x" * 200, "id\u00e9"):
        assert client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"] != bad


def test_request_id_rides_on_every_record_of_the_request(logging_app, capsys):
    bp = Blueprint("logtest2", __name__)

    @bp.get("/logtest/warn")
    def warn():
        logging.getLogger("llmgate.test").warning("inside the request")
        return {"ok": True}

    logging_app.register_blueprint(bp)
    capsys.readouterr()
    logging_app.test_client().get("/logtest/warn", headers={"X-Request-ID": "rid-9"})
    lines = json_lines(capsys.readouterr().out)
    inside = [line for line in lines if line["message"] == "inside the request"]
    assert inside and inside[0]["request_id"] == "rid-9"


def test_no_secret_reaches_the_logs(logging_app, capsys):
    capsys.readouterr()
    logging_app.test_client().get(
        f"/healthz?api_key={SECRET_KEY_VALUE}&token=t0ps3cret-token&limit=5",
        headers={"Authorization": f"Bearer {SECRET_KEY_VALUE}", "x-api-key": SECRET_HEADER_VALUE}, buffered=True)
    log = logging.getLogger("llmgate.test")
    log.warning("calling upstream with Bearer %s", SECRET_KEY_VALUE, extra={"password": "hunter2-pw",
                                                                              "api_key": SECRET_HEADER_VALUE})
    try:
        raise RuntimeError(f"bad key {SECRET_HEADER_VALUE}")
    except RuntimeError:
        log.exception("failed")
    out = capsys.readouterr().out
    for secret in (SECRET_KEY_VALUE, SECRET_HEADER_VALUE, "t0ps3cret-token", "hunter2-pw"):
        assert secret not in out
    [line] = access_lines(out)
    assert line["query"] == "api_key=[redacted]&token=[redacted]&limit=5"
    failed = [line for line in json_lines(out) if line["message"] == "failed"][0]
    assert "RuntimeError" in failed["stack_trace"] and "exc_info" not in failed


def test_text_format_for_humans(app_factory, capsys):
    app = app_factory(LOG_FORMAT="text", LOG_LEVEL="INFO")
    try:
        capsys.readouterr()
        app.test_client().get("/healthz", headers={"X-Request-ID": "human-1"}, buffered=True)
        out = capsys.readouterr().out
        line = [line for line in out.splitlines() if "llmgate.access" in line][0]
        assert not line.startswith("{") and "[human-1]" in line and "GET /healthz 200" in line
    finally:
        configure(log_format="json", log_file=None, level="WARNING")


WRITER = textwrap.dedent("""
    import logging, sys
    import llmgate.logging as llog
    llog.ROTATE_BYTES = 40_000  # small, so that both writers go through several rotations
    llog.configure(log_format="json", log_file=sys.argv[1], level="INFO")
    log = logging.getLogger("writer")
    for i in range(400):
        log.info("line", extra={"writer": sys.argv[2], "seq": i, "padding": "x" * 100})
""")


@pytest.mark.once
def test_rotating_file_shared_by_two_processes(tmp_path):
    log_file = tmp_path / "logs" / "llmgate.log"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(log_file), name], stdout=subprocess.DEVNULL)
               for name in ("a", "b")]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    files = sorted(log_file.parent.glob("llmgate.log*"))
    assert len(files) > 2, "expected rotated files"
    seen = set()
    for path in files:
        for text in path.read_text().splitlines():
            record = json.loads(text)  # every line whole: no interleaved writes
            seen.add((record["writer"], record["seq"]))
    # backupCount keeps the newest files only; what is kept must be whole and from both writers.
    assert {writer for writer, _ in seen} == {"a", "b"}
    assert len(seen) == sum(1 for path in files for _ in path.read_text().splitlines())
