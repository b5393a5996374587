"""Azure OpenAI: the OpenAI Chat Completions and Embeddings wire formats at a deployment URL, authenticated with an
`api-key` header.

POST {base_url}/openai/deployments/{deployment}/{chat/completions|embeddings}?api-version={api_version}. The deployment
is the
model's upstream_model; the body carries no `model` (the deployment decides). `max_completion_tokens` is sent, as for
OpenAI: Azure accepts it from api-version 2024-09-01-preview on, and its o-series deployments require it.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.chat import ChatRequest
from gateway.config.schema import ModelConfig
from gateway.embeddings import EmbedRequest
from gateway.providers.http import UpstreamRequest
from gateway.providers.openai import OpenAIProvider


class AzureOpenAIProvider(OpenAIProvider):
    send_model = False

    def url(self, model: ModelConfig, endpoint: str = "chat/completions") -> str:
        return f"{self.config.url}/openai/deployments/{quote(model.upstream, safe='')}/{endpoint}"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.require_api_key()}

    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        upstream = super().build_request(request, model, stream=stream)
        upstream.params = {"api-version": self.config.api_version or ""}
        return upstream

    def build_embed_request(self, request: EmbedRequest, model: ModelConfig) -> UpstreamRequest:
        upstream = super().build_embed_request(request, model)
        upstream.params = {"api-version": self.config.api_version or ""}
        return upstream
