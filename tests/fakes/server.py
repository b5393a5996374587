"""The machinery every fake provider shares: an aiohttp.web server on a free loopback port that records requests,
validates them as the real API would, answers in the real wire format, and misbehaves on command.

Control API (on every fake): `reply(...)` scripts the next answers; `fail(status, ...)`, `hang()`, `slow(...)`,
`drop(...)`, `malformed()` queue faults for the next requests; `pause_after(n)` holds a stream after n chunks until the
returned event is set; `hold()` holds every request that arrives until the returned event is set. Faults are consumed
one per request, in order, after the request passed validation (a request the real API would reject is rejected first
and consumes nothing). `requests` records what arrived; `disconnects` counts the times the client went away before
the answer was complete; `completed` counts answers sent in full; `in_flight` the requests being answered."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import orjson
from aiohttp import web

from gateway.config.schema import ModelConfig, ProviderConfig

FaultKind = Literal["status", "hang", "slow", "drop", "malformed"]
_ids = itertools.count(1)


class Rejected(Exception):
    """What the real API would answer to a request it refuses."""

    def __init__(self, status: int, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass
class Answer:
    """What the fake answers. Token counts are reported as given; `chunks` is how the text is split in a stream."""

    text: str = "Hello! How can I help you today?"
    chunks: list[str] | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish: str | None = None
    """The wire-native finish reason; by default the format's "stop" (or its tool-call reason when calling tools)."""
    prompt_tokens: int = 13
    completion_tokens: int = 9
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    thoughts_tokens: int = 0
    model: str | None = None
    """The model the fake reports; by default the requested one."""

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


@dataclass
class Fault:
    kind: FaultKind
    status: int = 500
    message: str | None = None
    retry_after: float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    in_stream: bool = False
    """status faults on a stream request: answer 200 and send the error as the format's in-stream error event."""
    after_chunks: int | None = None
    """drop: None drops before any answer; n drops after n stream chunks (or mid-body for a whole answer).
    status with in_stream: the error event comes after n chunks."""
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    peer: tuple[str, int] | None = None
    """The client's address: the same port on two requests means a reused keep-alive connection."""


