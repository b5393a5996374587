"""What every provider batch API adapter implements, and the HTTP they share.

An adapter wraps the provider's own chat adapter: each item's request body is the one that adapter would send for a
Chat call (`build_request`), and each answer is parsed by its `parse_response`, so a batch speaks exactly the wire
format of the provider's interactive API, inside the batch API's envelope. Items travel under upstream ids of the
gateway's own (`item-<position>`): providers restrict custom ids differently (Anthropic: 64 characters of
`[a-zA-Z0-9_-]`), and the caller's custom_id never leaves the gateway.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from gateway.chat import ChatRequest, ChatResult
from gateway.config.schema import ModelConfig
from gateway.errors import ProviderError
from gateway.providers.base import Provider
from gateway.providers.http import HttpProvider, malformed
from gateway.records.batches import ItemError, Status

READ_CHUNK = 1 << 16
CLOCK_SKEW_S = 60.0
"""How far the provider's clock may be behind ours when a restart looks for the batch it was creating."""


def upstream_id(position: int) -> str:
    """The id an item travels under at the provider."""
    return f"item-{position}"


def position_of(custom_id: str) -> int | None:
    """The item's position from its upstream id; None for an id the gateway did not send."""
    head, _, number = custom_id.partition("-")
    return int(number) if head == "item" and number.isdigit() else None


@dataclass(frozen=True, slots=True)
class Line:
    """One item as an adapter sends it."""

    position: int
    request: ChatRequest


@dataclass(frozen=True, slots=True)
class RemoteState:
    """A provider's batch as one poll saw it."""

    status: Status
    output: Any = None
    """Where the results are, in the adapter's own terms (file ids, a results URL, inline answers)."""
    error: str = ""
    """Why the provider refused the whole batch (status FAILED)."""


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """One item's outcome as the provider gave it: an answer or an error."""

    position: int
    answer: ChatResult | None = None
    error: ItemError | None = None


def error_of(err: ProviderError) -> ItemError:
    return ItemError(err.kind.value, err.reason, err.message)


class BatchApi(ABC):
    """A provider's batch API. Every method raises ProviderError on an upstream failure; the poller tries again at
    its next round."""

    uploads: bool = False
    """Whether the items go up as a file first (`upload`), or inline in `create`."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def upload(self, job_id: str, lines: list[Line], model: ModelConfig) -> str:
        """The id of the uploaded input file (adapters with `uploads`)."""
        raise NotImplementedError

    @abstractmethod
    async def find(self, job_id: str, since: float, count: int) -> str | None:
        """The provider's batch an earlier `create` for `job_id` made at or after `since` (epoch s), with `count`
        items (those the attempt sent), if there is one: what a restart that crashed during `create` looks for before
        creating another."""

    @abstractmethod
    async def create(self, job_id: str, file_id: str | None, lines: list[Line], model: ModelConfig, window: str) -> str:
        """Creates the batch; returns the provider's id of it."""

    @abstractmethod
    async def poll(self, batch_id: str) -> RemoteState: ...

    @abstractmethod
    def results(self, batch_id: str, state: RemoteState, model: ModelConfig) -> AsyncIterator[RemoteResult]:
        """The items' outcomes of an ended batch, in the provider's order."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> None: ...


class HttpBatchApi(BatchApi):
    """A batch API over HTTP, with the provider's own error mapping."""

    provider: HttpProvider

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        data: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
    ) -> bytes:
        """The body of a 2xx answer; the provider's error mapping for any other."""
        provider = self.provider
        timeout = aiohttp.ClientTimeout(total=provider.config.timeout_s, sock_connect=provider.config.connect_timeout_s)
        body: bytes | aiohttp.FormData | None = orjson.dumps(json) if json is not None else data
        sent = dict(headers)
        if json is not None:
            sent["content-type"] = "application/json"
        try:
            async with provider.session().request(
                method, url, data=body, headers=sent, params=params, timeout=timeout, allow_redirects=False
            ) as response:
                payload = await response.read()
                if response.status >= 300:
                    raise provider.map_error(response.status, response.headers, payload)
                return payload
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unanswered(exc) from None

    async def fetch_jsonl(
        self, url: str, *, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Any]:
        """The objects of a JSON Lines answer (GET), each as its line arrives: a results file of any size is never
        held whole. The timeout bounds each read, not the whole download."""
        provider = self.provider
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=provider.config.connect_timeout_s, sock_read=provider.config.timeout_s
        )
        try:
            async with provider.session().get(
                url, headers=headers, params=params, timeout=timeout, allow_redirects=False
            ) as response:
                if response.status >= 300:
                    raise provider.map_error(response.status, response.headers, await response.read())
                pending = b""
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        if line.strip():
                            yield self._line(line)
                if pending.strip():
                    yield self._line(pending)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unanswered(exc) from None

    def _line(self, line: bytes) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            raise malformed(self.provider.name, "a line of a batch's results is not JSON") from None

    def _unanswered(self, exc: BaseException) -> ProviderError:
        name = self.provider.name
        return ProviderError(
            f"provider {name!r}'s batch API did not answer ({type(exc).__name__})",
            provider=name,
            reason="UPSTREAM_UNAVAILABLE",
        )

    async def fetch_json(self, method: str, url: str, **options: Any) -> Any:
        raw = await self.fetch(method, url, **options)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise malformed(self.provider.name, "a batch API answer is not JSON") from None

    def parse_answer(self, payload: Any, model: ModelConfig) -> ChatResult | ItemError:
        """An item's answer body through the chat adapter's own parser."""
        try:
            return self.provider.parse_response(payload, model)
        except ProviderError as err:
            return error_of(err)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            return error_of(malformed(self.provider.name, f"unexpected answer shape ({type(exc).__name__})"))

    def upstream_error(self, status: int, body: Any) -> ItemError:
        """An item's non-2xx answer through the provider's error mapping."""
        return error_of(self.provider.map_error(status, {}, orjson.dumps(body)))


def rfc3339(value: Any) -> float:
    """An RFC 3339 time as epoch seconds; 0 for none (or one that does not parse)."""
    if not isinstance(value, str) or not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def created_since(created_at: float, since: float) -> bool:
    """Whether a provider's batch was created at or after `since` (our clock), give or take the skew: a batch made
    before (an earlier attempt of the same job) is not the one a restart looks for."""
    return created_at >= since - CLOCK_SKEW_S
