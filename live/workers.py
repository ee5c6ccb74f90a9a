"""``server.py --workers N``: N server processes serving one port, each restarted when it dies.

The parent binds the listening socket once and starts each worker as ``python server.py … --worker-fd FD`` with
that socket inherited; the kernel gives each new connection to whichever worker accepts it first. Connections
waiting in the socket's queue survive a worker's death (another worker accepts them); those the dead worker held
are cut, and their WebSocket and SSE clients reconnect and resume from their last (epoch, seq) on any worker,
since Redis holds the channels. Feeds move between workers by lease (``live.lease``): the parent knows nothing of
them, and does no serving itself.

A worker that exits is started again: at once when it had run a while (it crashed or was killed), after a
growing backoff when workers keep dying young; after ``GIVE_UP_AFTER`` young deaths in a row the parent stops
them all and exits with the last one's code, as a configuration error (a bad ``DATABASE_URL``) would only fail
again. SIGTERM or SIGINT stop every worker gracefully: SIGTERM, then SIGKILL after ``STOP_S``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from common.backoff import backoff_delay

log = logging.getLogger(__name__)

# A worker that dies sooner than this after starting counts as failing to start.
YOUNG_S = 15.0
GIVE_UP_AFTER = 5
# How long stopping workers get to finish (uvicorn's graceful shutdown, the feed's drain) before SIGKILL.
STOP_S = 30.0
_POLL_S = 0.2


@dataclass
class RestartPolicy:
    """Whether, and after how long, to start a worker again once one exited; sans I/O.

    ``exited(lived_s)`` returns the delay before the restart, or ``None`` to give up.
    """

    young_s: float = YOUNG_S
    give_up_after: int = GIVE_UP_AFTER
    rng: random.Random = field(default_factory=random.Random)
    young_deaths: int = 0  # in a row

    def exited(self, lived_s: float) -> float | None:
        if lived_s >= self.young_s:
            self.young_deaths = 0
            return 0.0
        self.young_deaths += 1
        if self.young_deaths >= self.give_up_after:
            return None
        return backoff_delay(self.young_deaths, base=0.5, cap=10.0, rng=self.rng)


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket all workers share, inheritable by them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def worker_socket(fd: int) -> socket.socket:
    """In a worker: the parent's listening socket, from its inherited file descriptor."""
    return socket.socket(fileno=fd)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    started: float


def run_workers(
    count: int,
    sock: socket.socket,
    script: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    policy: RestartPolicy | None = None,
) -> int:
    """Run ``count`` workers (``python script ARGS --worker-fd FD``) until SIGTERM or SIGINT; returns the exit code."""
    policy = policy or RestartPolicy()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    fd = sock.fileno()

    def start(index: int) -> _Worker:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args, "--worker-fd", str(fd)], pass_fds=(fd,), env=dict(env)
        )
        log.info("worker %d started as pid %d", index, proc.pid)
        return _Worker(index, proc, time.monotonic())

    workers = [start(i) for i in range(count)]
    pending: dict[int, float] = {}  # worker index -> monotonic time to start it again
    code = 0
    try:
        while not stopping:
            time.sleep(_POLL_S)
            now = time.monotonic()
            for i, worker in enumerate(workers):
                if worker.index in pending:
                    if now >= pending[worker.index]:
                        del pending[worker.index]
                        workers[i] = start(worker.index)
                    continue
                status = worker.proc.poll()
                if status is None:
                    continue
                delay = policy.exited(now - worker.started)
                log.warning("worker %d (pid %d) exited with %d", worker.index, worker.proc.pid, status)
                if delay is None:
                    log.error("workers keep failing to start; stopping")
                    code = status or 1
                    stopping = True
                    break
                pending[worker.index] = now + delay
    finally:
        _stop_all([w.proc for w in workers])
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_S
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_with_parent(interval_s: float = 1.0) -> None:
    """In a worker: SIGTERM ourselves when the parent is gone (killed), so no worker serves on unsupervised."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.warning("the parent process is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
