"""The bounded queue between an ``HlsWriter``'s producers and its worker thread. Each class of item has its own
limit (``BACKLOG_LIMITS``), so that a worker that falls behind costs dropped, counted video rather than unbounded
memory or a blocked producer on the event loop; audio is never dropped for being slow, its limit is deep enough
that only a stuck worker reaches it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType

# How many items of each class may wait for the worker. Raw frames are the memory-hungry kind (a 1080p frame is
# 3 MB), so only about a second of them; compressed packets are small and arrive in bursts (a whole segment at
# once from an HLS input), so half a minute of them. Audio is never dropped for being slow: only a writer stuck
# for minutes fills its limit, and that is logged.
BACKLOG_LIMITS = MappingProxyType({"frame": 30, "packet": 900, "audio": 6000, "control": 10_000})


class Backlog:
    """A FIFO between producers and the writer's worker, bounded per class of item (``BACKLOG_LIMITS``' keys).

    ``offer`` of a class at its limit drops the item (and counts it) or, with ``block``, waits for room: only
    producers that are themselves worker threads reading media faster than real time should block.
    """

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._cond = threading.Condition()
        self._items: deque[tuple[str, object]] = deque()
        self._limits = dict(limits)
        self._queued = dict.fromkeys(limits, 0)
        self._dropped = dict.fromkeys(limits, 0)
        self._shut = False

    def offer(self, item: object, cls: str, *, block: bool = False, force: bool = False) -> bool:
        """Queue ``item``; ``False`` when it was dropped or the backlog is shut. ``force`` ignores the limit."""
        with self._cond:
            while not force and not self._shut and self._queued[cls] >= self._limits[cls]:
                if not block:
                    self._dropped[cls] += 1
                    return False
                self._cond.wait()
            if self._shut:
                return False
            self._items.append((cls, item))
            self._queued[cls] += 1
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None) -> object | None:
        """The oldest item, waiting up to ``timeout`` seconds (forever if ``None``); ``None`` if there was none."""
        with self._cond:
            if not self._items:
                self._cond.wait_for(lambda: bool(self._items), timeout)
            if not self._items:
                return None
            cls, item = self._items.popleft()
            self._queued[cls] -= 1
            self._cond.notify_all()
            return item

    def shut(self) -> None:
        """Refuse new items from now on (queued ones stay for the worker) and release blocked producers."""
        with self._cond:
            self._shut = True
            self._cond.notify_all()

    def abandon(self) -> list[object]:
        """Shut and empty the backlog: the worker is gone. Returns what was queued."""
        with self._cond:
            self._shut = True
            items = [item for _, item in self._items]
            self._items.clear()
            self._queued = dict.fromkeys(self._queued, 0)
            self._cond.notify_all()
            return items

    def dropped(self, cls: str) -> int:
        return self._dropped[cls]

    def __len__(self) -> int:
        return len(self._items)
