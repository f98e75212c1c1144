"""Running many LLM calls concurrently, bounded per model, without losing a failure.

Every call yields an outcome (a result or the error it raised), in input order, so a failed
request becomes a recorded row rather than a silent gap.
"""

from __future__ import annotations

import asyncio
import gc
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


class Progress:
    """Counts and rate of one set of calls for the logs: every 10 % and at least every ``every_s`` seconds.

    ``bar`` (a ``ProgressBar``, optional) is updated on every call so a person at a terminal can watch.
    """

    def __init__(self, total: int, label: str, logger: logging.Logger | None = None, *,
                 bar: ProgressBar | None = None, every_s: float = 30.0):
        self.total, self.label, self.logger, self.bar = total, label, logger or log, bar
        self.done = self.cached = self.failed = 0
        self.started = self._last_log = time.perf_counter()
        self._step = max(1, total // 10)
        self._every_s = every_s
        self._logged_done = -1
        if bar is not None:
            bar.add_total(total)

    def update(self, *, ok: bool, cached: bool = False, n: int = 1) -> None:
        self.done += n
        self.failed += 0 if ok else n
        self.cached += n if cached else 0
        if self.bar is not None:
            self.bar.update(n, ok=ok, cached=cached)
        now = time.perf_counter()
        crossed = self.done // self._step != (self.done - n) // self._step
        if crossed or self.done == self.total or now - self._last_log >= self._every_s:
            self._last_log = now
            self.log()

    def finish(self) -> None:
        """Log the final figures unless the last line already showed them."""
        if self.done and self._logged_done != self.done:
            self.log()

    def log(self) -> None:
        self._logged_done = self.done
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.logger.info("%s: %d/%d done (%d from cache), %d failed, %.1f/s", self.label, self.done, self.total,
                         self.cached, self.failed, self.done / elapsed)


class ProgressBar:
    """One tqdm bar for a step (all its models and rounds); a no-op unless enabled."""

    def __init__(self, label: str, enabled: bool):
        self._bar = None
        self.cached = self.failed = 0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=0, desc=label, unit="call", dynamic_ncols=True, mininterval=0.5)

    def add_total(self, n: int) -> None:
        if self._bar is not None:
            self._bar.total += n
            self._bar.refresh()

    def update(self, n: int, *, ok: bool, cached: bool) -> None:
        if self._bar is None:
            return
        self.cached += n if cached else 0
        self.failed += 0 if ok else n
        self._bar.set_postfix(cached=self.cached, failed=self.failed, refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def freeze_heap() -> None:
    """Take every object alive now out of the garbage collector's scans (``gc.freeze``).

    Called once the heavy libraries are imported and the definitions built: Dagster, pandas and GX leave
    ~400,000 long-lived objects, and each full collection walks them all while a step builds thousands of
    rows; in a warm judgments step that was most of its time. Frozen objects are still freed by reference
    counting; only a cycle among them would outlive the process.
    """
    gc.freeze()
