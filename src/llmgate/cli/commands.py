"""Every command group added to ``llmgate``; one module per group."""
from __future__ import annotations


def all_commands():
    return []
