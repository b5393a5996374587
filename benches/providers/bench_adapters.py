"""What an adapter costs a call in CPU, sockets aside: Bedrock (encode the Converse body, sign it with SigV4, decode
the ConverseStream answer's event-stream frames) beside OpenAI (encode, decode the same answer as server-sent events),
in one run, on the frames the test fakes send for a 40-chunk answer.

.venv/bin/pytest benches/providers --benchmark-enable --benchmark-columns=min,median,max,ops

Also timed apart: the SigV4 signature alone, by botocore's SigV4Auth (what the adapter uses) and, when awscrt is
installed (`pip install awscrt`), by the AWS Common Runtime's signer, the alternative considered.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway.chat import ChatRequest, Message
from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.providers.bedrock import BedrockProvider
from gateway.providers.eventstream import EventStreamParser
from gateway.providers.http import HttpProvider, SSEParser, StreamParser
from gateway.providers.openai import OpenAIProvider
from tests.fakes import Answer, FakeBedrock, FakeOpenAI, Recorded

WORDS = 40
ANSWER = Answer(text=" ".join(f"word{i}" for i in range(WORDS)))
REQUEST = ChatRequest(
    "m",
    [Message("system", "You are a concise assistant."), Message("user", "Explain rate limiting in one paragraph.")],
    max_tokens=256,
    temperature=0.2,
)
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEBEDROCK00001",
    "AWS_SECRET_ACCESS_KEY": "fAkE/SecretKey+0123456789abcdefghijklmnop",
    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEFAKE" * 20,  # an STS token is ~1 kB
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _recorded(body: dict[str, Any]) -> Recorded:
    return Recorded(method="POST", path="/", query={}, headers={}, body=body, raw=b"")


Setup = tuple[HttpProvider, ModelConfig, list[bytes]]


@pytest.fixture(scope="module")
def bedrock() -> Iterator[Setup]:
    with (
        pytest.MonkeyPatch.context() as env
    ):  # the credentials chain reads the environment; the run's is left as it was
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        config = ProviderConfig(name="bedrock", type="bedrock", region="us-east-1")  # type: ignore[arg-type]
        provider = BedrockProvider(config)
        asyncio.run(provider._ready())  # credentials resolved once, as before a call
        model = ModelConfig(
            name="claude", provider="bedrock", upstream_model="us.anthropic.claude-3-5-haiku-20241022-v1:0"
        )
        frames = FakeBedrock().stream_frames(ANSWER, None, _recorded({}))  # type: ignore[arg-type]
        yield provider, model, frames


@pytest.fixture(scope="module")
def openai() -> Iterator[Setup]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BENCH_OPENAI_KEY", "sk-bench-0123456789abcdefghij")
        config = ProviderConfig(name="openai", type="openai", api_key_env="BENCH_OPENAI_KEY")  # type: ignore[arg-type]
        model = ModelConfig(name="gpt", provider="openai", upstream_model="gpt-4o-mini")
        recorded = _recorded({"stream_options": {"include_usage": True}})
        frames = FakeOpenAI().stream_frames(ANSWER, None, recorded)  # type: ignore[arg-type]
        yield OpenAIProvider(config), model, frames


def one_call(provider: HttpProvider, model: ModelConfig, frames: list[bytes], parser: StreamParser) -> str:
    """Everything the adapter does for one streamed call but the socket work: the request's bytes (and signature),
    then every frame through the framing parser and the decoder."""
    upstream = provider.build_request(REQUEST, model, stream=True)
    raw = orjson.dumps(upstream.body)
    if upstream.sign is not None:
        upstream.sign(raw)
    decoder = provider.stream_decoder(REQUEST, model)
    text: list[str] = []
    for frame in frames:
        for event in parser.feed(frame):
            text.extend(delta.text for delta in decoder.on_event(event))
    decoder.finish()
    return "".join(text)


@pytest.mark.benchmark(group="adapter: one streamed call, 40 chunks")
def test_openai_call(benchmark: BenchmarkFixture, openai: Setup) -> None:
    provider, model, frames = openai
    text = benchmark(lambda: one_call(provider, model, frames, SSEParser()))
    assert text == ANSWER.text


@pytest.mark.benchmark(group="adapter: one streamed call, 40 chunks")
def test_bedrock_call(benchmark: BenchmarkFixture, bedrock: Setup) -> None:
    provider, model, frames = bedrock
    text = benchmark(lambda: one_call(provider, model, frames, EventStreamParser()))
    assert text == ANSWER.text


@pytest.mark.benchmark(group="adapter: the parts of a Bedrock call")
def test_bedrock_encode_and_sign(benchmark: BenchmarkFixture, bedrock: Setup) -> None:
    provider, model, _ = bedrock

    def sign() -> dict[str, str]:
        upstream = provider.build_request(REQUEST, model, stream=True)
        assert upstream.sign is not None
        return dict(upstream.sign(orjson.dumps(upstream.body)))

    assert "Authorization" in benchmark(sign)


@pytest.mark.benchmark(group="adapter: the parts of a Bedrock call")
def test_bedrock_decode_40_frames(benchmark: BenchmarkFixture, bedrock: Setup) -> None:
    provider, model, frames = bedrock

    def decode() -> int:
        parser, decoder = EventStreamParser(), provider.stream_decoder(REQUEST, model)
        return sum(len(decoder.on_event(event)) for frame in frames for event in parser.feed(frame))

    assert benchmark(decode) == WORDS + 1


@pytest.mark.benchmark(group="adapter: the parts of a Bedrock call")
def test_openai_decode_40_frames(benchmark: BenchmarkFixture, openai: Setup) -> None:
    provider, model, frames = openai

    def decode() -> int:
        parser, decoder = SSEParser(), provider.stream_decoder(REQUEST, model)
        return sum(len(decoder.on_event(event)) for frame in frames for event in parser.feed(frame))

    assert benchmark(decode) >= WORDS


@pytest.mark.benchmark(group="adapter: a SigV4 signature alone")
def test_sigv4_botocore(benchmark: BenchmarkFixture, bedrock: Setup) -> None:
    provider, model, _ = bedrock
    upstream = provider.build_request(REQUEST, model, stream=True)
    raw = orjson.dumps(upstream.body)
    assert upstream.sign is not None
    sign = upstream.sign
    assert "Authorization" in benchmark(lambda: sign(raw))


@pytest.mark.benchmark(group="adapter: a SigV4 signature alone")
def test_sigv4_awscrt(benchmark: BenchmarkFixture, bedrock: Setup) -> None:
    auth = pytest.importorskip("awscrt.auth")
    http = pytest.importorskip("awscrt.http")
    provider, model, _ = bedrock
    upstream = provider.build_request(REQUEST, model, stream=True)
    raw = orjson.dumps(upstream.body)
    credentials = auth.AwsCredentialsProvider.new_static(
        CREDENTIALS["AWS_ACCESS_KEY_ID"], CREDENTIALS["AWS_SECRET_ACCESS_KEY"], CREDENTIALS["AWS_SESSION_TOKEN"]
    )
    url = str(upstream.url)
    host, path = url.removeprefix("https://").split("/", 1)

    def sign() -> Any:
        config = auth.AwsSigningConfig(  # per call: its date is taken when it is made
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=credentials,
            region="us-east-1",
            service="bedrock",
        )
        headers = http.HttpHeaders([("host", host), *upstream.headers.items()])
        request = http.HttpRequest("POST", "/" + path, headers, io.BytesIO(raw))
        return auth.aws_sign_request(request, config).result()

    assert benchmark(sign).headers.get("Authorization")
