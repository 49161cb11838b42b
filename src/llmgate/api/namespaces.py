"""The list of REST namespaces, in the order they appear in Swagger UI."""
from __future__ import annotations


def all_namespaces():
    # Imported here, not at module level, so that importing llmgate.api stays cheap.
    from .auth import me_ns, ns as auth_ns
    from .batches import ns as batches_ns
    from .health import ns as health_ns
    from .keys import ns as keys_ns
    from .usage import ns as usage_ns
    from .users import ns as users_ns

    return [health_ns, auth_ns, me_ns, users_ns, keys_ns, usage_ns, batches_ns]
