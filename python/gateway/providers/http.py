"""The HTTP machinery every remote provider shares: a pooled aiohttp session, timeouts, JSON, SSE, error mapping.

An adapter subclasses `HttpProvider` and defines only its wire format: how to build the request, how to parse a whole
answer, how to decode its stream events (one stateful `StreamDecoder` per stream), and where its error bodies keep
the message. Everything about sockets, deadlines, cancellation and HTTP status codes lives here, once.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import re
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

import aiohttp
import orjson
from yarl import URL

from gateway.chat import ChatDelta, ChatRequest, ChatResult, ToolCallDelta
from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.embeddings import EmbedRequest, EmbedResult
from gateway.errors import ErrorKind, ProviderError
from gateway.providers.base import Provider, UpstreamCall

# ---------------------------------------------------------------------------------------------------------------------
# Server-sent events


class SSEEvent(NamedTuple):
    """One named event of a stream: an SSE event, or a message of another framing that has a name and a text payload
    (AWS event-stream: `:event-type` and the payload)."""

    event: str
    """The `event:` name; "message" when the server sent none (the SSE default)."""
    data: str
    """The `data:` lines joined with newlines."""


class StreamParser(Protocol):
    """A stream's framing: bytes in as they arrive (split anywhere), complete events out. Raises ValueError when the
    framing itself is broken (the provider's answer is then malformed)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...

    def flush(self) -> list[SSEEvent]:
        """At end of stream: what is left, if the framing allows an unterminated last event."""
        ...


class SSEParser:
    """An incremental parser of text/event-stream (the WHATWG algorithm, minus `id`/`retry`, which no LLM API uses).

    Feed it raw bytes as they arrive; chunk boundaries may fall anywhere, including inside a CRLF or a multi-byte
    UTF-8 character (lines are decoded only once complete). Cost is O(bytes): a partial line is carried, never rescanned
    from the start of the stream.
    """

    __slots__ = ("_data", "_event", "_pending", "_skip_lf")

    def __init__(self) -> None:
        self._pending = b""
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._skip_lf:
            # The previous chunk ended in a bare CR: if this one starts with LF, the pair was one CRLF terminator.
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        buffer = self._pending + chunk if self._pending else chunk
        if not buffer:
            return []
        lines = buffer.splitlines(keepends=True)  # bytes.splitlines splits on \n, \r and \r\n only
        last = lines[-1]
        if last.endswith((b"\n", b"\r")):
            self._pending = b""
            self._skip_lf = last.endswith(b"\r")
        else:
            self._pending = lines.pop()
        events: list[SSEEvent] = []
        for raw in lines:
            self._line(raw.rstrip(b"\r\n").decode("utf-8", "replace"), events)
        return events

    def flush(self) -> list[SSEEvent]:
        """At end of stream: the last event, even if the server did not end it with a blank line (lenient)."""
        events: list[SSEEvent] = []
        if self._pending:
            self._line(self._pending.decode("utf-8", "replace"), events)
            self._pending = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._event = ""
            self._data = []
            return
        if line[0] == ":":
            return  # a comment, e.g. a keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


# ---------------------------------------------------------------------------------------------------------------------
# Error mapping

_KEY_PATTERNS = re.compile(
    r"(?:sk-[A-Za-z0-9_*.\-]{4,}"  # OpenAI / Anthropic style, also masked ones like sk-te****1234
    r"|AIza[0-9A-Za-z_\-]{10,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9_.\-~+/=]{8,}"
    r"|\b(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{40,}\b)"  # any long opaque token
)
MAX_UPSTREAM_MESSAGE = 400
LARGE_BODY = 1 << 20
DRAIN_S = 0.5


def redact_secrets(text: str, secret: str | None = None) -> str:
    """Removes anything that looks like an API key (and the provider's own key verbatim) from upstream text."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = _KEY_PATTERNS.sub("[redacted]", text)
    if len(text) > MAX_UPSTREAM_MESSAGE:
        text = text[: MAX_UPSTREAM_MESSAGE - 1] + "…"
    return text


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str) -> float | None:
    """Go-style durations as OpenAI's x-ratelimit-reset-* headers send them ("1s", "6m0s", "20ms", "1h2m3.5s")."""
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(number) * _DURATION_SCALE[unit] for number, unit in parts)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI, Azure) or `Retry-After` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    status: int,
    upstream_message: str,
    *,
    provider: ProviderConfig,
    retry_after: float | None = None,
    retryable: bool | None = None,
) -> ProviderError:
    """The one map from an upstream HTTP status (or its in-stream equivalent) to a ProviderError.

    `upstream_message` must already be redacted. The pipeline turns an exhausted caller deadline into
    DEADLINE_EXCEEDED itself; a timeout here is the upstream's, so it is UNAVAILABLE and retryable.
    """
    name = provider.name
    said = f": {upstream_message}" if upstream_message else ""
    if status in (400, 413, 422):
        return ProviderError(
            f"provider {name!r} rejected the request (HTTP {status}){said}",
            provider=name,
            http_status=status,
            kind=ErrorKind.INVALID_ARGUMENT,
            reason="UPSTREAM_REJECTED_REQUEST",
            retryable=False,
        )
    if status in (401, 403):
        where = f"the environment variable {provider.api_key_env}" if provider.api_key_env else "its api_key_env"
        return ProviderError(
            f"provider {name!r} refused our credentials (HTTP {status}); check the API key in {where}{said}",
            provider=name,
            http_status=status,
            kind=ErrorKind.FAILED_PRECONDITION,
            reason="PROVIDER_AUTH_FAILED",
            retryable=False,
        )
    if status == 404:
        return ProviderError(
            f"provider {name!r} does not know the model or endpoint (HTTP 404); check upstream_model and base_url"
            f"{said}",
            provider=name,
            http_status=status,
            kind=ErrorKind.FAILED_PRECONDITION,
            reason="UPSTREAM_MODEL_NOT_FOUND",
            retryable=False,
        )
    if status in (408, 504):
        return ProviderError(
            f"provider {name!r} timed out (HTTP {status}){said}",
            provider=name,
            http_status=status,
            reason="UPSTREAM_TIMEOUT",
            retry_after=retry_after,
        )
    if status == 429:
        return ProviderError(
            f"provider {name!r} is rate limiting us (HTTP 429){said}",
            provider=name,
            http_status=status,
            kind=ErrorKind.RESOURCE_EXHAUSTED,
            reason="UPSTREAM_RATE_LIMITED",
            retryable=True if retryable is None else retryable,
            retry_after=retry_after,
        )
    if status >= 500 or status == 409:  # 529: Anthropic overloaded; 409: Anthropic's retryable conflict
        return ProviderError(
            f"provider {name!r} is unavailable (HTTP {status}){said}",
            provider=name,
            http_status=status,
            reason="UPSTREAM_UNAVAILABLE",
            retry_after=retry_after,
        )
    return ProviderError(
        f"provider {name!r} refused the request (HTTP {status}){said}",
        provider=name,
        http_status=status,
        kind=ErrorKind.FAILED_PRECONDITION,
        reason="UPSTREAM_REJECTED_REQUEST",
        retryable=False,
    )


