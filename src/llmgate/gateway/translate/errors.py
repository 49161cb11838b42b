"""Provider errors as the client's format shows them, for errors that happen after a stream has started."""
from __future__ import annotations

from llmgate.providers.base import WireFormat
from llmgate.providers.errors import ProviderError
from llmgate.providers.sse import encode_event

_OPENAI_TYPES = {"authentication": "authentication_error", "permission": "permission_error",
                 "not_found": "not_found_error", "bad_request": "invalid_request_error",
                 "context_too_long": "invalid_request_error", "rate_limited": "rate_limit_error",
                 "timeout": "timeout", "connection": "server_error", "upstream_server": "server_error"}
_ANTHROPIC_TYPES = {"authentication": "authentication_error", "permission": "permission_error",
                    "not_found": "not_found_error", "bad_request": "invalid_request_error",
                    "context_too_long": "invalid_request_error", "rate_limited": "rate_limit_error",
                    "timeout": "timeout_error", "connection": "api_error", "upstream_server": "api_error"}


def error_event(err: ProviderError, client_format: WireFormat) -> bytes:
    """An SSE event carrying the error: both official SDKs raise on it mid-stream."""
    if client_format == "anthropic":
        return encode_event({"type": "error", "error": {"type": _ANTHROPIC_TYPES[err.kind], "message": err.message}},
                            event="error")
    return encode_event({"error": {"message": err.message, "type": _OPENAI_TYPES[err.kind], "param": None,
                                   "code": err.kind}})
