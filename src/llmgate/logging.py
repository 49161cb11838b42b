"""JSON logs in Logstash's format, a request-id filter, and the optional shared log file.

One JSON object per line with ``@timestamp``, ``@version``, ``message``, ``level``,
``logger_name``, ``host``, ``pid`` and whatever ``extra`` a call adds; the current request id
rides along on every record. ``LLMGATE_LOG_FORMAT=text`` prints one readable line instead.
``LLMGATE_LOG_FILE`` adds a size-rotated file that gunicorn and RQ processes can share
(concurrent-log-handler locks around each write and rotation, and reopens its lock after fork).

Nothing here imports Flask at runtime: gunicorn's master loads this module before it forks
gevent workers, and should import as little as possible before they monkey-patch.
"""
from __future__ import annotations

import contextvars
import functools
import logging
import os
import re
import socket
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from flask import Flask

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmgate_request_id", default=None)

# Attribute names a LogRecord always has; anything else came in through ``extra``.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Never let these reach a log line, whatever a caller passes in ``extra``.
SECRET_FIELDS = frozenset({"password", "token", "access_token", "refresh_token", "api_key", "authorization",
                           "secret", "key", "x-api-key", "cookie"})
_SECRET_SUFFIXES = ("password", "secret", "_token", "api_key", "authorization")
# A safety net for text: API keys, bearer tokens and JWTs that slip into a message or traceback.
_SECRET_TEXT = re.compile(
    r"(?P<keep>sk-(?:lg-|ant-)?|Bearer\s+)[A-Za-z0-9._~+/=\-]{6,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")
REDACTED = "[redacted]"

ROTATE_BYTES = 50 * 1024 * 1024
ROTATE_BACKUPS = 5
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


@functools.lru_cache(maxsize=1024)  # field names repeat; this runs for each field of each line
def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_FIELDS or lowered.endswith(_SECRET_SUFFIXES)


def scrub_text(text: str) -> str:
    """Replace anything that looks like an API key, bearer token or JWT."""
    if "sk-" not in text and "Bearer" not in text and "eyJ" not in text:
        return text  # the common case costs three substring checks, not a regex
    return _SECRET_TEXT.sub(lambda m: (m.group("keep") or "") + REDACTED, text)


class LogstashFormatter(JsonFormatter):
    """Logstash ``json_event`` fields, built with python-json-logger."""

    def __init__(self) -> None:
        super().__init__(json_ensure_ascii=False)
        self._host = socket.gethostname()

    def add_fields(self, log_record, record, message_dict):
        log_record["@timestamp"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        log_record["@version"] = "1"
        # The base class has just set record.message (getMessage() would format it again).
        log_record["message"] = scrub_text(record.__dict__.get("message") or record.getMessage())
        log_record["level"] = record.levelname
        log_record["logger_name"] = record.name
        log_record["host"] = self._host
        log_record["pid"] = record.process
        for name, value in record.__dict__.items():
            if name not in _RESERVED and not name.startswith("_") and value is not None:
                log_record[name] = REDACTED if is_secret_field(name) else value
        # The base class has formatted the traceback into ``exc_info``; Logstash calls it stack_trace.
        trace = message_dict.pop("exc_info", None)
        if trace:
            log_record["stack_trace"] = scrub_text(trace)
        stack = message_dict.pop("stack_info", None)
        if stack:
            log_record["stack_info"] = stack
        log_record.update(message_dict)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (pytest and gunicorn may replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def build_formatter(log_format: str) -> logging.Formatter:
    return LogstashFormatter() if log_format == "json" else TextFormatter()


def build_handlers(*, log_format: str, log_file: str | None) -> list[logging.Handler]:
    formatter = build_formatter(log_format)
    handlers: list[logging.Handler] = [StdoutHandler()]
    if log_file:
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(ConcurrentRotatingFileHandler(
            log_file, maxBytes=ROTATE_BYTES, backupCount=ROTATE_BACKUPS, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
    return handlers


def configure(*, log_format: str = "json", log_file: str | None = None, level: str = "INFO") -> None:
    """Route every logger (ours, gunicorn's, RQ's) through the same handlers, once per process."""
    root = logging.getLogger()
    if getattr(root, "_llmgate_configured", None) == (log_format, log_file, level):
        return
    for handler in list(root.handlers):
        if getattr(handler, "_llmgate", False):
            root.removeHandler(handler)
            handler.close()
    for handler in build_handlers(log_format=log_format, log_file=log_file):
        handler._llmgate = True
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request URLs or bodies at INFO/DEBUG would leak prompts and keys.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic", "urllib3", "werkzeug",
                  "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # RQ gives its loggers their own handlers; let them reach ours instead (one format, one file).
    for name in ("rq.worker", "rq.scheduler", "rq.job", "rq.queue"):
        rq_logger = logging.getLogger(name)
        for handler in list(rq_logger.handlers):
            rq_logger.removeHandler(handler)
        rq_logger.propagate = True
    root._llmgate_configured = (log_format, log_file, level)


def configure_from_env(environ: dict[str, str] | None = None) -> None:
    """The same settings as ``create_app`` reads, for processes that log before building an app."""
    env: Any = environ if environ is not None else os.environ
    configure(log_format=env.get("LLMGATE_LOG_FORMAT") or "json", log_file=env.get("LLMGATE_LOG_FILE") or None,
              level=env.get("LLMGATE_LOG_LEVEL") or "INFO")


def init_app(app: Flask) -> None:
    configure(log_format=app.config["LOG_FORMAT"], log_file=app.config["LOG_FILE"], level=app.config["LOG_LEVEL"])
