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
headers that carry the timeout are re-filled per call) as one request head. Each call then sends
that head and its body over a keep-alive connection of ``origin.Origin`` (the standard library's
``http.client`` reads the answer: ~80 µs of CPU a call where ``httpx2.Client.send`` takes ~270),
and keeps the SDK's error vocabulary: a non-2xx answer becomes the SDK's own typed error
(``_make_status_error_from_response``, what the SDK raises on its path) and a transport failure
its ``APITimeoutError``/``APIConnectionError``, before :func:`map_sdk_error` — so both paths
raise the same ``ProviderError`` with the same cause (tests/providers/test_prepared.py).
The SDK client stays the owner of auth, base URL and error types; a deployment without a
static key (the SDK may fetch or refresh credentials per call), or behind an environment proxy,
keeps the SDK's full path.
"""
from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from llmgate.providers.base import RawResult, RawStream, Usage, UsageSniffer
from llmgate.providers.errors import ConnectionFailed, ProviderError, UpstreamTimeout, from_status
from llmgate.providers.http import SocketOption
from llmgate.providers.origin import Origin, Reply
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

    ``http`` is the ``httpx2.Client`` given to the SDK client as ``http_client`` (its headers go
    into the prepared request; None behind an environment proxy); with ``prepared=False`` (or no
    ``http``) every call goes through ``client.post``. ``socket_options`` are the prepared path's
    (the SDK's client has its own).
    """

    __slots__ = ("client", "path", "errors", "_url", "_origin", "_head", "_timeout_headers", "_heads")

    def __init__(self, client: Any, path: str, errors: SdkErrors, *, http: httpx2.Client | None,
                 prepared: bool = True, socket_options: Iterable[SocketOption] | None = None) -> None:
        self.client = client
        self.path = path
        self.errors = errors
        self._url: httpx2.URL | None = None
        self._origin: Origin | None = None
        self._head = b""
        self._timeout_headers: tuple[bytes, ...] = ()
        self._heads: dict[float, bytes] = {}
        if prepared and http is not None:
            try:
                request = sdk_request(client, path, http)
                origin = Origin(request.url, socket_options=socket_options)
            except Exception as err:  # noqa: BLE001 — the SDK's own path still works (and raises) per call
                log.warning("calling %s through the SDK's full path: could not prepare its request (%s: %s)",
                            path, type(err).__name__, err)
                return
            raw = request.headers.raw
            self._url, self._origin = request.url, origin
            self._timeout_headers = tuple(name for name, value in raw if value == _PROBE_TEXT)
            self._head = b"POST %s HTTP/1.1\r\n%s" % (request.url.raw_path, b"".join(
                b"%s: %s\r\n" % (name, value) for name, value in raw
                if value != _PROBE_TEXT and name.lower() != b"content-length"))

    @property
    def prepared(self) -> bool:
        return self._origin is not None

    def post(self, body: dict[str, Any], *, stream: bool, timeout: float) -> httpx2.Response | Reply:
        if self._origin is None:
            return post(self.client, self.path, body, stream=stream, timeout=timeout, errors=self.errors)
        # What the SDK sends (its openapi_dumps): compact, UTF-8, no NaN.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        head = self._for_timeout(timeout)
        try:
            response = self._origin.exchange(head, content, timeout)
            if not response.is_success:
                # The SDK's own error for this answer, as its path raises it (reads the body first).
                request = httpx2.Request("POST", self._url, content=content)
                status_error = self.client._make_status_error_from_response(  # pylint: disable=protected-access
                    response.httpx_response(request))
                raise map_sdk_error(status_error, self.errors) from status_error
            if not stream:
                response.read()
        except httpx2.TimeoutException as err:
            sdk_error = self.errors.timeout(request=httpx2.Request("POST", self._url))
            sdk_error.__cause__ = err
            raise map_sdk_error(sdk_error, self.errors) from sdk_error
        except (httpx2.RequestError, ssl.SSLError) as err:  # the transport failures the SDKs wrap
            sdk_error = self.errors.connection(request=httpx2.Request("POST", self._url))
            sdk_error.__cause__ = err
            raise map_sdk_error(sdk_error, self.errors) from sdk_error
        return response

    def _for_timeout(self, timeout: float) -> bytes:
        """The request head for this timeout (the SDKs send it in a header)."""
        head = self._heads.get(timeout)
        if head is None:
            text = str(timeout).encode()
            head = self._head + b"".join(b"%s: %s\r\n" % (name, text) for name in self._timeout_headers)
            if len(self._heads) < 64:  # per-request timeouts come from clients: keep a few
                self._heads[timeout] = head
        return head

    def close(self) -> None:
        if self._origin is not None:
            self._origin.close()


def post_json(client: Any, path: str, body: dict[str, Any], *, timeout: float | None, errors: SdkErrors,
              read_usage: Callable[[bytes], Usage]) -> RawResult:
    response = post(client, path, body, stream=False, timeout=timeout, errors=errors)
    return raw_result(response, read_usage)


def post_stream(client: Any, path: str, body: dict[str, Any], *, timeout: float | None, errors: SdkErrors,
                sniffer: UsageSniffer) -> RawStream:
    response = post(client, path, body, stream=True, timeout=timeout, errors=errors)
    return raw_stream(response, sniffer)


def raw_result(response: httpx2.Response | Reply, read_usage: Callable[[bytes], Usage]) -> RawResult:
    content = response.content
    return RawResult(status=response.status_code, body=content, usage=read_usage(content),
                     content_type=response.headers.get("content-type", "application/json"))


def raw_stream(response: httpx2.Response | Reply, sniffer: UsageSniffer) -> RawStream:
    return RawStream(_events(response), sniffer=sniffer, close=response.close, status=response.status_code)


def _events(response: httpx2.Response | Reply) -> Iterator[list[bytes]]:
    try:
        yield from split_event_batches(response.iter_bytes())
    except httpx2.TimeoutException as err:
        raise UpstreamTimeout(f"upstream stream stalled: {err}") from err
    except httpx2.StreamClosed:
        return  # we closed it ourselves (client went away)
    except (httpx2.TransportError, httpx2.DecodingError) as err:
        raise ConnectionFailed(f"upstream stream broke: {type(err).__name__}: {err}") from err
    finally:
        response.close()
