"""What a submitted batch must pass before it is stored: the same checks a Chat call passes on its way in (the key's
model list, the request rules, the team's input guardrails, the key's attribute conditions, the team's residency
rule), the choice of the target whose batch API serves it, and the estimate its budgets reserve. The key's rate
limits (requests and tokens per minute, calls in flight) do not apply: a batch is not served now, and its cost is
held by its budget reservation.

A refused item refuses the whole batch, naming the item: a batch is stored whole or not at all."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.batches.adapters.registry import batch_api
from gateway.batches.bodies import stored_body
from gateway.chat import ChatRequest
from gateway.config.batches import BatchesConfig
from gateway.config.schema import ModelKind
from gateway.errors import FailedPrecondition, GatewayError, InvalidRequest
from gateway.ledger.cost import batch_prices
from gateway.pipeline.call import CallInfo
from gateway.pipeline.stages.identity import classification_of
from gateway.policy import access
from gateway.policy.guardrails.input import OFF_LOOP_MIN_CHARS
from gateway.policy.team_policies import TeamPolicies, action_records, allowed_targets
from gateway.records.batches import StoredItem
from gateway.records.classification import Classification
from gateway.records.governance import KeyRecord
from gateway.request_rules import check_size
from gateway.routing.catalog import ModelCatalog, Target
from gateway.tokens import TokenCounter

MAX_CUSTOM_ID = 64
MAX_LABELS = 16
MAX_LABEL_KEY = 64
MAX_LABEL_VALUE = 512


@dataclass(frozen=True, slots=True)
class Header:
    model: str
    completion_window: str = ""
    labels: dict[str, str] | None = None
    source_file_id: str | None = None
    """The uploaded file the batch is made from (the HTTP front door)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """One item as the caller sent it."""

    custom_id: str
    request: ChatRequest


@dataclass(slots=True)
class Admitted:
    target: Target
    window: str
    labels: dict[str, str]
    items: list[StoredItem]
    """Each with the request as the provider will get it (redacted by the input guardrails); batch_id still empty."""

    @property
    def estimate_usd(self) -> float:
        return sum(item.estimate_usd for item in self.items)


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


