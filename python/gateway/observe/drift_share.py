"""Model health for every worker of a machine: each worker's drift windows, merged when Insights.GetModelHealth asks.

Under `--workers`, each worker keeps its own `DriftMonitor` over the calls it serves, as one process does, and also
the last `history_windows(config)` closed windows of each (model, provider). About once a second, when it observed
calls since, it writes them with its open windows to `<state_dir>/drift/<pid>.json` (closed windows never change, so
each is encoded once). The worker that takes a GetModelHealth call sums every worker's windows of the same index
(all workers share the machine's clock, so windows align), its own read from memory, and replays the sums in order
through a fresh monitor: the figures, baselines and flags are those one monitor would have computed over all the
machine's calls. A worker that died leaves its file; its windows count until they are older than the history.

What stays per worker: the log line and the `llm_gateway_drift_flags` counter when a flag is raised come from each
worker's own monitor, over its own share of the calls. A worker's file lags its memory by up to `interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gateway.config.observe import DriftConfig
from gateway.observe.drift import DriftMonitor, ModelHealth, decode_window, encode_window, history_windows

log = logging.getLogger("gateway.observe")

Encoded = list[list[Any]]
"""[[model, provider, window index, encoded window], ...]"""


class SharedDrift:
    def __init__(
        self,
        monitor: DriftMonitor,
        config: DriftConfig,
        folder: Path,
        *,
        clock: Callable[[], float],
        interval_s: float = 1.0,
        name: str | None = None,
    ) -> None:
        """`name`: this worker's file in `folder` (default its pid)."""
        self._monitor = monitor
        self._config = config
        self._folder = folder
        self._clock = clock
        self._interval_s = interval_s
        self._path = folder / f"{name or os.getpid()}.json"
        self._written = -1
        self._encoded: dict[tuple[str, str, int], dict[str, object]] = {}
        """Closed windows already encoded, by (model, provider, index): a closed window never changes."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.get_running_loop().create_task(self._write_forever(), name="drift-share")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._write_if_changed()

    async def health(self, model: str = "", provider: str = "") -> list[ModelHealth]:
        """Every (model, provider) the machine's workers saw, narrowed to `model` and `provider` when given."""
        own = self._encode()
        return await asyncio.to_thread(self._merged_health, own, model, provider)

    # --- writing ----------------------------------------------------------------------------------------------------

    def _encode(self) -> Encoded:
        encoded: Encoded = []
        cache: dict[tuple[str, str, int], dict[str, object]] = {}
        for model, provider, index, window, closed in self._monitor.windows():
            data = self._encoded.get((model, provider, index)) if closed else None
            if data is None:
                data = encode_window(window)
            if closed:
                cache[(model, provider, index)] = data
            encoded.append([model, provider, index, data])
        self._encoded = cache
        return encoded

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._write_if_changed()
            except OSError as err:
                log.warning("cannot share drift windows with the other workers (%s); retrying", err)

    async def _write_if_changed(self) -> None:
        changes = self._monitor.changes
        if changes == self._written:
            return
        payload = orjson.dumps(self._encode())
        await asyncio.to_thread(_replace, self._path, payload)
        self._written = changes

    # --- reading (in a worker thread) -------------------------------------------------------------------------------

    def _merged_health(self, own: Encoded, model: str, provider: str) -> list[ModelHealth]:
        now_index = int(self._clock() // self._config.window_s)
        oldest = now_index - history_windows(self._config)
        sums: dict[tuple[str, str, int], dict[str, Any]] = {}
        for windows in (own, *self._others(oldest)):
            for m, p, index, data in windows:
                if (model and m != model) or (provider and p != provider) or index < oldest:
                    continue
                try:
                    window = decode_window(data)
                except ValueError as err:
                    log.warning("skipped a drift window another worker wrote: %s", err)
                    continue
                total = sums.setdefault((m, p, int(index)), {})
                for name, acc in window.items():
                    mine = total.get(name)
                    if mine is None:
                        total[name] = acc
                    else:
                        mine.merge(acc)
        replay = DriftMonitor(self._config, clock=self._clock)
        for (m, p, index), window in sorted(sums.items(), key=lambda item: item[0]):
            replay.absorb(m, p, index, window)
        return replay.health()

    def _others(self, oldest: int) -> list[Encoded]:
        """The other workers' files; one whose every window is older than the history is deleted."""
        found: list[Encoded] = []
        for path in sorted(self._folder.glob("*.json")):
            if path == self._path:
                continue
            try:
                windows = orjson.loads(path.read_bytes())
            except FileNotFoundError:
                continue
            except (OSError, orjson.JSONDecodeError) as err:
                log.warning("skipped drift file %s: %s", path, err)
                continue
            if not isinstance(windows, list):
                continue
            if all(not isinstance(w, list) or len(w) != 4 or w[2] < oldest for w in windows):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            found.append(windows)
        return found


def _replace(path: Path, payload: bytes) -> None:
    """Written beside and renamed over: a reader sees the old file or the new one, never half of one."""
    partial = path.with_suffix(".part")
    partial.write_bytes(payload)
    partial.replace(path)


def reset_folder(folder: Path) -> None:
    """Removes the files of a previous run (the supervisor calls it before its workers start)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix in (".json", ".part"):
                with contextlib.suppress(OSError):
                    path.unlink()
