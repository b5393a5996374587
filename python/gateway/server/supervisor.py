"""`gateway serve --workers N`: N server processes on one address, forked and watched by a supervisor.

Each worker is the whole gateway (server/app.py `serve`) bound to the same address with SO_REUSEPORT, so the kernel
spreads new connections over them; one Python process (one event loop, one GIL) per core is the scaling unit. The
supervisor serves no calls. It:

- does once, before any worker starts, what must happen once per machine: the bootstrap key (printed once), the
  database schema and the config's teams (`prepare_state`); the retention purge runs in worker 0 only;
- imports the worker's code and loads the token vocabularies the config uses, then forks: the workers start in a
  fraction of a second and share those pages (the o200k_base vocabulary alone is ~72 MB) until they write them;
- restarts a worker that dies (logged, with its exit status; after one that lived under a minute it waits longer each
  time, up to 30 s), and marks it dead for the metrics;
- on SIGTERM or SIGINT sends SIGTERM to every worker, which drains as a lone server does (in-flight calls get up to
  `shutdown_grace_s`, then every pending audit record and ledger row is written), and exits once all have;
- serves the one /metrics endpoint for all workers from prometheus_client's multiprocess files.

Why fork and not spawn: a spawned worker imports everything and loads its vocabularies itself (~2 s and all of its
memory its own); forked, it starts from the supervisor's warm interpreter. Forking is safe because the supervisor
never creates what does not survive a fork: no thread (its loop is a plain `selectors` loop; numpy, which starts
BLAS threads on import, is not imported), no gRPC channel or server (gRPC's core starts with the first of them, in
the worker), no event loop. It checks that it runs a single thread before each fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import http.server
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gateway.config.schema import GatewayConfig

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("gateway.supervisor")

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_ALLOWANCE_S: Final = 30.0
"""After shutdown_grace_s, how long a stopping worker may take to write its pending records and exported spans
before it is killed."""
STABLE_S: Final = 60.0
"""A worker that lived this long is restarted at once; one that died sooner waits, longer each time."""
MAX_RESTART_DELAY_S: Final = 30.0


def worker_count(configured: int) -> int:
    """`server.workers` or --workers: 0 means one per core this process may run on."""
    if configured > 0:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(slots=True)
class _Worker:
    index: int
    pid: int
    started: float
    ready_fd: int | None
    ready: bool = False


@dataclass(slots=True)
class _Restart:
    due: float
    failures: int


@dataclass
class Supervisor:
    config: GatewayConfig
    address: str
    state_dir: Path
    metrics_flag: str | None
    """--metrics-address, resolved as a lone server does (server/app.py `resolve_metrics_address`)."""
    count: int
    http_address: str | None = None
    """--http-address: every worker serves the HTTP front door on it too (SO_REUSEPORT), as it serves gRPC."""
    _workers: dict[int, _Worker] = field(default_factory=dict)
    """By pid."""
    _restarts: dict[int, _Restart] = field(default_factory=dict)
    """By worker index: restarts waiting for their time."""
    _failures: dict[int, int] = field(default_factory=dict)
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    _wakeup: tuple[socket.socket, socket.socket] | None = None
    _metrics_server: http.server.HTTPServer | None = None
    _metrics_dir: str = ""
    _metrics_address: str = ""
    _stop_signal: int | None = None
    _stopping_since: float | None = None
    _serving: bool = False
    """Every worker of the first start has said it listens; before that, a worker that fails ends the gateway."""
    _exit_code: int = 0

    def run(self) -> int:
        """Prepares, starts the workers and watches them until a signal stops them all; returns the exit code."""
        self._metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        try:
            self._prepare()
            self._listen()
            for index in range(self.count):
                self._start(index)
            self._watch()
        finally:
            self._close()
        return self._exit_code

    # --- before the workers ---------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if "prometheus_client" in sys.modules:
            # Its value class (in-process or multiprocess files) is chosen when it is first imported.
            raise RuntimeError("prometheus_client was imported before the supervisor set PROMETHEUS_MULTIPROC_DIR")
        os.environ[MULTIPROC_ENV] = self._metrics_dir
        import asyncio

        from gateway.observe.drift_share import reset_folder
        from gateway.server.app import DRIFT_FOLDER, counted_models, prepare_state
        from gateway.tokens import TokenCounter

        if self.config.state.redis_url is None:
            log.warning(
                "%d workers without state.redis_url: key rate limits, concurrency limits and budget reservations "
                "are kept by each worker, so together the workers may admit up to %d times a limit (budget caps "
                "are checked against the shared ledger at each sync). Set state.redis_url to share them.",
                self.count,
                self.count,
            )
        if self.config.cache.backend == "memory":
            log.info("cache.backend memory: each worker keeps its own response cache")
        asyncio.run(prepare_state(self.config, self.state_dir))
        for thread in threading.enumerate():  # the database driver's, ending with its closed connections
            if thread is not threading.main_thread():
                thread.join(timeout=5)
        reset_folder(self.state_dir / DRIFT_FOLDER)
        TokenCounter().preload(counted_models(self.config))
        # Everything imported and loaded so far is shared with the workers; keep the collector off those pages.
        gc.collect()
        gc.freeze()

    def _listen(self) -> None:
        rsock, wsock = socket.socketpair()
        rsock.setblocking(False)
        wsock.setblocking(False)
        self._wakeup = (rsock, wsock)
        signal.set_wakeup_fd(wsock.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)  # wakes the loop through the wakeup fd
        self._selector.register(rsock, selectors.EVENT_READ, self._drain_wakeup)
        from gateway.server.app import resolve_metrics_address

        self._metrics_address = resolve_metrics_address(self.config, self.metrics_flag)
        if self._metrics_address:
            self._metrics_server = _metrics_http_server(self._metrics_address, self._metrics_dir)
            self._selector.register(self._metrics_server.socket, selectors.EVENT_READ, self._serve_scrape)
            host, port = self._metrics_server.socket.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            log.info("metrics of every worker at http://%s:%d/metrics", shown, port)

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum

    # --- the loop -------------------------------------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            for key, _ in self._selector.select(self._timeout()):
                key.data(key)
            self._reap()
            now = time.monotonic()
            if self._stop_signal is not None and self._stopping_since is None:
                self._stop_all(f"{signal.Signals(self._stop_signal).name} received")
            if self._stopping_since is not None:
                if not self._workers:
                    return
                if now - self._stopping_since > self.config.server.shutdown_grace_s + FLUSH_ALLOWANCE_S:
                    for worker in self._workers.values():
                        log.error("worker %d (pid %d) did not stop in time; killing it", worker.index, worker.pid)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(worker.pid, signal.SIGKILL)
                    self._stopping_since = now  # another round of waiting for the kills to be reaped
                continue
            for index, restart in list(self._restarts.items()):
                if restart.due <= now:
                    del self._restarts[index]
                    self._start(index)

    def _timeout(self) -> float | None:
        waits = [r.due - time.monotonic() for r in self._restarts.values()]
        if self._stopping_since is not None:
            waits.append(1.0)
        return max(0.0, min(waits)) if waits else None

    def _drain_wakeup(self, key: selectors.SelectorKey) -> None:
        with contextlib.suppress(BlockingIOError):
            while key.fileobj.recv(512):  # type: ignore[union-attr]
                pass

    def _serve_scrape(self, _key: selectors.SelectorKey) -> None:
        assert self._metrics_server is not None
        self._metrics_server.handle_request()

    def _on_ready(self, key: selectors.SelectorKey) -> None:
        fd = int(key.fd)
        data = os.read(fd, 16)
        self._selector.unregister(fd)
        os.close(fd)
        worker = next((w for w in self._workers.values() if w.ready_fd == fd), None)
        if worker is None:
            return
        worker.ready_fd = None
        if not data:
            return  # it exited before it listened; _reap tells why
        worker.ready = True
        log.info("worker %d (pid %d) serving", worker.index, worker.pid)
        if not self._serving and len(self._workers) == self.count and all(w.ready for w in self._workers.values()):
            self._serving = True
            log.info("%d workers serving on %s", self.count, self.address)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            if worker.ready_fd is not None:
                self._selector.unregister(worker.ready_fd)
                os.close(worker.ready_fd)
            self._mark_dead(pid)
            how = _exit_status(status)
            if self._stopping_since is not None:
                log.info("worker %d (pid %d) stopped (%s)", worker.index, pid, how)
            elif not self._serving:
                log.error("worker %d (pid %d) %s while starting; stopping the gateway", worker.index, pid, how)
                self._exit_code = 1
                self._stop_all("a worker failed to start")
            else:
                lived = time.monotonic() - worker.started
                failures = 0 if lived >= STABLE_S else self._failures.get(worker.index, 0) + 1
                self._failures[worker.index] = failures
                delay = 0.0 if failures == 0 else min(MAX_RESTART_DELAY_S, 0.5 * 2 ** (failures - 1))
                log.warning(
                    "worker %d (pid %d) %s after %.1f s; restarting it%s",
                    worker.index,
                    pid,
                    how,
                    lived,
                    f" in {delay:g} s" if delay else "",
                )
                self._restarts[worker.index] = _Restart(time.monotonic() + delay, failures)

    def _stop_all(self, why: str) -> None:
        self._stopping_since = time.monotonic()
        self._restarts.clear()
        log.info(
            "%s: stopping %d workers (in-flight calls get up to %g s)",
            why,
            len(self._workers),
            self.config.server.shutdown_grace_s,
        )
        for worker in self._workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)

    def _mark_dead(self, pid: int) -> None:
        """Its live gauges leave the sums (in-flight calls, breaker states); its counters and histograms stay."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]

    # --- the workers ----------------------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        _check_single_thread()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            self._run_worker(index, write_fd)  # never returns
        os.close(write_fd)
        self._workers[pid] = _Worker(index, pid, time.monotonic(), read_fd)
        self._selector.register(read_fd, selectors.EVENT_READ, self._on_ready)
        log.info("worker %d started (pid %d)", index, pid)

    def _run_worker(self, index: int, ready_fd: int) -> None:
        code = 1
        try:
            self._leave_supervisor()
            _tag_logs(index)
            _die_with_parent()
            import uvloop

            from gateway.server.app import WorkerRole, serve

            role = WorkerRole(index, self.count, record_metrics=bool(self._metrics_address), ready_fd=ready_fd)
            uvloop.run(
                serve(
                    self.config,
                    address=self.address,
                    state_dir=self.state_dir,
                    worker=role,
                    http_address=self.http_address,
                )
            )
            code = 0
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _leave_supervisor(self) -> None:
        """In a new worker: drop the supervisor's signal handling and descriptors (they are copies; closing them here
        leaves the supervisor's open)."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for worker in self._workers.values():
            if worker.ready_fd is not None:
                os.close(worker.ready_fd)
        self._selector.close()
        if self._wakeup is not None:
            for sock in self._wakeup:
                sock.close()
        if self._metrics_server is not None:
            self._metrics_server.socket.close()

    def _close(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.server_close()
        self._selector.close()
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for sock in self._wakeup:
                sock.close()
        shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log.info("stopped")


def _check_single_thread() -> None:
    """A thread running at a fork may hold a lock (malloc's, the import lock, a library's) that the child then never
    sees released. The supervisor never starts one; this catches a change that would (an import that starts native
    threads, as numpy's BLAS does)."""
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    tasks = Path("/proc/self/task")
    if tasks.is_dir() and len(list(tasks.iterdir())) > 1:
        others += [
            (task / "comm").read_text().strip()
            for task in tasks.iterdir()
            if int(task.name) != threading.get_native_id()
        ]
    if others:
        raise RuntimeError(f"the supervisor must run a single thread to fork safely; found {sorted(set(others))}")


def _exit_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def _tag_logs(index: int) -> None:
    """Every log line of a worker names it."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        fmt = formatter._fmt if formatter is not None and formatter._fmt else "%(levelname)s %(name)s: %(message)s"
        handler.setFormatter(logging.Formatter(fmt.replace("%(name)s", f"[worker {index}] %(name)s", 1)))


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM if the supervisor dies (SIGKILL, a crash), so no worker outlives
    it holding the port; SIGTERM, so it still drains."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    registry: CollectorRegistry
    timeout = 5  # a client that connects and sends nothing does not hold the supervisor's loop for long

    def do_GET(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body = generate_latest(self.registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


def _metrics_http_server(address: str, folder: str) -> http.server.HTTPServer:
    """One /metrics for every worker: prometheus_client's MultiProcessCollector reads each worker's files (counters
    and histograms summed; gauges per their mode). Served by the supervisor's own loop, one scrape at a time."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from gateway.observe.metrics_server import parse_address

    host, port = parse_address(address)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    handler = type("MetricsHandler", (_MetricsHandler,), {"registry": registry})

    class Server(http.server.HTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, port), handler)


def run_supervisor(
    config: GatewayConfig,
    *,
    address: str,
    state_dir: Path,
    metrics_address: str | None,
    workers: int,
    http_address: str | None = None,
) -> int:
    """`gateway serve` with workers > 1; returns the exit code."""
    from gateway.server.openai_http import resolve_http_address

    http = resolve_http_address(config, http_address)
    for shown in (address, http):
        if shown and shown.rpartition(":")[2] == "0":
            raise ValueError(f"--workers needs a fixed port to share; {shown} asks for any free one")
    return Supervisor(config, address, state_dir, metrics_address, workers, http_address=http).run()
