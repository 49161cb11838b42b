"""Raw POSTs through an official (Stainless-generated) SDK client, and the SDK-error → vocabulary mapping.

Both the openai and the anthropic SDK expose ``client.post(path, cast_to=httpx2.Response, ...)``:
with that ``cast_to`` the SDK builds headers/auth and raises its typed errors, but hands back
the untouched ``httpx2.Response`` (unread when streaming) instead of parsing it into models.

**The prepared path** (:class:`Endpoint`). Building that request costs the SDK ~0.3 ms of CPU
on every call (options copied and validated, headers merged from five layers, the URL joined,
an idempotency key drawn, the body serialised) — for a request that, for one deployment and
one path, differs only by its body and timeout. So when a deployment's credentials are a static
key, the SDK builds it **once**: an ``Endpoint`` asks the SDK client for one request through
its public ``with_options(http_client=…)`` and a recording ``httpx2.MockTransport``, and keeps
that request's URL and headers (auth, ``anthropic-version``, the ``x-stainless-*`` set; the
headers that carry the timeout are re-filled per call). Each call then builds an
``httpx2.Request`` from them and sends it through the same ``httpx2.Client`` the SDK client
owns (so pooling, redirects and cookies are the SDK's), and keeps the SDK's error vocabulary:
a non-2xx answer becomes the SDK's own typed error (``_make_status_error_from_response``, what
the SDK raises on its path) and a transport failure its ``APITimeoutError``/``APIConnectionError``,
before :func:`map_sdk_error` — so both paths raise the same ``ProviderError`` with the same cause.
The SDK client stays the owner of auth, base URL and error types; a deployment without a
static key (the SDK may fetch or refresh credentials per call) keeps the SDK's full path.
"""
from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from llmgate.providers.base import RawResult, RawStream, Usage, UsageSniffer
from llmgate.providers.errors import ConnectionFailed, ProviderError, UpstreamTimeout, from_status
from llmgate.providers.sse import split_event_batches

log = logging.getLogger(__name__)


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


# A timeout no real header carries: the headers of the probe request holding it carry the timeout.
_PROBE_TIMEOUT = 1234.5
_PROBE_TEXT = str(_PROBE_TIMEOUT).encode()


def sdk_request(client: Any, path: str, http: httpx2.Client) -> httpx2.Request:
    """The request ``client.post(path, …)`` sends, built by the SDK but not sent anywhere."""
    seen: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200)

    with httpx2.Client(headers=http.headers, transport=httpx2.MockTransport(record)) as probe_http:
        probe = client.with_options(http_client=probe_http)
        probe.post(path, body={}, cast_to=httpx2.Response, options={"timeout": _PROBE_TIMEOUT})
    return seen[0]


class Endpoint:
    """One POST path of one SDK client (see the module's docstring for the prepared path).

    ``http`` is the ``httpx2.Client`` given to the SDK client as ``http_client``; with
    ``prepared=False`` (or no ``http``) every call goes through ``client.post``.
    """

    __slots__ = ("client", "path", "errors", "_http", "_url", "_headers", "_timeout_headers", "_timeouts")

    def __init__(self, client: Any, path: str, errors: SdkErrors, *, http: httpx2.Client | None,
                 prepared: bool = True) -> None:
        self.client = client
        self.path = path
        self.errors = errors
        self._http = http
        self._url: httpx2.URL | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._timeout_headers: tuple[bytes, ...] = ()
        self._timeouts: dict[float, tuple[list[tuple[bytes, bytes]], dict[str, float | None]]] = {}
        if prepared and http is not None:
            try:
                request = sdk_request(client, path, http)
            except Exception as err:  # noqa: BLE001 — the SDK's own path still works (and raises) per call
                log.warning("calling %s through the SDK's full path: could not prepare its request (%s: %s)",
                            path, type(err).__name__, err)
                return
            raw = request.headers.raw
            self._url = request.url
            self._timeout_headers = tuple(name for name, value in raw if value == _PROBE_TEXT)
            self._headers = [(name, value) for name, value in raw
                             if value != _PROBE_TEXT and name.lower() != b"content-length"]

    @property
    def prepared(self) -> bool:
        return self._url is not None

    def post(self, body: dict[str, Any], *, stream: bool, timeout: float) -> httpx2.Response:
        if self._url is None or self._http is None:
            return post(self.client, self.path, body, stream=stream, timeout=timeout, errors=self.errors)
        headers, timeouts = self._for_timeout(timeout)
        # What the SDK sends (its openapi_dumps): compact, UTF-8, no NaN.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        request = httpx2.Request("POST", self._url, headers=headers, content=content,
                                 extensions={"timeout": timeouts})
        try:
            response = self._http.send(request, stream=stream)
            if not response.is_success:
                if not response.is_closed:
                    response.read()  # the SDK reads a streamed error body before raising
                status_error = self.client._make_status_error_from_response(response)  # pylint: disable=protected-access
                raise map_sdk_error(status_error, self.errors) from status_error
        except httpx2.TimeoutException as err:
            sdk_error = self.errors.timeout(request=request)
            sdk_error.__cause__ = err
            raise map_sdk_error(sdk_error, self.errors) from sdk_error
        except (httpx2.RequestError, ssl.SSLError) as err:  # the transport failures the SDKs wrap
            sdk_error = self.errors.connection(request=request)
            sdk_error.__cause__ = err
            raise map_sdk_error(sdk_error, self.errors) from sdk_error
        return response

    def _for_timeout(self, timeout: float) -> tuple[list[tuple[bytes, bytes]], dict[str, float | None]]:
        found = self._timeouts.get(timeout)
        if found is None:
            text = str(timeout).encode()
            found = (self._headers + [(name, text) for name in self._timeout_headers],
                     httpx2.Timeout(timeout).as_dict())
            if len(self._timeouts) < 64:  # per-request timeouts come from clients: keep a few
                self._timeouts[timeout] = found
        return found


def post_json(client: Any, path: str, body: dict[str, Any], *, timeout: float | None, errors: SdkErrors,
              read_usage: Callable[[bytes], Usage]) -> RawResult:
    response = post(client, path, body, stream=False, timeout=timeout, errors=errors)
    return raw_result(response, read_usage)


def post_stream(client: Any, path: str, body: dict[str, Any], *, timeout: float | None, errors: SdkErrors,
                sniffer: UsageSniffer) -> RawStream:
    response = post(client, path, body, stream=True, timeout=timeout, errors=errors)
    return raw_stream(response, sniffer)


def raw_result(response: httpx2.Response, read_usage: Callable[[bytes], Usage]) -> RawResult:
    content = response.content
    return RawResult(status=response.status_code, body=content, usage=read_usage(content),
                     content_type=response.headers.get("content-type", "application/json"))


def raw_stream(response: httpx2.Response, sniffer: UsageSniffer) -> RawStream:
    return RawStream(_events(response), sniffer=sniffer, close=response.close, status=response.status_code)


def _events(response: httpx2.Response) -> Iterator[list[bytes]]:
    try:
        yield from split_event_batches(response.iter_bytes())
    except httpx2.TimeoutException as err:
        raise UpstreamTimeout(f"upstream stream stalled: {err}") from err
    except httpx2.StreamClosed:
        return  # we closed it ourselves (client went away)
    except httpx2.TransportError as err:
        raise ConnectionFailed(f"upstream stream broke: {type(err).__name__}: {err}") from err
    finally:
        response.close()
