"""Cap glibc's malloc arenas for a long-running server process.

glibc gives each thread that meets contention an arena of its own (up to 8 per core), and memory freed in one is
reused only by the threads that land on it, so a server whose caption engine, archive and exports work in thread
pools keeps fragmenting more of them: in the whole-service soak, RSS grew +30 MiB/h with the default and +17 MiB/h
with two arenas, the arenas' share flat (docs/benchmarks.md, "Soak (whole service)"), at the same CPU and real-time
factor. ``MALLOC_ARENA_MAX`` in the environment is glibc's own switch and wins; this applies the same cap when it is
unset, before the model and the pools start their threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # from glibc's malloc.h
DEFAULT_ARENAS = 2


def cap_arenas(arenas: int = DEFAULT_ARENAS, env: dict[str, str] | None = None) -> bool:
    """Set glibc's ``M_ARENA_MAX`` to ``arenas`` unless ``MALLOC_ARENA_MAX`` is set; True if applied. A no-op
    (False) on a C library without ``mallopt`` (musl, macOS)."""
    environ = os.environ if env is None else env
    if "MALLOC_ARENA_MAX" in environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
