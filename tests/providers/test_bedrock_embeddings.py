"""Bedrock embeddings (InvokeModel with Titan Text Embeddings' and Cohere Embed's bodies) against the fake Bedrock:
signed requests, each family's body and answer, batch limits per model, and refusals mapped like Converse's."""

from __future__ import annotations

import pytest

from gateway.embeddings import EmbedRequest
from gateway.errors import ErrorKind, ProviderError
from gateway.providers.bedrock import BedrockProvider
from gateway.providers.bedrock_embeddings import EmbeddingFamily, parse_answer
from tests.fakes import FakeBedrock
from tests.fakes.server import fake_vector
from tests.providers.contract import CALL

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
COHERE_V4_PROFILE = "us.cohere.embed-v4:0"


async def test_titan_one_text_a_signed_invoke(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    titan = fake_bedrock.model_config(upstream_model=TITAN, kind="embedding", dimensions=256)
    result = await bedrock.embed(EmbedRequest(model="m", inputs=["hello there world"], dimensions=256), titan, CALL)
    sent = fake_bedrock.requests[0]
    assert fake_bedrock.raw_paths == ["/model/amazon.titan-embed-text-v2%3A0/invoke"]
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEBEDROCK00001/")
    assert sent.body == {"inputText": "hello there world", "dimensions": 256}
    assert [list(v) for v in result.vectors] == [fake_vector("hello there world", 256)]  # exact in float32
    assert result.prompt_tokens == 3  # inputTextTokenCount
    assert result.upstream_model == TITAN
    assert bedrock.embed_batch_for(titan) == 1


async def test_cohere_texts_in_one_request(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    cohere = fake_bedrock.model_config(upstream_model=COHERE, kind="embedding", dimensions=8)
    texts = ["first text", "second", "third one here"]
    result = await bedrock.embed(EmbedRequest(model="m", inputs=texts), cohere, CALL)
    assert fake_bedrock.raw_paths == ["/model/cohere.embed-english-v3/invoke"]
    assert fake_bedrock.requests[0].body == {
        "texts": texts,
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert [list(v) for v in result.vectors] == [fake_vector(t) for t in texts]
    assert result.prompt_tokens is None  # Bedrock reports none for Cohere: the gateway counts them
    assert bedrock.embed_batch_for(cohere) == 96


async def test_cohere_v4_through_an_inference_profile_with_a_shorter_length(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider
) -> None:
    cohere = fake_bedrock.model_config(upstream_model=COHERE_V4_PROFILE, kind="embedding", dimensions=1536)
    result = await bedrock.embed(EmbedRequest(model="m", inputs=["a", "b"], dimensions=256), cohere, CALL)
    assert fake_bedrock.raw_paths == ["/model/us.cohere.embed-v4%3A0/invoke"]
    assert fake_bedrock.requests[0].body["output_dimension"] == 256
    assert [len(v) for v in result.vectors] == [256, 256]


@pytest.mark.parametrize(
    ("upstream", "dimensions", "said"),
    [
        ("amazon.titan-embed-text-v1", 512, "extraneous key [dimensions]"),
        (TITAN, 300, "300 is not a valid enum value"),
        (COHERE, 256, "extraneous key [output_dimension]"),
    ],
)
async def test_a_length_the_model_does_not_take_is_refused_not_ignored(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider, upstream: str, dimensions: int, said: str
) -> None:
    embedding = fake_bedrock.model_config(upstream_model=upstream, kind="embedding", dimensions=1024)
    with pytest.raises(ProviderError) as caught:
        await bedrock.embed(EmbedRequest(model="m", inputs=["x"], dimensions=dimensions), embedding, CALL)
    error = caught.value
    assert (error.kind, error.reason, error.retryable) == (
        ErrorKind.INVALID_ARGUMENT,
        "UPSTREAM_REJECTED_REQUEST",
        False,
    )
    assert said in error.message


async def test_a_model_id_of_no_known_family_fails_before_sending(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456"
    embedding = fake_bedrock.model_config(upstream_model=arn, kind="embedding", dimensions=8)
    with pytest.raises(ProviderError) as caught:
        await bedrock.embed(EmbedRequest(model="m", inputs=["x"]), embedding, CALL)
    assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
        ErrorKind.FAILED_PRECONDITION,
        "EMBEDDINGS_UNSUPPORTED",
        False,
    )
    assert "amazon.titan-embed-text" in caught.value.message
    assert fake_bedrock.requests == []


async def test_throttling_maps_as_for_converse(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    fake_bedrock.fail(429, retry_after=3)
    titan = fake_bedrock.model_config(upstream_model=TITAN, kind="embedding", dimensions=8)
    with pytest.raises(ProviderError) as caught:
        await bedrock.embed(EmbedRequest(model="m", inputs=["x"]), titan, CALL)
    error = caught.value
    assert (error.kind, error.reason, error.retryable, error.retry_after) == (
        ErrorKind.RESOURCE_EXHAUSTED,
        "UPSTREAM_RATE_LIMITED",
        True,
        3,
    )
    assert "ThrottlingException" in error.message


def test_cohere_answers_without_embedding_types_are_read_too() -> None:
    # What Cohere answers when the request names no embedding_types (AWS's documented `embeddings_floats` shape).
    payload = {"id": "x", "embeddings": [[0.5, 0.25]], "response_type": "embeddings_floats", "texts": ["a"]}
    result = parse_answer(EmbeddingFamily.COHERE, payload, COHERE)
    assert [list(v) for v in result.vectors] == [[0.5, 0.25]]
