"""Jinja filters for numbers, money and times as the dashboard shows them."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint


def money(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value and abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def number(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def percent(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def when(value: datetime | None, tz: str | None = None) -> str:
    if value is None:
        return "—"
    if tz:
        value = value.astimezone(ZoneInfo(tz))
    return value.strftime("%Y-%m-%d %H:%M %Z").strip()


def register(bp: Blueprint) -> None:
    for name, function in (("money", money), ("number", number), ("percent", percent), ("when", when)):
        bp.add_app_template_filter(function, name)
