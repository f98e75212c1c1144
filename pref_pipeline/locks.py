"""One writer per prompt batch and step: the same batch started twice at once does not pay twice.

A step that calls models (candidates, judgments) holds a file lock under the home for its batch
while it calls. A second run of the same batch waits for it, then finds every answer in the
response cache, so it pays for nothing the first one paid for. Different batches never wait for
each other.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from filelock import FileLock, Timeout

from pref_pipeline.paths import Home


@contextlib.contextmanager
def batch_step_lock(home: Home, batch: str, step: str, logger: logging.Logger | None = None) -> Iterator[None]:
    folder = home.root / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"{batch}.{step}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        (logger or logging.getLogger("pref_pipeline")).warning(
            "batch %r: %s is being made by another run (lock %s); waiting for it, then answers come from the "
            "cache", batch, step, lock.lock_file)
        started = time.monotonic()
        lock.acquire()
        (logger or logging.getLogger("pref_pipeline")).info("batch %r: waited %.1f s for the other run's %s",
                                                            batch, time.monotonic() - started, step)
    try:
        yield
    finally:
        lock.release()

