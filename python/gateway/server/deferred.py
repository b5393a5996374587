"""Deferred Chat calls at the edge: accepted into the state database, served in a task of their own (so a caller who
goes away loses nothing: the answer is stored and billed all the same), fetched with GetDeferred, and resumed by
another worker, or the next start, when the worker holding them dies."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from llmgateway.v1 import gateway_pb2 as pb
from sqlalchemy.exc import IntegrityError

from gateway.chat import ChatRequest, ChatResult
from gateway.config.deferral import DeferralConfig
from gateway.errors import AlreadyExists, InvalidRequest, NotFound, PermissionDenied, Unavailable
from gateway.pipeline import CallInfo, CallKind, CallScope, Pipeline
from gateway.policy.keyring import KeyRing
from gateway.server.caller_error import caller_error
from gateway.store.deferred import DONE, FAILED, Accepted, DeferredStore

log = logging.getLogger("gateway.deferred")
Context = grpc.aio.ServicerContext[Any, Any]
Respond = Callable[[CallScope, ChatResult], pb.ChatResponse]
Parse = Callable[[pb.ChatRequest], ChatRequest]

_STATES = {DONE: pb.DEFERRED_STATE_DONE, FAILED: pb.DEFERRED_STATE_FAILED}
DEFERRED_ID = "x-deferred-id"
"""Metadata: the caller's own id for a deferred call, known to it before the call returns (a unary call's answer
and headers come back together), so that a caller that stops waiting can fetch the answer with GetDeferred."""
_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


class DeferredCalls:
    def __init__(
        self,
        pipeline: Pipeline,
        ring: KeyRing,
        store: DeferredStore,
        config: DeferralConfig,
        clock: Callable[[], float],
        parse: Parse,
        respond: Respond,
    ) -> None:
        """`parse` and `respond`: the Gateway servicer's own translation of Chat's request and answer."""
        self._pipeline = pipeline
        self._ring = ring
        self._store = store
        self._config = config
        self._clock = clock
        self._respond = respond
        self._parse = parse
        self._owner = uuid.uuid4().hex
        """This process, as the leases in the database name it."""
        self._tasks: set[asyncio.Task[pb.ChatResponse]] = set()
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Takes over the calls of workers that died (a previous run of this one included), then keeps the leases of
        this worker's calls and looks for more such calls every third of a lease."""
        await self._take_over()
        self._keeper = asyncio.create_task(self._keep())

    async def aclose(self) -> None:
        """Stops serving held calls: those not answered stay pending in the database, resumed by the next start."""
        tasks = [*self._tasks, *([self._keeper] if self._keeper is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def chat(self, request: pb.ChatRequest, chat: ChatRequest, context: Context) -> pb.ChatResponse:
        """Accepts the call (committed before anything else happens) under the caller's `x-deferred-id`, or else
        the call's own id, and waits for the answer; the call goes on if the caller does not."""
        metadata = context.invocation_metadata()
        key = self._ring.authenticate(metadata, context.peer())
        info = CallInfo(metadata, None, context.peer())
        scope = self._pipeline.call(info, CallKind.CHAT, "Chat", request.model)
        deferred_id = info.metadata_dict().get(DEFERRED_ID) or scope.call.request_id
        if not _ID.match(deferred_id):
            raise InvalidRequest(
                f"{DEFERRED_ID} must be 8 to 64 letters, digits and . _ : - (a UUID will do)",
                reason="BAD_DEFERRED_ID",
                metadata={"param": DEFERRED_ID},
            )
        now = self._clock()
        assert chat.defer_up_to_s is not None
        kept = {name: value for name, value in info.metadata_dict().items() if name != "authorization"}
        accepted = Accepted(deferred_id, key.id, now, chat.defer_up_to_s, request.SerializeToString(), info.peer, kept)
        try:
            await self._store.accept(accepted, self._owner, now + self._config.lease_s)
        except IntegrityError:
            raise AlreadyExists(
                f"a deferred call {deferred_id!r} exists already; GetDeferred returns it, or send this one under "
                f"another {DEFERRED_ID}",
                reason="DEFERRED_ID_TAKEN",
                metadata={"request_id": deferred_id},
            ) from None
        task = self._serve(deferred_id, scope, chat)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise  # the caller went away: the call goes on without it
            raise Unavailable(
                f"the gateway is stopping; deferred call {deferred_id!r} stays accepted and is sent by another "
                "worker or the next start: GetDeferred returns its answer",
                reason="DEFERRED_CALL_MOVED",
                retry_after=1.0,
                metadata={"request_id": deferred_id},
            ) from None

    async def get(self, request_id: str, context: Context) -> pb.GetDeferredResponse:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        row = await self._store.get(request_id)
        if row is None:
            raise NotFound(
                f"no deferred call {request_id!r}: not the {DEFERRED_ID} (or ChatResponse.id) of a Chat call with "
                f"defer_up_to_s, or its answer came more than {self._config.keep_answers_s:g} s ago",
                reason="UNKNOWN_DEFERRED_CALL",
                metadata={"request_id": request_id},
            )
        if row.key_id != key.id:
            raise PermissionDenied(
                f"deferred call {request_id!r} was made with another key; ask with that key",
                reason="NOT_YOUR_CALL",
                metadata={"request_id": request_id},
            )
        found = pb.GetDeferredResponse(
            request_id=request_id,
            state=_STATES.get(row.state, pb.DEFERRED_STATE_PENDING),
            accepted_at=row.accepted_at,
            defer_up_to_s=row.defer_up_to_s,
            error_code=row.error_code,
            error_reason=row.error_reason,
            error_message=row.error_message,
        )
        if row.response is not None:
            found.response.ParseFromString(row.response)
        return found

    def _serve(self, request_id: str, scope: CallScope, chat: ChatRequest) -> asyncio.Task[pb.ChatResponse]:
        task = asyncio.create_task(self._run(request_id, scope, chat))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[pb.ChatResponse]) -> None:
        """The outcome is in the database (and the audit log); a caller who went away is not there to read it."""
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    async def _run(self, request_id: str, scope: CallScope, chat: ChatRequest) -> pb.ChatResponse:
        try:
            async with scope:
                result = await scope.complete(chat)
        except Exception as err:
            error = caller_error(err, log)
            await self._store.fail(request_id, self._clock(), error.kind.value, error.reason, error.message)
            raise
        response = self._respond(scope, result)
        await self._store.finish(request_id, response.SerializeToString(), self._clock())
        return response

    async def _keep(self) -> None:
        interval = self._config.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                now = self._clock()
                await self._store.renew(self._owner, now + self._config.lease_s)
                await self._take_over()
                await self._store.purge(now - self._config.keep_answers_s)
            except Exception:  # the database may be away a moment: the next round tries again
                log.exception("keeping deferred calls' leases failed")

    async def _take_over(self) -> None:
        now = self._clock()
        for row in await self._store.take_over(self._owner, now, now + self._config.lease_s):
            key = self._ring.get(row.key_id)
            if key is None or key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
                await self._store.fail(
                    row.request_id, now, "PERMISSION_DENIED", "KEY_REVOKED", "the call's key was revoked or expired"
                )
                continue
            assert row.request is not None
            request = pb.ChatRequest.FromString(row.request)
            # The wait counts from the call's acceptance; what is left of it may still gather others.
            remaining = row.accepted_at + row.defer_up_to_s - now
            request.defer_up_to_s = min(max(remaining, 1e-3), row.defer_up_to_s)
            info = CallInfo(tuple((row.metadata or {}).items()), None, row.peer, signed_in=key)
            scope = self._pipeline.call(info, CallKind.CHAT, "Chat", request.model)
            scope.call.record.deferred = {"resumed_from": row.request_id}
            log.info("resuming deferred call %s (its worker stopped)", row.request_id)
            self._serve(row.request_id, scope, self._parse(request))
