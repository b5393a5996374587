"""What a stage of the chain is, and what a stage may attach to one answer.

A stage is one object shared by every call, with up to three hooks:
- `enter(call)` on the way in, in chain order. It may refuse the call by raising; a stage that takes something
  (a limit slot, a budget reservation) takes it here, all or none.
- `end(call)` once the whole answer has come back, in chain order, before the caller gets its last chunk.
- `exit(call, error)` on the way out, in reverse chain order, for every stage whose `enter` returned, whatever the
  outcome (`error` is None for a served call, else the exception: a domain error, a bug, or a cancel). What `enter`
  took, `exit` gives back.
A hook returns None, or an awaitable when it does I/O: the chain awaits only those, so a call pays for an await only
where a stage really waits. A stage that reads only what every call has (its key, metadata, record) takes any
`Call`, and serves chat and embedding chains alike; one that reads the request takes a `ChatCall` or an `EmbedCall`.

An answer filter is per call (a stage's `enter` registers it on `call.filters`): it sees every chunk of the answer,
raw from the provider or the cache, in registration order, and may rewrite the chunk's text in place; `finish`
returns what it still holds back. Unary answers pass through the same filters as one chunk, so guards, counting and
capture are written once.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.chat import ChatDelta
    from gateway.pipeline.call import Call


class Stage(Protocol):
    name: str
    """Short and stable: the trace names the stage's timing after it."""

    def enter(self, call: Call[Any]) -> Awaitable[None] | None: ...

    def end(self, call: Call[Any]) -> Awaitable[None] | None: ...

    def exit(self, call: Call[Any], error: BaseException | None) -> Awaitable[None] | None: ...


class BaseStage:
    """Hooks that do nothing, for stages that need only some of them."""

    name = "stage"

    def enter(self, call: Call[Any]) -> Awaitable[None] | None:
        return None

    def end(self, call: Call[Any]) -> Awaitable[None] | None:
        return None

    def exit(self, call: Call[Any], error: BaseException | None) -> Awaitable[None] | None:
        return None


class AnswerFilter(Protocol):
    def chunk(self, delta: ChatDelta) -> None: ...

    def finish(self) -> ChatDelta | None: ...
