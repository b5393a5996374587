"""The cluster of the prompt's embedding as part of a learned route's query type, through the Gateway API: it comes
from the semantic cache's embedding (the real model) once the clusters are seeded; a route whose calls the semantic
cache does not embed is typed by the cheap features alone, unless it asks to embed every call."""

from __future__ import annotations

import pytest

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing
from gateway.learning.clusters import SEEDING_PER_CLUSTER
from tests.admin.helpers import Admin, ask, chat_request
from tests.embedding_model import skip_without
from tests.server.fixtures import StartGateway

PROMPTS = [
    *(f"Translate into English: le chat numéro {n} dort sur le canapé" for n in range(12)),
    *(f"Compute {n} times 37, then add 5. What is the result?" for n in range(12)),
]


def config(route_extra: str, clusters: str = "{k: 2}") -> str:
    return f"""
providers: [{{name: sim, type: simulated, simulation: {{max_answer_tokens: 4}}}}]
models:
  - {{name: a, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 1}}
  - {{name: b, provider: sim, input_cost_per_mtok: 3, output_cost_per_mtok: 3}}
feedback: {{metrics: [{{name: thumbs, type: boolean}}]}}
routes:
  - name: smart
    strategy: learned
    targets: [{{model: a}}, {{model: b}}]
    learned: {{quality: thumbs, features: [tokens, cluster], clusters: {clusters}}}
    {route_extra}
"""


async def types_of(admin: Admin, prompts: list[str]) -> list[str]:
    return [(await ask(admin, chat_request("smart", text))).route.learned.query_type for text in prompts]


async def test_without_the_semantic_cache_the_cheap_features_type_the_call(start_gateway: StartGateway) -> None:
    _, channel = await start_gateway(config(route_extra=""))
    kinds = await types_of(Admin.on(channel), PROMPTS)
    assert set(kinds) == {"tokens<64"}


@pytest.fixture(scope="module")
def embedding_model() -> None:
    try:
        Embedder(intra_op_threads=1)
    except EmbeddingModelMissing as missing:
        skip_without(missing)


@pytest.mark.usefixtures("embedding_model")
@pytest.mark.parametrize(
    ("route_extra", "clusters"),
    [
        ("cache: {exact: true, semantic: true, ttl_s: 600}", "{k: 2}"),  # the semantic cache's own embedding
        ("", "{k: 2, embed_always: true}"),  # no cache: embedded because the route asks
    ],
)
async def test_the_embeddings_cluster_types_the_call(
    start_gateway: StartGateway, route_extra: str, clusters: str
) -> None:
    _, channel = await start_gateway(config(route_extra, clusters))
    admin = Admin.on(channel)
    seeding = SEEDING_PER_CLUSTER * 2
    interleaved = [p for pair in zip(PROMPTS[:12], PROMPTS[12:], strict=True) for p in pair]
    kinds = await types_of(admin, interleaved[:seeding])
    assert set(kinds) == {"tokens<64"}  # the centers are seeded from the first embeddings
    translations = set(await types_of(admin, PROMPTS[:4]))
    sums = set(await types_of(admin, PROMPTS[12:16]))
    assert len(translations) == len(sums) == 1
    assert translations | sums == {"tokens<64 cluster=0", "tokens<64 cluster=1"}