def malformed(provider: str, what: str) -> ProviderError:
    return ProviderError(
        f"provider {provider!r} sent a malformed answer: {what}", provider=provider, reason="UPSTREAM_MALFORMED"
    )


def disconnected(provider: str, what: str) -> ProviderError:
    return ProviderError(
        f"provider {provider!r} dropped the connection {what}", provider=provider, reason="UPSTREAM_DISCONNECTED"
    )


def loads(raw: bytes | str, provider: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed(provider, "the body is not JSON") from None


# ---------------------------------------------------------------------------------------------------------------------
# The generic HTTP provider


@dataclass(slots=True)
class UpstreamRequest:
    """What an adapter sends: the URL, its own headers (auth, versions) and the JSON body."""

    url: str | URL
    """A str is normalised by yarl (which decodes %3A and the like in the path); a URL built with encoded=True is
    sent byte for byte, as a signature over the path needs."""
    headers: dict[str, str]
    body: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    sign: Callable[[bytes], Mapping[str, str]] | None = None
    """Headers proving who sent the request, computed over the exact body bytes sent (AWS SigV4); None for
    providers authenticated by a key in a header."""


class StreamDecoder:
    """Turns one stream's events (SSE, or another framing's, see StreamParser) into deltas; stateful, one per stream.

    `on_event` raises ProviderError for in-stream error events. `finish` is called at the end of the body: it returns
    the last deltas, or raises UPSTREAM_DISCONNECTED when the stream ended before the provider said it was complete.
    """

    done: bool = False

    @abstractmethod
    def on_event(self, event: SSEEvent) -> list[ChatDelta]: ...

    @abstractmethod
    def finish(self) -> list[ChatDelta]: ...


class HttpProvider(Provider):
    """A provider reached over HTTP. Subclasses define the wire format; this class owns the connection pool."""

    request_id_header: ClassVar[str] = ""
    """The response header naming the answer, for providers whose body does not (ChatResult.upstream_id)."""

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        key = config.api_key()
        self._api_key: str | None = key.get_secret_value() if key is not None else None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._base_headers = {"content-type": "application/json", "accept": "application/json", **config.headers}
        # A call without a deadline is bounded by the provider's own timeout: one object for all of them (an
        # aiohttp.ClientTimeout costs ~0.6 µs to build).
        self._default_timeout = aiohttp.ClientTimeout(total=config.timeout_s, sock_connect=config.connect_timeout_s)

    # -- what an adapter defines ---------------------------------------------------------------------------------------

    @abstractmethod
    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        """The provider's HTTP request for this chat request."""

    @abstractmethod
    def parse_response(self, payload: Any, model: ModelConfig) -> ChatResult:
        """A whole answer from the parsed JSON body. KeyError/TypeError/ValueError mean an unknown shape."""

    @abstractmethod
    def stream_decoder(self, request: ChatRequest, model: ModelConfig) -> StreamDecoder:
        """A fresh decoder for one stream."""

    def stream_parser(self) -> StreamParser:
        """A fresh parser of one stream's framing: server-sent events unless the adapter says otherwise."""
        return SSEParser()

    def build_embed_request(self, request: EmbedRequest, model: ModelConfig) -> UpstreamRequest:
        """The provider's HTTP request for a batch of embedding inputs (adapters with `embed_batch` > 0)."""
        raise NotImplementedError

    def parse_embed_response(self, payload: Any, model: ModelConfig) -> EmbedResult:
        """The vectors from the parsed JSON body, in the inputs' order. KeyError/TypeError/ValueError: unknown shape."""
        raise NotImplementedError

    def error_message(self, payload: Any) -> str:
        """The provider's own message from its error body (unredacted; the caller redacts)."""
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
            if isinstance(error, str):
                return error
            if isinstance(payload.get("message"), str):
                return str(payload["message"])
        return ""

    def retry_after(self, headers: Mapping[str, str], payload: Any) -> float | None:
        """How long the provider asks us to wait; adapters add their own headers or body fields."""
        return parse_retry_after(headers)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """A non-2xx answer as a ProviderError. Adapters override to special-case their error bodies."""
        payload = _try_loads(body)
        message = self.error_message(payload) if payload is not None else body[:200].decode("utf-8", "replace")
        return error_for_status(
            status,
            self.redact(message),
            provider=self.config,
            retry_after=self.retry_after(headers, payload),
        )

    # -- shared machinery --------------------------------------------------------------------------------------------

    @property
    def api_key(self) -> str | None:
        return self._api_key

    def require_api_key(self) -> str:
        if self._api_key is None:
            env = self.config.api_key_env
            hint = f"set the environment variable {env}" if env else "set api_key_env in the provider's config"
            raise ProviderError(
                f"provider {self.name!r} has no API key; {hint}",
                provider=self.name,
                kind=ErrorKind.FAILED_PRECONDITION,
                reason="PROVIDER_AUTH_FAILED",
                retryable=False,
            )
        return self._api_key

    def redact(self, text: str) -> str:
        return redact_secrets(text, self._api_key)

    def session(self) -> aiohttp.ClientSession:
        """The provider's pooled session, created on first use inside the running loop (aiohttp binds it there)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self.config.max_connections,
                limit_per_host=self.config.max_connections,
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            # Responses are read as bytes and parsed with orjson; no cookie jar (APIs are stateless, and a jar would
            # leak state between callers sharing this session).
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                auto_decompress=True,
            )
            self._session_loop = loop
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _timeout(self, call: UpstreamCall) -> aiohttp.ClientTimeout:
        if call.timeout_s is None or call.timeout_s >= self.config.timeout_s:
            return self._default_timeout
        return aiohttp.ClientTimeout(total=max(call.timeout_s, 0.001), sock_connect=self.config.connect_timeout_s)

    def _transport_error(self, exc: BaseException, *, started: bool) -> ProviderError:
        name = self.name
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return ProviderError(
                f"could not connect to provider {name!r} within {self.config.connect_timeout_s:g}s",
                provider=name,
                reason="UPSTREAM_CONNECT_FAILED",
            )
        if isinstance(exc, TimeoutError):
            return ProviderError(f"provider {name!r} timed out", provider=name, reason="UPSTREAM_TIMEOUT")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return ProviderError(
                f"could not connect to provider {name!r} at {_public_url(self.config.url)} "
                f"({exc.os_error.strerror or 'refused'})",
                provider=name,
                reason="UPSTREAM_CONNECT_FAILED",
            )
        if isinstance(exc, aiohttp.ClientResponseError | aiohttp.InvalidURL):
            return malformed(name, f"invalid HTTP ({type(exc).__name__})")
        return disconnected(name, "mid-stream" if started else "before answering")

    async def _send(self, upstream: UpstreamRequest, call: UpstreamCall) -> aiohttp.ClientResponse:
        """Sends the request; returns a 2xx response (the caller must release it), or raises the mapped
        ProviderError. A plain coroutine, not a context manager: this runs on every call and an async generator per
        call costs measurably more."""
        base = self._base_headers | call.headers if call.headers else self._base_headers
        headers = base | upstream.headers
        raw = orjson.dumps(upstream.body)
        if upstream.sign is not None:
            headers.update(upstream.sign(raw))
        # aiohttp warns about (and writes in one go) raw bytes over 1 MiB; a stream object is written in parts.
        data: bytes | io.BytesIO = io.BytesIO(raw) if len(raw) > LARGE_BODY else raw
        try:
            response = await self.session().post(
                upstream.url,
                data=data,
                headers=headers,
                params=upstream.params or None,
                timeout=self._timeout(call),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc, started=False) from None
        if response.status >= 300:
            try:
                body = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                body = b""
            finally:
                response.release()
            raise self.map_error(response.status, response.headers, body)
        return response

    async def _whole(self, upstream: UpstreamRequest, call: UpstreamCall) -> tuple[Any, Mapping[str, str]]:
        """The parsed JSON body of a non-streamed answer, and the answer's headers."""
        response = await self._send(upstream, call)
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc, started=True) from None
        finally:
            response.release()
        return loads(body, self.name), response.headers

    async def chat(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> ChatResult:
        payload, headers = await self._whole(self.build_request(request, model, stream=False), call)
        result = self._parse(payload, model)
        if self.request_id_header and not result.upstream_id:
            result.upstream_id = headers.get(self.request_id_header, "")
        return result

    async def embed(self, request: EmbedRequest, model: ModelConfig, call: UpstreamCall) -> EmbedResult:
        if not self.embed_batch:
            return await super().embed(request, model, call)
        payload, _ = await self._whole(self.build_embed_request(request, model), call)
        try:
            result = self.parse_embed_response(payload, model)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise malformed(self.name, f"unexpected embeddings shape ({type(exc).__name__}: {exc})") from None
        if len(result.vectors) != len(request.inputs):
            raise malformed(self.name, f"{len(result.vectors)} vectors for {len(request.inputs)} inputs")
        return result

    def _parse(self, payload: Any, model: ModelConfig) -> ChatResult:
        try:
            return self.parse_response(payload, model)
        except ProviderError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise malformed(self.name, f"unexpected shape ({type(exc).__name__}: {exc})") from None

    def stream(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> AsyncIterator[ChatDelta]:
        # The stream itself, not a generator around it: a layer less for every chunk to pass, and for every open
        # stream to keep.
        return self._stream(None, request, model, call)

    async def _stream(
        self, upstream: UpstreamRequest | None, request: ChatRequest, model: ModelConfig, call: UpstreamCall
    ) -> AsyncIterator[ChatDelta]:
        """The stream of `upstream`, or of the request built from `request` on the first step. Leaving it (also by
        cancellation) releases the response: an unfinished body closes its connection instead of returning it to
        the pool."""
        if upstream is None:
            upstream = self.build_request(request, model, stream=True)
        decoder = self.stream_decoder(request, model)
        parser = self.stream_parser()
        upstream.headers.setdefault("accept", "text/event-stream")
        response = await self._send(upstream, call)
        del upstream  # the request body (the prompt's structure) need not stay as long as the answer
        try:
            if response.content_type == "application/json":
                # A server that ignored stream=true answered whole: pass it on as one final delta.
                try:
                    body = await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise self._transport_error(exc, started=True) from None
                yield _as_delta(self._parse(loads(body, self.name), model))
                return
            content = response.content
            while not decoder.done:
                try:
                    chunk = await content.readany()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise self._transport_error(exc, started=True) from None
                if not chunk:
                    break
                try:
                    events = parser.feed(chunk)
                except ValueError as exc:
                    raise malformed(self.name, f"broken stream framing ({exc})") from None
                for event in events:
                    for delta in self._decode(decoder, event):
                        yield delta
            if decoder.done:
                await _drain(content)
                return
            for event in parser.flush():
                for delta in self._decode(decoder, event):
                    yield delta
            for delta in decoder.finish():
                yield delta
        finally:
            response.release()

    def _decode(self, decoder: StreamDecoder, event: SSEEvent) -> list[ChatDelta]:
        if decoder.done:
            return []
        try:
            return decoder.on_event(event)
        except ProviderError:
            raise
        except orjson.JSONDecodeError:
            raise malformed(self.name, "a stream event is not JSON") from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise malformed(self.name, f"unexpected stream event shape ({type(exc).__name__}: {exc})") from None


async def _drain(content: aiohttp.StreamReader) -> None:
    """Reads what follows the end of a stream (the chunked-encoding trailer, usually already here) so the connection
    can return to the pool; a server that keeps the body open past its own end marker gets its connection closed."""
    try:
        async with asyncio.timeout(DRAIN_S):
            while await content.readany():
                pass
    except (aiohttp.ClientError, TimeoutError):
        pass


def _public_url(url: str) -> str:
    """The URL without user info, in case a base_url carries credentials."""
    try:
        return str(URL(url).with_user(None))
    except (TypeError, ValueError):
        return "its base_url"


def _try_loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _as_delta(result: ChatResult) -> ChatDelta:
    return ChatDelta(
        text=result.text,
        tool_calls=[
            ToolCallDelta(index=i, id=tc.id, name=tc.name, arguments_delta=tc.arguments_json)
            for i, tc in enumerate(result.tool_calls)
        ],
        finish_reason=result.finish_reason,
        usage=result.usage,
        upstream_model=result.upstream_model,
        logprobs=result.logprobs,
    )
