"""The gateway's answers in OpenAI's JSON shapes (chat.completion, chat.completion.chunk, the embeddings list, the
model list), with what OpenAI has no field for (route report, cache, guardrails, cost) in a `gateway` field that
OpenAI's clients ignore, and in response headers."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.chat import ChatDelta, ChatResult, Usage
from gateway.embeddings import Embedding, EmbeddingEncoding, pack_base64
from gateway.pipeline import Call
from gateway.server.listing import Listed


def usage(used: Usage, *, embedding: bool = False) -> dict[str, Any]:
    if embedding:
        return {"prompt_tokens": used.prompt_tokens, "total_tokens": used.prompt_tokens}
    return {
        "prompt_tokens": used.prompt_tokens,
        "completion_tokens": used.completion_tokens,
        "total_tokens": used.total_tokens,
        "prompt_tokens_details": {"cached_tokens": used.cached_prompt_tokens},
    }


def gateway_report(call: Call[Any]) -> dict[str, Any]:
    """What the gRPC door reports in RouteInfo, CacheInfo, GuardrailAction and Usage.cost_usd."""
    answer, record, plan = call.answer, call.record, call.plan
    target = answer.target
    report: dict[str, Any] = {
        "request_id": record.request_id,
        "model": target.model.name if target is not None else "",
        "provider": target.provider.name if target is not None else "",
        "simulated": target.provider.simulated if target is not None else False,
        "cost_usd": answer.cost_usd,
        "guardrails": record.guardrails,
    }
    if plan is not None:
        report["route"] = {
            "route": plan.route,
            "strategy": plan.strategy,
            "reason": plan.reason,
            "attempts": record.attempts,  # as the audit record keeps them (written when the call ended)
        }
    cache = call.cache
    if cache is not None:
        report["cache"] = {
            "hit": cache.hit,
            "kind": cache.kind,
            "similarity": cache.similarity,
            "entry_id": cache.entry_id,
            "age_seconds": cache.age_s,
        }
    return report


def headers(call: Call[Any]) -> dict[str, str]:
    """The call's id, who serves it, its route and the cache's part, as response headers (for a stream: as known
    at its first chunk)."""
    answer, plan = call.answer, call.plan
    out = {"x-request-id": call.request_id}
    target = answer.target
    if target is not None:
        out["x-gateway-model"] = target.model.name
        out["x-gateway-provider"] = target.provider.name
        if target.provider.simulated:
            out["x-gateway-simulated"] = "true"
    if plan is not None:
        if plan.route:
            out["x-gateway-route"] = plan.route
        out["x-gateway-route-strategy"] = plan.strategy
        if call.execution is not None:
            out["x-gateway-attempts"] = str(len(call.execution.attempts))
    cache = call.cache
    if cache is not None:
        out["x-gateway-cache-status"] = f"hit; kind={cache.kind}; entry={cache.entry_id}" if cache.hit else "miss"
    return out


def completion(call: Call[Any], result: ChatResult) -> dict[str, Any]:
    answer = call.answer
    assert answer.usage is not None
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in result.tool_calls
        ]
    return {
        "id": call.request_id,
        "object": "chat.completion",
        "created": int(call.record.at),
        "model": _model(call),
        "choices": [
            {"index": 0, "message": message, "logprobs": result.logprobs, "finish_reason": result.finish_reason}
        ],
        "usage": usage(answer.usage),
        "gateway": gateway_report(call),
    }


class ChunkWriter:
    """chat.completion.chunk events of one stream, as OpenAI frames them: `data: <json>` and a blank line; with
    `include_usage`, `usage: null` on every chunk and a last chunk with no choices and the usage."""

    __slots__ = ("_base", "_include_usage")

    def __init__(self, call: Call[Any], include_usage: bool) -> None:
        self._base = {
            "id": call.request_id,
            "object": "chat.completion.chunk",
            "created": int(call.record.at),
            "model": _model(call),
        }
        self._include_usage = include_usage

    def first(self) -> bytes:
        return self._choice({"role": "assistant", "content": ""})

    def delta(self, delta: ChatDelta) -> bytes:
        out: dict[str, Any] = {}
        if delta.text:
            out["content"] = delta.text
        if delta.tool_calls:
            calls = []
            for part in delta.tool_calls:
                call: dict[str, Any] = {"index": part.index, "function": {"arguments": part.arguments_delta}}
                if part.id:
                    call["id"] = part.id
                    call["type"] = "function"
                if part.name:
                    call["function"]["name"] = part.name
                calls.append(call)
            out["tool_calls"] = calls
        return self._choice(out, logprobs=delta.logprobs)

    def last(self, call: Call[Any]) -> bytes:
        """The finish reason with the gateway's report, then the usage chunk when asked for, then [DONE]."""
        answer = call.answer
        final = {
            **self._base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": answer.finish_reason}],
            "gateway": gateway_report(call),
        }
        if self._include_usage:
            final["usage"] = None
        out = event(final)
        if self._include_usage:
            assert answer.usage is not None
            out += event({**self._base, "choices": [], "usage": usage(answer.usage)})
        return out + b"data: [DONE]\n\n"

    def _choice(self, delta: dict[str, Any], logprobs: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return event(chunk)


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def embeddings(call: Call[Any], embedded: list[Embedding], encoding: EmbeddingEncoding) -> dict[str, Any]:
    answer = call.answer
    assert answer.usage is not None
    packed = encoding is EmbeddingEncoding.BASE64
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": pack_base64(e.vector) if packed else e.vector.tolist(),
            }
            for index, e in enumerate(embedded)
        ],
        "model": _model(call),
        "usage": usage(answer.usage, embedding=True),
        "gateway": {
            **gateway_report(call),
            "cached": [e.cached for e in embedded],
            "cached_tokens": answer.usage.cached_prompt_tokens,
        },
    }


def models(listed: list[Listed]) -> dict[str, Any]:
    return {"object": "list", "data": [model(m) for m in listed]}


def model(m: Listed) -> dict[str, Any]:
    return {
        "id": m.id,
        "object": "model",
        "created": 0,
        "owned_by": m.provider or "gateway",
        "gateway": {
            "kind": m.kind,
            "provider_type": m.provider_type,
            "upstream_model": m.upstream_model,
            "context_window": m.context_window,
            "max_output_tokens": m.max_output_tokens,
            "input_cost_per_mtok": m.input_cost_per_mtok,
            "output_cost_per_mtok": m.output_cost_per_mtok,
            "capabilities": list(m.capabilities),
            "dimensions": m.dimensions,
            "simulated": m.simulated,
            "route_strategy": m.route_strategy,
            "route_targets": list(m.route_targets),
        },
    }


def _model(call: Call[Any]) -> str:
    """The configured model that serves the call (OpenAI reports the model that answered)."""
    target = call.answer.target
    return target.model.name if target is not None else call.record.model
