"""A separate publisher process for the multi-process ordering test.

Usage: ``python tests/redis_publisher_proc.py URL PREFIX CHANNEL NAME COUNT``

It announces itself by INCR on ``PREFIX:test:ready``, waits for a token on ``PREFIX:test:go`` (so all publishers
start together and really interleave), then publishes COUNT events ``{"proc": NAME, "i": 0..COUNT-1}`` one after
another through :class:`RedisBroker`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

# Run as a script from anywhere: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis  # noqa: E402

from broadcast.broker_redis import RedisBroker  # noqa: E402

GO_TIMEOUT_S = 60


async def main(url: str, prefix: str, channel: str, name: str, count: int) -> int:
    control = Redis.from_url(url, decode_responses=True)
    broker = RedisBroker(url, prefix=prefix)
    try:
        await control.incr(f"{prefix}:test:ready")
        if await control.blpop([f"{prefix}:test:go"], timeout=GO_TIMEOUT_S) is None:
            print(f"{name}: no go signal", file=sys.stderr)
            return 2
        for i in range(count):
            await broker.publish(channel, "speaker", {"proc": name, "i": i})
        return 0
    finally:
        await broker.close()
        await control.aclose()


if __name__ == "__main__":
    url, prefix, channel, name, count = sys.argv[1:6]
    sys.exit(asyncio.run(main(url, prefix, channel, name, int(count))))
