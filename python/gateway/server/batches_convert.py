"""Batches between the domain (gateway/batches) and protobuf."""

from __future__ import annotations

from llmgateway.v1 import batches_pb2 as bpb

from gateway.chat import ChatResult, ToolCall, Usage
from gateway.records.batches import BatchView, Status, StoredItem
from gateway.server.admin_convert import timestamp
from gateway.server.convert import fill_message, fill_usage


def status_to_proto(status: Status) -> bpb.BatchStatus.ValueType:
    return bpb.BatchStatus.Value(f"BATCH_STATUS_{status.value.upper()}")


def batch_to_proto(view: BatchView) -> bpb.Batch:
    job, counts = view.job, view.counts
    return bpb.Batch(
        id=job.id,
        status=status_to_proto(job.status),
        model=job.model,
        served_model=job.served_model,
        provider=job.provider,
        completion_window=job.completion_window,
        metadata=job.labels,
        counts=bpb.BatchCounts(
            total=counts.total,
            pending=counts.pending,
            succeeded=counts.succeeded,
            failed=counts.failed,
            retried=counts.retried,
        ),
        cost_usd=view.cost_usd,
        estimate_usd=job.estimate_usd,
        created_at=timestamp(job.created_at),
        ended_at=timestamp(job.ended_at),
        error=job.error,
    )


def result_to_proto(item: StoredItem) -> bpb.BatchResult:
    outcome = item.outcome or {}
    result = bpb.BatchResult(custom_id=item.custom_id, batch_id=item.batch_id, request_id=item.request_id)
    error = outcome.get("error")
    if error is not None:
        result.error.CopyFrom(bpb.BatchItemError(code=error["code"], reason=error["reason"], message=error["message"]))
        return result
    usage = outcome["usage"]
    answer = ChatResult(
        upstream_id="",
        upstream_model=outcome["upstream_model"],
        text=outcome["text"],
        finish_reason=outcome["finish_reason"],
        usage=None,
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in outcome["tool_calls"]],
    )
    batch_answer = result.answer
    batch_answer.finish_reason = answer.finish_reason
    batch_answer.model = outcome["model"]
    batch_answer.provider = outcome["provider"]
    batch_answer.upstream_model = answer.upstream_model
    fill_message(batch_answer.message, answer)
    fill_usage(
        batch_answer.usage,
        Usage(usage["prompt_tokens"], usage["completion_tokens"], usage["cached_prompt_tokens"]),
        item.cost_usd,
    )
    return result
