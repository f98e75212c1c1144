"""Running many LLM calls concurrently, bounded per model, without losing a failure.

Every call yields an outcome (a result or the error it raised), in input order, so a failed
request becomes a recorded row rather than a silent gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("pref_pipeline")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    value: R | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


async def gather_bounded(
    items: Sequence[T],
    call: Callable[[T], Awaitable[R]],
    *,
    max_concurrency: int,
    label: str = "calls",
    logger: logging.Logger | None = None,
) -> list[Outcome[R]]:
    """Run ``call`` on every item with at most ``max_concurrency`` in flight; log progress and rate."""
    logger = logger or log
    semaphore = asyncio.Semaphore(max_concurrency)
    total, done, failed = len(items), 0, 0
    started = time.perf_counter()
    step = max(1, total // 10)

    async def one(item: T) -> Outcome[R]:
        nonlocal done, failed
        async with semaphore:
            try:
                outcome = Outcome(await call(item), None)
            except Exception as exc:  # recorded per row; the caller decides whether the batch fails
                outcome = Outcome(None, f"{type(exc).__name__}: {exc}")
        done += 1
        failed += not outcome.ok
        if done % step == 0 or done == total:
            elapsed = time.perf_counter() - started
            logger.info("%s: %d/%d done, %d failed, %.1f/s", label, done, total, failed, done / max(elapsed, 1e-9))
        return outcome

    return list(await asyncio.gather(*(one(item) for item in items)))
