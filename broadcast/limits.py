"""Per-address limits on concurrent long-lived connections (WebSocket and SSE).

A viewer needs one or two connections; a script that opens thousands from one address would otherwise hold a
subscription, an outbox and a socket each. The count is per client address as the ASGI scope reports it (behind
a reverse proxy, run uvicorn with ``--proxy-headers`` and ``--forwarded-allow-ips`` so that is the viewer's
address, not the proxy's). Everything runs on the event loop, so no locks are needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def client_address(scope: Mapping[str, Any]) -> str:
    """The client's host from an ASGI scope; ``""`` when the server does not know it (a Unix socket, tests)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class ConnectionLimiter:
    """Counts open connections per address; ``acquire`` refuses once ``limit`` are open (0 means no limit).

    Entries exist only while an address has connections open, so the table is bounded by the open connections.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def count(self, address: str) -> int:
        return self._open.get(address, 0)

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; False (and nothing counted) when it is at the limit."""
        n = self._open.get(address, 0)
        if self.limit > 0 and n >= self.limit:
            return False
        self._open[address] = n + 1
        return True

    def release(self, address: str) -> None:
        n = self._open.get(address, 0) - 1
        if n > 0:
            self._open[address] = n
        else:
            self._open.pop(address, None)