class FakeProvider:
    """Base of the fakes. Subclasses define routes, validation, answers, stream frames and error bodies."""

    kind: str
    provider_type: ClassVar[str]
    default_model: ClassVar[str]
    sse_line_end: ClassVar[bytes] = b"\n"
    stream_content_type: ClassVar[str] = "text/event-stream"

    def __init__(self, *, api_key: str | None = "test-key-0123456789", models: set[str] | None = None) -> None:
        self.api_key = api_key
        self.models = models
        """Models the fake serves; None serves any name."""
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.answers: deque[Answer] = deque()
        self.default_answer = Answer()
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self.completed = 0
        self.in_flight = 0
        self.chunks_sent = 0
        self._gates: deque[tuple[int, asyncio.Event]] = deque()
        self._held_until: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.number = next(_ids)

    # -- life cycle ------------------------------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def close(self) -> None:
        for _, gate in self._gates:
            gate.set()
        if self._held_until is not None:
            self._held_until.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What a ProviderConfig's base_url should be to reach this fake."""
        return self.origin

    @property
    def key_env(self) -> str:
        """The environment variable provider_config() names for the key; set it to `api_key` (the fixtures do)."""
        return f"FAKE_{self.kind.upper()}_KEY_{self.number}"

    def environment(self) -> dict[str, str | None]:
        """What the fixtures set in the environment for a provider built from provider_config() to authenticate
        (None: unset it)."""
        return {self.key_env: self.api_key} if self.api_key else {}

    def provider_config(self, name: str | None = None, **overrides: Any) -> ProviderConfig:
        fields: dict[str, Any] = {
            "name": name or f"fake-{self.kind}-{self.number}",
            "type": self.provider_type,
            "base_url": self.url,
            "api_key_env": self.key_env if self.api_key else None,
            "timeout_s": 10.0,
            "connect_timeout_s": 2.0,
        }
        fields.update(overrides)
        return ProviderConfig(**fields)

    def model_config(self, name: str | None = None, **overrides: Any) -> ModelConfig:
        fields: dict[str, Any] = {
            "name": name or self.default_model,
            "provider": f"fake-{self.kind}-{self.number}",
            "upstream_model": self.default_model,
        }
        fields.update(overrides)
        return ModelConfig(**fields)

    # -- control API -------------------------------------------------------------------------------------------------

    def reply(self, answer: Answer | str | None = None, *, times: int = 1, **fields: Any) -> None:
        """Scripts the next `times` answers (a str is the text; keyword arguments are Answer fields)."""
        if answer is None:
            answer = Answer(**fields)
        elif isinstance(answer, str):
            answer = Answer(text=answer, **fields)
        self.answers.extend([answer] * times)

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        message: str | None = None,
        retry_after: float | str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        in_stream: bool = False,
        after_chunks: int = 0,
    ) -> None:
        """The next `times` requests get `status` with the format's real error body (or `body`), and Retry-After."""
        fault = Fault(
            "status",
            status=status,
            message=message,
            retry_after=retry_after,
            headers=headers or {},
            body=body,
            in_stream=in_stream,
            after_chunks=after_chunks,
        )
        self.faults.extend([fault] * times)

    def hang(self, *, times: int = 1) -> None:
        """The next requests get no answer at all until the client gives up."""
        self.faults.extend([Fault("hang")] * times)

    def slow(self, *, first_byte_delay: float = 0.0, chunk_delay: float = 0.0, times: int = 1) -> None:
        self.faults.extend([Fault("slow", first_byte_delay=first_byte_delay, chunk_delay=chunk_delay)] * times)

    def drop(self, *, after_chunks: int | None = None, times: int = 1) -> None:
        """Closes the connection: before answering (None) or after `after_chunks` stream chunks."""
        self.faults.extend([Fault("drop", after_chunks=after_chunks)] * times)

    def malformed(self, *, times: int = 1) -> None:
        """A 200 whose JSON body (or, in a stream, whose second event) is cut short."""
        self.faults.extend([Fault("malformed")] * times)

    def pause_after(self, chunks: int) -> asyncio.Event:
        """The next stream sends `chunks` chunks then waits until the returned event is set; -1 waits after the last
        chunk with the body still open (a server that does not end the stream after its end marker)."""
        gate = asyncio.Event()
        self._gates.append((chunks, gate))
        return gate

    def hold(self) -> asyncio.Event:
        """Every request that arrives from now on waits, once it passed validation and before its fault or answer is
        taken, until the returned event is set; `in_flight` counts the waiting ones. Lets a test have a known set of
        calls in flight at once, whatever the machine's speed."""
        self._held_until = asyncio.Event()
        return self._held_until

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.answers.clear()
        self.disconnects = 0
        self.disconnected.clear()
        self.completed = 0

    async def wait_disconnect(self, within: float = 2.0) -> None:
        """Returns once a client went away before its answer was complete; fails after `within` seconds."""
        await asyncio.wait_for(self.disconnected.wait(), within)

    # -- what a subclass defines -------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def validate(self, request: web.Request, recorded: Recorded) -> None:
        """Raises Rejected as the real API would."""
        raise NotImplementedError

    def is_stream(self, request: web.Request, recorded: Recorded) -> bool:
        raise NotImplementedError

    def answer_body(self, answer: Answer, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        raise NotImplementedError

    def stream_frames(self, answer: Answer, request: web.Request, recorded: Recorded) -> list[bytes]:
        raise NotImplementedError

    def error_body(self, status: int, message: str | None, code: str = "") -> dict[str, Any]:
        raise NotImplementedError

    def error_headers(self, status: int, retry_after: float | str | None) -> dict[str, str]:
        return {"retry-after": str(retry_after)} if retry_after is not None else {}

    def answer_headers(self) -> dict[str, str]:
        """Headers of a successful answer, whole or streamed."""
        return {}

    def stream_error_frame(self, status: int, message: str | None) -> bytes:
        raise NotImplementedError

    def malformed_frame(self) -> bytes:
        return self.sse(b'{"choices": [{"delta": {"content": "unterminated')

    # -- helpers for subclasses --------------------------------------------------------------------------------------

    def sse(self, data: bytes | dict[str, Any], event: str | None = None) -> bytes:
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        end = self.sse_line_end
        head = b"event: " + event.encode() + end if event else b""
        return head + b"data: " + payload + end + end

    def requested_model(self, recorded: Recorded) -> str:
        body = recorded.body if isinstance(recorded.body, dict) else {}
        return str(body.get("model") or self.default_model)

    # -- the request handler ---------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            raw=raw,
            peer=request.transport.get_extra_info("peername") if request.transport else None,
        )
        self.requests.append(recorded)
        self.in_flight += 1
        try:
            return await self._respond(request, recorded)
        finally:
            self.in_flight -= 1

    async def _respond(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            _require_json_object(recorded)
            self.validate(request, recorded)
        except Rejected as rejected:
            return self._error(rejected.status, rejected.message, code=rejected.code)
        if self._held_until is not None:
            await self._held_until.wait()
        fault = self.faults.popleft() if self.faults else Fault("slow")
        answer = self.answers.popleft() if self.answers else self.default_answer
        stream = self.is_stream(request, recorded)
        if fault.kind == "hang":
            await self._until_disconnect(request, forever=True)
            return web.Response(status=504)
        if fault.first_byte_delay:
            await asyncio.sleep(fault.first_byte_delay)
        if fault.kind == "drop" and fault.after_chunks is None:
            return self._abort(request)
        if fault.kind == "status" and not (stream and fault.in_stream):
            headers = {**self.error_headers(fault.status, fault.retry_after), **fault.headers}
            if fault.body is not None:
                return web.Response(status=fault.status, body=fault.body, headers=headers)
            return self._error(fault.status, fault.message, headers=headers)
        if not stream:
            if fault.kind == "malformed":
                return web.Response(body=b'{"id": "x", "choices": [{"message": ', content_type="application/json")
            payload = orjson.dumps(self.answer_body(answer, request, recorded))
            if fault.kind == "drop":
                return await self._partial_body(request, payload)
            self.completed += 1
            return web.Response(body=payload, content_type="application/json", headers=self.answer_headers())
        return await self._stream(request, recorded, answer, fault)

    async def _stream(
        self, request: web.Request, recorded: Recorded, answer: Answer, fault: Fault
    ) -> web.StreamResponse:
        frames = self.stream_frames(answer, request, recorded)
        if fault.kind == "malformed":
            frames = [*frames[:1], self.malformed_frame()]
        cut: int | None = None
        if fault.kind == "drop" or (fault.kind == "status" and fault.in_stream):
            cut = min(fault.after_chunks or 0, len(frames))
        gate = self._gates.popleft() if self._gates else None
        response = web.StreamResponse(
            headers={"content-type": self.stream_content_type, "cache-control": "no-cache", **self.answer_headers()}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index, frame in enumerate(frames):
            if cut is not None and index == cut:
                if fault.kind == "drop":
                    return self._abort(request, response)
                frame = self.stream_error_frame(fault.status, fault.message)
                await self._write(request, response, frame)
                await response.write_eof()
                return response
            if gate is not None and index == gate[0] and not await self._hold(request, gate[1]):
                return response
            if fault.chunk_delay and index:
                await asyncio.sleep(fault.chunk_delay)
            if not await self._write(request, response, frame):
                return response
        if cut is not None and fault.kind == "drop":
            return self._abort(request, response)
        if gate is not None and gate[0] == -1 and not await self._hold(request, gate[1]):
            return response
        await response.write_eof()
        self.completed += 1
        return response

    async def _hold(self, request: web.Request, gate: asyncio.Event) -> bool:
        """Waits for the gate; False if the client went away first."""
        waiter = asyncio.ensure_future(gate.wait())
        try:
            return await self._until_disconnect(request, until=waiter)
        finally:
            waiter.cancel()

    async def _write(self, request: web.Request, response: web.StreamResponse, frame: bytes) -> bool:
        transport = request.transport
        if transport is None or transport.is_closing():
            self._saw_disconnect()
            return False
        try:
            await response.write(frame)
        except (ConnectionResetError, ConnectionError):
            self._saw_disconnect()
            return False
        self.chunks_sent += 1
        return True

    async def _until_disconnect(
        self, request: web.Request, *, forever: bool = False, until: asyncio.Future[Any] | None = None
    ) -> bool:
        """Waits for the client to go away (True if `until` completed first)."""
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                self._saw_disconnect()
                return False
            if until is not None and until.done():
                return True
            await asyncio.sleep(0.005)
            if not forever and until is None:
                return True

    def _saw_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnected.set()

    def _abort(self, request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.close()
        return response or web.Response(status=500)

    async def _partial_body(self, request: web.Request, payload: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.content_length = len(payload)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(payload[: len(payload) // 2])
        return self._abort(request, response)

    def _error(
        self, status: int, message: str | None, *, code: str = "", headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            body=orjson.dumps(self.error_body(status, message, code)),
            content_type="application/json",
            headers=headers,
        )


EMBEDDING_DIMENSIONS = 8
"""The length of the fakes' vectors when the request asks for none."""


def fake_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The vector the fakes answer for a text: a function of the text alone, so a test can tell which input a vector
    belongs to (values are multiples of 1/256, exact in float32)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [digest[i % len(digest)] / 256 for i in range(dimensions)]


def _require_json_object(recorded: Recorded) -> None:
    if not isinstance(recorded.body, dict):
        raise Rejected(400, "We could not parse the JSON body of your request.")
