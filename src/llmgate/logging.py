"""JSON logs in Logstash's format, a request-id filter, and the optional shared log file.

One JSON object per line with ``@timestamp``, ``@version``, ``message``, ``level``,
``logger_name`` and whatever ``extra`` a call adds; the current request id rides along on
every record. ``LLMGATE_LOG_FILE`` adds a size-rotated file that gunicorn and RQ processes
can share (concurrent-log-handler locks around each write and rotation).
"""
from __future__ import annotations

import contextvars
import logging
import os
import socket
import sys
from datetime import datetime, timezone

from flask import Flask
from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmgate_request_id", default=None)

# Attribute names a LogRecord always has; anything else came in through ``extra``.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Never let these reach a log line, whatever a caller passes in ``extra``.
SECRET_FIELDS = frozenset({"password", "token", "access_token", "refresh_token", "api_key", "authorization",
                           "secret", "key"})


class LogstashFormatter(JsonFormatter):
    """Logstash ``json_event`` fields, built with python-json-logger."""

    def __init__(self) -> None:
        super().__init__(json_ensure_ascii=False)
        self._host = socket.gethostname()

    def add_fields(self, log_record, record, message_dict):
        log_record["@timestamp"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        log_record["@version"] = "1"
        log_record["message"] = record.getMessage()
        log_record["level"] = record.levelname
        log_record["logger_name"] = record.name
        log_record["host"] = self._host
        log_record["pid"] = record.process
        for name, value in record.__dict__.items():
            if name not in _RESERVED and not name.startswith("_"):
                log_record[name] = "[redacted]" if name.lower() in SECRET_FIELDS else value
        if record.exc_info:
            log_record["stack_trace"] = self.formatException(record.exc_info)
        log_record.update(message_dict)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def build_handlers(*, log_format: str, log_file: str | None) -> list[logging.Handler]:
    formatter: logging.Formatter = (
        LogstashFormatter() if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file:
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(ConcurrentRotatingFileHandler(log_file, maxBytes=50 * 1024 * 1024, backupCount=5))
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
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._llmgate_configured = (log_format, log_file, level)


def init_app(app: Flask) -> None:
    configure(log_format=app.config["LOG_FORMAT"], log_file=app.config["LOG_FILE"], level=app.config["LOG_LEVEL"])
