"""The behaviour every HTTP provider adapter owes the pipeline, checked against its fake.

Each tests/providers/test_<provider>.py subclasses `ProviderContract`, supplying the `fake` fixture and a few facts
about its wire format; pytest then runs every test below for that adapter. Wire-specific checks (request shapes,
multi-modal parts, tools, response formats) live in the subclasses' own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from gateway.chat import ChatDelta
from gateway.config.schema import ModelConfig
from gateway.errors import ErrorKind, ProviderError
from gateway.providers.base import UpstreamCall
from gateway.providers.http import HttpProvider
from tests.fakes import FakeProvider
from tests.providers.samples import assemble, hello

CALL = UpstreamCall(request_id="req-1")


async def _collect_until_error(stream: AsyncIterator[ChatDelta]) -> tuple[list[str], ProviderError]:
    """The texts received before the stream failed, and its error (the test fails if the stream ends cleanly)."""
    received: list[str] = []
    try:
        async for delta in stream:
            received.append(delta.text)  # noqa: PERF401 - the point is to keep what came before the error
    except ProviderError as error:
        return received, error
    raise AssertionError(f"the stream ended without an error after {received}")


def _error(exc_info: pytest.ExceptionInfo[ProviderError]) -> ProviderError:
    return exc_info.value


class ProviderContract:
    adapter: ClassVar[type[HttpProvider]]
    overloaded_status: ClassVar[int] = 503
    frames_before_text: ClassVar[int] = 1
    """Stream frames the fake sends before the first one with text."""

    @pytest.fixture
    def fake(self) -> FakeProvider:
        raise NotImplementedError

    @pytest.fixture
    async def provider(self, fake: FakeProvider) -> Any:
        provider = self.adapter(fake.provider_config())
        yield provider
        await provider.aclose()

    @pytest.fixture
    def model(self, fake: FakeProvider) -> ModelConfig:
        return fake.model_config()

    def make_model_unknown(self, fake: FakeProvider) -> None:
        fake.models = {"some-other-model"}

    # -- whole answers -----------------------------------------------------------------------------------------------

    async def test_chat_plain(self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig) -> None:
        result = await provider.chat(hello(), model, CALL)
        assert result.text == fake.default_answer.text
        assert result.finish_reason == "stop"
        assert result.upstream_id
        assert result.upstream_model
        assert result.usage is not None
        assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (13, 9)
        assert len(fake.requests) == 1

    async def test_usage_with_cached_tokens(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.reply("Cached.", prompt_tokens=120, cached_tokens=100, completion_tokens=3)
        result = await provider.chat(hello(), model, CALL)
        assert result.usage is not None
        assert result.usage.prompt_tokens == 120
        assert result.usage.cached_prompt_tokens == 100
        assert result.usage.completion_tokens == 3

    async def test_keep_alive_reuses_the_connection(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        await provider.chat(hello(), model, CALL)
        await assemble(provider.stream(hello(), model, CALL))
        await provider.chat(hello(), model, CALL)
        peers = {r.peer for r in fake.requests}
        assert len(peers) == 1, peers

    # -- streams -----------------------------------------------------------------------------------------------------

    async def test_stream_delivers_text_before_the_rest_is_sent(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        gate = fake.pause_after(self.frames_before_text + 1)
        stream = provider.stream(hello(), model, CALL)
        first = await asyncio.wait_for(anext(stream), 2)
        assert first.text == "Hello!"
        assert fake.completed == 0  # the fake is still holding the rest of the answer
        gate.set()
        rest = await assemble(stream)
        assert first.text + rest.text == fake.default_answer.text
        assert rest.finish_reason == "stop"
        assert rest.usage is not None
        assert (rest.usage.prompt_tokens, rest.usage.completion_tokens) == (13, 9)
        assert fake.completed == 1

    async def test_stream_slow_chunks_arrive_one_by_one(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.slow(chunk_delay=0.02)
        out = await assemble(provider.stream(hello(), model, CALL))
        assert out.text == fake.default_answer.text
        assert out.deltas == len(fake.default_answer.pieces()) + 1  # one per text chunk, plus the final one

    async def test_stream_usage_with_cached_tokens(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.reply("Cached.", prompt_tokens=120, cached_tokens=100, completion_tokens=3)
        out = await assemble(provider.stream(hello(), model, CALL))
        assert out.usage is not None
        assert (out.usage.prompt_tokens, out.usage.cached_prompt_tokens, out.usage.completion_tokens) == (120, 100, 3)
        assert out.upstream_model

    # -- errors: HTTP statuses ---------------------------------------------------------------------------------------

    @pytest.mark.parametrize("streaming", [False, True])
    @pytest.mark.parametrize(
        ("status", "code", "reason", "retryable"),
        [
            (400, ErrorKind.INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST", False),
            (401, ErrorKind.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED", False),
            (403, ErrorKind.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED", False),
            (404, ErrorKind.FAILED_PRECONDITION, "UPSTREAM_MODEL_NOT_FOUND", False),
            (429, ErrorKind.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED", True),
            (500, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
            (502, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
            (0, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),  # 0: the provider's "overloaded"
            (504, ErrorKind.UNAVAILABLE, "UPSTREAM_TIMEOUT", True),
        ],
    )
    async def test_http_error_statuses(
        self,
        fake: FakeProvider,
        provider: HttpProvider,
        model: ModelConfig,
        streaming: bool,
        status: int,
        code: ErrorKind,
        reason: str,
        retryable: bool,
    ) -> None:
        status = status or self.overloaded_status
        fake.fail(status, message=f"fake says {status}")
        with pytest.raises(ProviderError) as caught:
            await self._run(provider, model, streaming)
        error = _error(caught)
        assert (error.kind, error.reason, error.retryable, error.http_status) == (code, reason, retryable, status)
        assert f"fake says {status}" in error.message
        assert provider.api_key is None or provider.api_key not in error.message

    @pytest.mark.parametrize("streaming", [False, True])
    async def test_rate_limit_carries_retry_after(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig, streaming: bool
    ) -> None:
        fake.fail(429, retry_after=7)
        with pytest.raises(ProviderError) as caught:
            await self._run(provider, model, streaming)
        assert caught.value.kind == ErrorKind.RESOURCE_EXHAUSTED
        assert caught.value.retry_after == pytest.approx(7)

    async def test_wrong_key_is_an_auth_failure_without_the_key(
        self, fake: FakeProvider, model: ModelConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wrong = "sk-wrong-" + "9" * 32
        monkeypatch.setenv(fake.key_env, wrong)
        provider = self.adapter(fake.provider_config())
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.chat(hello(), model, CALL)
        finally:
            await provider.aclose()
        error = caught.value
        assert (error.kind, error.reason, error.retryable) == (
            ErrorKind.FAILED_PRECONDITION,
            "PROVIDER_AUTH_FAILED",
            False,
        )
        assert fake.key_env in error.message
        assert wrong not in error.message
        assert "9999" not in error.message  # not even the tail a provider echoes back

    async def test_missing_key_fails_before_sending(
        self, fake: FakeProvider, model: ModelConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(fake.key_env)
        provider = self.adapter(fake.provider_config())
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), model, CALL)
        assert caught.value.reason == "PROVIDER_AUTH_FAILED"
        assert fake.key_env in caught.value.message
        assert fake.requests == []

    async def test_unknown_model_is_not_found(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        self.make_model_unknown(fake)
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), model, CALL)
        assert (caught.value.kind, caught.value.reason) == (
            ErrorKind.FAILED_PRECONDITION,
            "UPSTREAM_MODEL_NOT_FOUND",
        )

    # -- errors: malformed answers, dropped connections, timeouts -----------------------------------------------------

    @pytest.mark.parametrize("streaming", [False, True])
    async def test_malformed_answer(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig, streaming: bool
    ) -> None:
        fake.malformed()
        with pytest.raises(ProviderError) as caught:
            await self._run(provider, model, streaming)
        assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
            ErrorKind.UNAVAILABLE,
            "UPSTREAM_MALFORMED",
            True,
        )

    async def test_unknown_json_shape_is_malformed(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.fail(200, body=b'{"unexpected": true}')
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), model, CALL)
        assert caught.value.reason == "UPSTREAM_MALFORMED"

    @pytest.mark.parametrize("streaming", [False, True])
    async def test_dropped_before_answering(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig, streaming: bool
    ) -> None:
        fake.drop()
        with pytest.raises(ProviderError) as caught:
            await self._run(provider, model, streaming)
        assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
            ErrorKind.UNAVAILABLE,
            "UPSTREAM_DISCONNECTED",
            True,
        )

    async def test_dropped_mid_body(self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig) -> None:
        fake.drop(after_chunks=1)
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), model, CALL)
        assert caught.value.reason == "UPSTREAM_DISCONNECTED"

    async def test_dropped_mid_stream(self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig) -> None:
        fake.drop(after_chunks=self.frames_before_text + 2)
        received, error = await _collect_until_error(provider.stream(hello(), model, CALL))
        assert error.reason == "UPSTREAM_DISCONNECTED"
        assert error.kind == ErrorKind.UNAVAILABLE
        assert "".join(received) == "Hello! How"

    @pytest.mark.parametrize("streaming", [False, True])
    async def test_upstream_timeout(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig, streaming: bool
    ) -> None:
        fake.hang()
        with pytest.raises(ProviderError) as caught:
            await self._run(provider, model, streaming, UpstreamCall(request_id="r", timeout_s=0.3))
        assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
            ErrorKind.UNAVAILABLE,
            "UPSTREAM_TIMEOUT",
            True,
        )
        await fake.wait_disconnect()

    async def test_stalled_stream_times_out(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.pause_after(self.frames_before_text + 1)  # never released
        received, error = await _collect_until_error(
            provider.stream(hello(), model, UpstreamCall(request_id="r", timeout_s=0.4))
        )
        assert error.reason == "UPSTREAM_TIMEOUT"
        assert received == ["Hello!"]
        await fake.wait_disconnect()

    async def test_connection_refused(self, fake: FakeProvider, model: ModelConfig) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = fake.url.replace(f":{fake.port}", f":{port}")
        provider = self.adapter(fake.provider_config(base_url=url))
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.chat(hello(), model, CALL)
        finally:
            await provider.aclose()
        assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
            ErrorKind.UNAVAILABLE,
            "UPSTREAM_CONNECT_FAILED",
            True,
        )

    # -- errors inside a stream --------------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("status", "code", "reason"),
        [
            (0, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
            (429, ErrorKind.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED"),
            (500, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
        ],
    )
    async def test_error_event_mid_stream(
        self,
        fake: FakeProvider,
        provider: HttpProvider,
        model: ModelConfig,
        status: int,
        code: ErrorKind,
        reason: str,
    ) -> None:
        fake.fail(status or self.overloaded_status, in_stream=True, after_chunks=self.frames_before_text + 1)
        received, error = await _collect_until_error(provider.stream(hello(), model, CALL))
        assert (error.kind, error.reason) == (code, reason)
        assert received == ["Hello!"]

    # -- cancellation ------------------------------------------------------------------------------------------------

    async def test_closing_the_stream_closes_the_upstream(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        gate = fake.pause_after(self.frames_before_text + 1)
        stream = provider.stream(hello(), model, CALL)
        assert (await asyncio.wait_for(anext(stream), 2)).text == "Hello!"
        await stream.aclose()  # type: ignore[attr-defined]
        await fake.wait_disconnect()
        gate.set()
        assert fake.completed == 0

    async def test_cancelling_a_streaming_task_closes_the_upstream(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.pause_after(self.frames_before_text + 1)
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in provider.stream(hello(), model, CALL):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await fake.wait_disconnect()

    async def test_cancelling_a_chat_closes_the_upstream(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.hang()
        task = asyncio.create_task(provider.chat(hello(), model, CALL))
        while not fake.requests:  # noqa: ASYNC110 - the fake records into a plain list
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await fake.wait_disconnect()

    async def test_a_new_request_works_after_failures(
        self, fake: FakeProvider, provider: HttpProvider, model: ModelConfig
    ) -> None:
        fake.drop(after_chunks=2)
        fake.fail(500)
        with pytest.raises(ProviderError):
            await assemble(provider.stream(hello(), model, CALL))
        with pytest.raises(ProviderError):
            await provider.chat(hello(), model, CALL)
        assert (await provider.chat(hello(), model, CALL)).text == fake.default_answer.text

    # -- helpers -----------------------------------------------------------------------------------------------------

    async def _run(
        self, provider: HttpProvider, model: ModelConfig, streaming: bool, call: UpstreamCall = CALL
    ) -> None:
        if streaming:
            await assemble(provider.stream(hello(), model, call))
        else:
            await provider.chat(hello(), model, call)
