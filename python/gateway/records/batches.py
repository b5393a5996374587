"""A batch and its items as the Batches service keeps them: the statuses a caller sees, the steps of the submission
to the provider (a state machine stored with the batch, so a restart resumes it without sending it twice), and what
one item's outcome holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """What the caller sees (the proto's BatchStatus without its prefix, lower-cased)."""

    QUEUED = "queued"
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in ENDED


ENDED = frozenset({Status.COMPLETED, Status.EXPIRED, Status.CANCELLED, Status.FAILED})


class Step(StrEnum):
    """Where the submission stands. Each step is recorded before the next request to the provider starts, so a
    crash anywhere leaves a step that says what to do next:

    stored -> (upload the input file) -> uploaded -> (record creating_at) -> creating -> (create the batch, record
    its id) -> submitted -> (poll, fetch and settle every result) -> ended.

    A restart in `creating` does not know whether the provider made the batch: it looks for it among the provider's
    batches (by the gateway's batch id in their metadata, or created since creating_at) before creating another."""

    STORED = "stored"
    UPLOADED = "uploaded"
    CREATING = "creating"
    SUBMITTED = "submitted"
    ENDED = "ended"


class ItemState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why an item has no answer: a gRPC status name, a reason and a message (as a failed Chat call would say)."""

    code: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason, "message": self.message}


@dataclass(slots=True)
class BatchJob:
    id: str
    key_id: str
    team: str
    model: str
    served_model: str
    provider: str
    completion_window: str
    labels: dict[str, str]
    status: Status
    step: Step
    total: int
    estimate_usd: float
    created_at: float
    updated_at: float
    input_file_id: str | None = None
    provider_batch_id: str | None = None
    creating_at: float | None = None
    cancel_requested: bool = False
    error: str = ""
    ended_at: float | None = None
    source_file_id: str | None = None
    """The uploaded file the batch was made from (the HTTP front door's POST /v1/batches)."""


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    pending: int
    succeeded: int
    failed: int
    retried: int


@dataclass(slots=True)
class BatchView:
    """A batch as GetBatch shows it: the job, its counts and its cost so far."""

    job: BatchJob
    counts: Counts
    cost_usd: float


@dataclass(slots=True)
class StoredItem:
    """One item as stored: its request (an OpenAI Chat Completions body) and, once settled, its outcome."""

    batch_id: str
    custom_id: str
    position: int
    body: dict[str, Any]
    classification: str
    estimate_usd: float
    request_id: str
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    """The input guardrails' actions on the item at submission, then the output guardrails' on its answer."""
    state: ItemState = ItemState.PENDING
    outcome: dict[str, Any] | None = field(default=None)
    cost_usd: float = 0.0
    retried: bool = False
    settled_at: float | None = None
    billed: bool = False


@dataclass(frozen=True, slots=True)
class BatchFile:
    """A file uploaded for a batch (the HTTP front door's /v1/files)."""

    id: str
    key_id: str
    team: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
