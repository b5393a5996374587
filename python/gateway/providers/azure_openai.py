"""Azure OpenAI: the OpenAI Chat Completions wire format at a deployment URL, authenticated with an `api-key` header.

POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}. The deployment is the
model's upstream_model; the body carries no `model` (the deployment decides). `max_completion_tokens` is sent, as for
OpenAI: Azure accepts it from api-version 2024-09-01-preview on, and its o-series deployments require it.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.chat import ChatRequest
from gateway.config.schema import ModelConfig
from gateway.providers.http import UpstreamRequest
from gateway.providers.openai import OpenAIProvider


class AzureOpenAIProvider(OpenAIProvider):
    send_model = False

    def url(self, model: ModelConfig) -> str:
        return f"{self.config.url}/openai/deployments/{quote(model.upstream, safe='')}/chat/completions"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.require_api_key()}

    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        upstream = super().build_request(request, model, stream=stream)
        upstream.params = {"api-version": self.config.api_version or ""}
        return upstream
