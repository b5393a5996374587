"""Who is calling, and may they: the key, its model list, the data's classification, its attribute conditions."""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest
from gateway.pipeline.call import Call, CallInfo
from gateway.pipeline.stage import BaseStage
from gateway.policy import access
from gateway.policy.keyring import KeyRing
from gateway.records.classification import Classification
from gateway.records.governance import KeyRecord

CLASSIFICATION_METADATA = "x-data-classification"
_CLASSIFICATION_LABEL = "classification"


class Authenticate(BaseStage):
    name = "authenticate"

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def enter(self, call: Call[Any]) -> None:
        key = call.info.signed_in or self._ring.authenticate(call.info.metadata, call.info.peer)
        call.key = key
        record = call.record
        record.key_id = key.id
        record.team = key.team
        span = call.span
        if span.recording:
            span.set_identity(team=key.team, key_id=key.id)
            span.set_request(call.request, streaming=call.streaming)


class CheckAccess(BaseStage):
    """The model is on the key's list; the request's classification is what the caller declares, raised to the
    floor its key's labels set."""

    name = "access"

    def enter(self, call: Call[Any]) -> None:
        key = call.key
        assert key is not None
        access.check_model(key, call.request.model)
        level = classification_of(key, call.info)
        call.classification = level
        call.record.classification = level.label


def classification_of(key: KeyRecord, info: CallInfo) -> Classification:
    """What the caller declares (metadata x-data-classification), raised to the floor its key's labels set."""
    level = Classification.PUBLIC
    if info.metadata:
        declared = info.metadata_dict().get(CLASSIFICATION_METADATA)
        if declared:
            try:
                level = Classification.parse(declared)
            except ValueError as err:
                raise InvalidRequest(
                    f"metadata {CLASSIFICATION_METADATA}: {err}", reason="BAD_CLASSIFICATION"
                ) from None
    floor = key.labels.get(_CLASSIFICATION_LABEL) if key.labels else None
    if floor:
        level = max(level, Classification.parse(floor))
    return level


class CheckConditions(BaseStage):
    """The key's attribute conditions (ABAC), against the classification the input guardrails settled on."""

    name = "conditions"

    def enter(self, call: Call[Any]) -> None:
        key = call.key
        assert key is not None
        if not key.conditions.empty:
            access.check_conditions(
                key,
                peer=call.info.peer,
                metadata=call.info.metadata_dict(),
                classification=call.classification,
                now=call.record.at,
            )
