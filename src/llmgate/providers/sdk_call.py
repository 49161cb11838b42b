"""Raw POSTs through an official (Stainless-generated) SDK client, and the SDK-error → vocabulary mapping.

Both the openai and the anthropic SDK expose ``client.post(path, cast_to=httpx2.Response, ...)``:
with that ``cast_to`` the SDK builds headers/auth and raises its typed errors, but hands back
the untouched ``httpx2.Response`` (unread when streaming) instead of parsing it into models.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from llmgate.providers.base import RawResult, RawStream, Usage, UsageSniffer
from llmgate.providers.errors import ConnectionFailed, ProviderError, UpstreamTimeout, from_status
from llmgate.providers.sse import split_events


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """The exception classes of one SDK that carry an upstream failure."""

    status: type[Exception]      # APIStatusError: has .status_code and .response
    timeout: type[Exception]     # APITimeoutError (a subclass of the connection error in both SDKs)
    connection: type[Exception]  # APIConnectionError
    base: type[Exception]        # OpenAIError / AnthropicError


def map_sdk_error(err: Exception, errors: SdkErrors) -> ProviderError:
    if isinstance(err, errors.status):
        response: httpx2.Response = err.response  # type: ignore[attr-defined]
        return from_status(response.status_code, body=_error_body(response), headers=response.headers)
    if isinstance(err, errors.timeout):
        return UpstreamTimeout(f"upstream timed out: {err}")
    if isinstance(err, errors.connection):
        cause = err.__cause__ or err
        return ConnectionFailed(f"could not reach upstream: {type(cause).__name__}: {cause}")
    return ConnectionFailed(f"upstream call failed: {type(err).__name__}: {err}")


def _error_body(response: httpx2.Response) -> Any:
    # The SDK has read the body before raising; keep the whole upstream body, not the SDK's slice.
    try:
        text = response.text
    except httpx2.HTTPError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text or None


def post(client: Any, path: str, body: dict[str, Any], *, stream: bool, timeout: float | None,
         errors: SdkErrors) -> httpx2.Response:
    options = {"timeout": timeout} if timeout is not None else {}
    try:
        return client.post(path, body=body, cast_to=httpx2.Response, stream=stream, options=options)
    except errors.base as err:
        raise map_sdk_error(err, errors) from err


def post_json(client: Any, path: str, body: dict[str, Any], *, timeout: float | None, errors: SdkErrors,
              read_usage: Callable[[bytes], Usage]) -> RawResult:
    response = post(client, path, body, stream=False, timeout=timeout, errors=errors)
    content = response.content
    return RawResult(status=response.status_code, body=content, usage=read_usage(content),
                     content_type=response.headers.get("content-type", "application/json"))


def post_stream(client: Any, path: str, body: dict[str, Any], *, timeout: float | None, errors: SdkErrors,
                sniffer: UsageSniffer) -> RawStream:
    response = post(client, path, body, stream=True, timeout=timeout, errors=errors)
    return RawStream(_events(response), sniffer=sniffer, close=response.close, status=response.status_code)


def _events(response: httpx2.Response) -> Iterator[bytes]:
    try:
        yield from split_events(response.iter_bytes())
    except httpx2.TimeoutException as err:
        raise UpstreamTimeout(f"upstream stream stalled: {err}") from err
    except httpx2.StreamClosed:
        return  # we closed it ourselves (client went away)
    except httpx2.TransportError as err:
        raise ConnectionFailed(f"upstream stream broke: {type(err).__name__}: {err}") from err
    finally:
        response.close()