class BatchAdmission:
    def __init__(
        self,
        catalog: ModelCatalog,
        policies: TeamPolicies,
        counter: TokenCounter,
        config: BatchesConfig,
        max_input_chars: int,
    ) -> None:
        self._catalog = catalog
        self._policies = policies
        self._counter = counter
        self._config = config
        self._max_input_chars = max_input_chars

    async def admit(self, key: KeyRecord, info: CallInfo, header: Header, items: list[Submitted]) -> Admitted:
        window = self._window(header.completion_window)
        labels = _labels(header.labels or {})
        model = header.model
        if not model:
            raise InvalidRequest("the batch header names no model", reason="MISSING_MODEL", metadata={"param": "model"})
        access.check_model(key, model)
        candidates = self.batch_targets(model)
        self._check_items(model, items)
        floor = classification_of(key, info)
        policy = self._policies.for_team(key.team)
        checked: list[tuple[Submitted, Classification, list[dict[str, object]]]] = []
        for item in items:
            try:
                request, level, actions = await self._guard(policy.input, item.request, floor)
            except GatewayError as err:
                raise _for_item(err, item.custom_id) from None
            checked.append((Submitted(item.custom_id, request), level, actions))
        highest = max((level for _, level, _ in checked), default=floor)
        if not key.conditions.empty:  # the key's attribute conditions, as a Chat call's CheckConditions applies them
            access.check_conditions(
                key, peer=info.peer, metadata=info.metadata_dict(), classification=highest, now=time.time()
            )
        rule = policy.residency_rule(highest)
        if rule is not None:
            candidates = allowed_targets(candidates, rule, requested=model, team=key.team, classification=highest)
        target = candidates[0]
        return Admitted(
            target,
            window,
            labels,
            [
                self._stored(item, level, actions, position, target)
                for position, (item, level, actions) in enumerate(checked)
            ],
        )

    def batch_targets(self, name: str) -> list[Target]:
        """The targets of a model or route, in the route's order, whose provider has a batch API;
        FAILED_PRECONDITION when none has."""
        targets = [t for t in self._targets(name) if t.model.kind is ModelKind.CHAT and batch_api(t.provider)]
        if not targets:
            raise FailedPrecondition(
                f"no target of {name!r} has a batch API the gateway speaks (openai, azure_openai, anthropic, gemini)",
                reason="BATCH_UNSUPPORTED",
                metadata={"model": name},
            )
        return targets

    def next_target(self, team: str, model: str, after: Target, levels: list[str]) -> Target | None:
        """The batch target that follows `after` among a model's or route's, within the team's residency rule for the
        highest of the items' classifications; None when there is none."""
        try:
            targets = self.batch_targets(model)
        except GatewayError:
            return None
        keys = [t.key for t in targets]
        later = targets[keys.index(after.key) + 1 :] if after.key in keys else []
        highest = max((Classification.parse(level) for level in levels), default=Classification.PUBLIC)
        rule = self._policies.for_team(team).residency_rule(highest)
        if rule is not None:
            later = [t for t in later if rule.allows(t.provider.config.region, t.provider.config.compliance)]
        return later[0] if later else None

    def _targets(self, name: str) -> Iterator[Target]:
        found = self._catalog.lookup(name)
        if isinstance(found, list):
            yield from found
            return
        names = [t.model for t in found.targets] + ([found.default] if found.default else [])
        for model in names:
            yield from self._targets(model)

    def _window(self, asked: str) -> str:
        window = asked or self._config.completion_window
        if window != "24h":
            raise InvalidRequest(
                f"completion_window {window!r} is not offered; providers' batch APIs take 24h",
                reason="BAD_COMPLETION_WINDOW",
                metadata={"param": "completion_window"},
            )
        return window

    def _check_items(self, model: str, items: list[Submitted]) -> None:
        if not items:
            raise InvalidRequest("the batch has no items", reason="EMPTY_BATCH")
        if len(items) > self._config.max_items:
            raise InvalidRequest(
                f"the batch has {len(items)} items, over batches.max_items ({self._config.max_items}); split it",
                reason="BATCH_TOO_LARGE",
            )
        seen: set[str] = set()
        for index, item in enumerate(items):
            custom_id = item.custom_id
            if not custom_id or len(custom_id) > MAX_CUSTOM_ID:
                raise InvalidRequest(
                    f"item {index}: custom_id must be 1 to {MAX_CUSTOM_ID} characters",
                    reason="BAD_CUSTOM_ID",
                    metadata={"param": "custom_id", "index": str(index)},
                )
            if custom_id in seen:
                raise InvalidRequest(
                    f"item {index}: custom_id {custom_id!r} is used twice; each item needs its own",
                    reason="DUPLICATE_CUSTOM_ID",
                    metadata={"param": "custom_id", "custom_id": custom_id},
                )
            seen.add(custom_id)
            asked = item.request.model
            if asked and asked != model:
                raise InvalidRequest(
                    f"item {custom_id!r} asks for {asked!r}, the batch for {model!r}; a batch serves one model",
                    reason="MODEL_MISMATCH",
                    metadata={"param": "model", "custom_id": custom_id},
                )
            item.request.model = model
            try:
                check_size(item.request.text_chars, self._max_input_chars)
            except GatewayError as err:
                raise _for_item(err, custom_id) from None

    async def _guard(
        self, guard: Any, request: ChatRequest, floor: Classification
    ) -> tuple[ChatRequest, Classification, list[dict[str, object]]]:
        if guard is None:
            return request, floor, []
        if request.text_chars >= OFF_LOOP_MIN_CHARS:
            outcome = await guard.check_async(request, floor=floor)
        else:
            outcome = guard.check(request, floor=floor)
        return outcome.request, outcome.classification, action_records(outcome.actions)

    def _stored(
        self,
        item: Submitted,
        level: Classification,
        actions: list[dict[str, object]],
        position: int,
        target: Target,
    ) -> StoredItem:
        model = target.model
        request = item.request
        prompt = self._counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens
        answer = request.max_tokens if request.max_tokens is not None else model.max_output_tokens
        input_price, output_price = batch_prices(model)
        return StoredItem(
            batch_id="",
            custom_id=item.custom_id,
            position=position,
            body=stored_body(request),
            classification=level.label,
            guardrails=actions,
            estimate_usd=(prompt * input_price + answer * output_price) / 1e6,
            request_id=new_request_id(),
        )


def _for_item(err: GatewayError, custom_id: str) -> GatewayError:
    """The error of one item as the whole batch's, naming the item."""
    return type(err)(
        f"item {custom_id!r}: {err.message}",
        reason=err.reason,
        retry_after=err.retry_after,
        metadata={**err.metadata, "custom_id": custom_id},
    )


def _labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS or any(
        not k or len(k) > MAX_LABEL_KEY or len(v) > MAX_LABEL_VALUE for k, v in labels.items()
    ):
        raise InvalidRequest(
            f"batch metadata: at most {MAX_LABELS} entries, keys of 1 to {MAX_LABEL_KEY} characters, values up to "
            f"{MAX_LABEL_VALUE}",
            reason="BAD_METADATA",
            metadata={"param": "metadata"},
        )
    return dict(labels)
