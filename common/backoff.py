"""How long to wait before reconnecting to a live source that keeps failing."""

from __future__ import annotations

import random


def backoff_delay(failures: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 for the first): exponential, capped, jittered.

    The jitter ("equal jitter": half fixed, half random) keeps many viewers' servers, or many sittings'
    workers, from reconnecting to a recovered origin in lockstep, while never waiting less than half the step.
    """
    # The exponent stops growing long before the cap matters, so a days-long outage cannot overflow a float.
    step = min(cap, base * 2.0 ** min(max(0, failures - 1), 32))
    return step / 2 + rng.uniform(0.0, step / 2)
