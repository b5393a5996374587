"""The bodies of Bedrock's embedding models, sent through InvokeModel (POST {endpoint}/model/{modelId}/invoke).

Each model family has its own (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html,
model-parameters-embed-v3.html and model-parameters-embed-v4.html):
- Amazon Titan Text Embeddings (`amazon.titan-embed-text-v2:0`, `amazon.titan-embed-text-v1`): one text a request,
  `{"inputText", "dimensions"}` (v2: 256, 512 or 1024; v1 takes none and refuses it). Vectors come back normalized
  (v2's `normalize` defaults to true). The answer: `{"embedding": [...], "inputTextTokenCount": n}`.
- Cohere Embed (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, `cohere.embed-v4:0`): up to 96 texts a
  request, `{"texts", "input_type", "embedding_types": ["float"]}`, plus `output_dimension` (v4: 256, 512, 1024 or
  1536) when the caller asks for a length. `input_type` is `search_document`: the vectors a store keeps (Embed has no
  field for Cohere's `search_query`, which embeds a query differently). The answer: `{"embeddings": {"float":
  [[...]]}, "response_type": "embeddings_by_type", ...}`; `{"embeddings": [[...]]}` (`embeddings_floats`) is read too.
  Cohere's answer on Bedrock carries no token count, so the gateway counts the tokens.
A dimension a model does not take is sent as asked, and Bedrock's ValidationException says so: never a silently
different length.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from gateway.embeddings import EmbedRequest, EmbedResult, vector

COHERE_BATCH = 96
"""Texts one Cohere Embed request may carry (AWS's limit)."""


class EmbeddingFamily(Enum):
    TITAN = re.compile(r"(^|\.)amazon\.titan-embed-(g1-)?text")
    COHERE = re.compile(r"(^|\.)cohere\.embed-")


def embedding_family(model_id: str) -> EmbeddingFamily | None:
    """The family of a model id, a cross-region profile's too (`us.cohere.embed-v4:0`); None for an id that names
    another family, or none (an ARN)."""
    return next((family for family in EmbeddingFamily if family.value.search(model_id)), None)


def batch_limit(family: EmbeddingFamily) -> int:
    return 1 if family is EmbeddingFamily.TITAN else COHERE_BATCH


def request_body(family: EmbeddingFamily, request: EmbedRequest) -> dict[str, Any]:
    """InvokeModel's body for the inputs of `request` (one for Titan)."""
    body: dict[str, Any]
    if family is EmbeddingFamily.TITAN:
        (text,) = request.inputs
        body = {"inputText": text}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        return body
    body = {"texts": request.inputs, "input_type": "search_document", "embedding_types": ["float"]}
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    return body


def parse_answer(family: EmbeddingFamily, payload: Any, model_id: str) -> EmbedResult:
    """The vectors of InvokeModel's answer. KeyError/TypeError/ValueError for a shape the family does not answer."""
    if family is EmbeddingFamily.TITAN:
        count = payload.get("inputTextTokenCount")
        return EmbedResult(
            upstream_model=model_id,
            vectors=[vector(payload["embedding"])],
            prompt_tokens=int(count) if count is not None else None,
        )
    embeddings = payload["embeddings"]
    floats = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    return EmbedResult(upstream_model=model_id, vectors=[vector(values) for values in floats])
