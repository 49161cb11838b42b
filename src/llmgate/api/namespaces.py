"""The list of REST namespaces, in the order they appear in Swagger UI."""
from __future__ import annotations


def all_namespaces():
    # Imported here, not at module level, so that importing llmgate.api stays cheap.
    from .health import ns as health_ns

    return [health_ns]
