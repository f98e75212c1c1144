"""Rate budgets shared by every process that calls the same model: one SQLite file under the home.

``rpm`` and ``tpm`` are enforced by pyrate-limiter: its ``Limiter`` over a ``StateBucket`` with the
``GCRA`` algorithm (a leaky bucket kept as one "theoretical arrival time" per rate), so requests
are paced evenly rather than sent in bursts at the start of each minute. pyrate-limiter keeps GCRA
state in memory, Redis or a ``multiprocessing.Manager``; ``SQLiteStateStore`` below keeps it in one
row of a SQLite file instead (its ``StateStore`` interface: read, step, write, atomically), so runs
started separately on one machine, or steps in several processes, draw on one budget. SQLite's own
write lock (``BEGIN IMMEDIATE``) makes each step atomic across processes; the clock is wall time.

The same file holds the 429 pause: when any process gets HTTP 429 for a model, it records "paused
until" for that model, and every process waits it out before starting another request.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from pyrate_limiter import GCRA, Duration, Limiter, Rate, SingleBucketFactory, StateBucket, StateStore, WallClock

BUSY_TIMEOUT_S = 30.0  # how long a process waits for another's SQLite write lock (each holds it for a millisecond)


def _connect(path: Path | None) -> sqlite3.Connection:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path) if path is not None else ":memory:", timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None, check_same_thread=False)
    # Switching a new file to WAL takes an exclusive lock that SQLite does not wait for with the busy timeout: two
    # processes opening the file at the same moment can get "database is locked" at once. Try again until the
    # timeout (the other process holds it for a moment).
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("CREATE TABLE IF NOT EXISTS gcra_state (key TEXT PRIMARY KEY, state TEXT NOT NULL)")
            connection.execute("CREATE TABLE IF NOT EXISTS paused (key TEXT PRIMARY KEY, until_s REAL NOT NULL)")
            return connection
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteStateStore(StateStore):
    """One key's GCRA state in a SQLite file, read, stepped and written in one write transaction."""

    is_async = False
    default_clock = WallClock()  # compared across processes: wall time, not a per-process monotonic clock

    def __init__(self, connection: sqlite3.Connection, key: str, lock: threading.Lock):
        self.connection, self.key, self._lock = connection, key, lock

    def _load(self, algorithm, rates):
        row = self.connection.execute("SELECT state FROM gcra_state WHERE key = ?", (self.key,)).fetchone()
        if row is None:
            return algorithm.initial(rates)
        state = algorithm.decode(row[0].split(","))
        return state if len(state) == len(rates) else algorithm.initial(rates)

    def check(self, algorithm, rates, now, weight):
        with self._lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                new_state, decision = algorithm.step(rates, self._load(algorithm, rates), now, weight)
                if decision.allowed:
                    self.connection.execute("INSERT INTO gcra_state (key, state) VALUES (?, ?) ON CONFLICT(key) "
                                            "DO UPDATE SET state = excluded.state",
                                            (self.key, ",".join(str(int(v)) for v in new_state)))
                self.connection.execute("COMMIT")
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            return decision

    def read(self, algorithm, rates):
        with self._lock:
            return self._load(algorithm, rates)

    def reset(self) -> None:
        with self._lock:
            self.connection.execute("DELETE FROM gcra_state WHERE key = ?", (self.key,))


class SharedLimits:
    """The budgets file of one home; ``limiter`` and the pause methods take an endpoint key.

    ``path=None`` keeps the same state in a private in-memory database (one process only): for
    callers that have no home, such as a unit test of the pacing.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self.connection = _connect(path)

    def limiter(self, key: str, limit: int, burst: int) -> Limiter:
        """A limiter admitting ``limit`` units a minute for ``key``, evenly, with at most ``burst`` at once."""
        bucket = StateBucket([Rate(limit, Duration.MINUTE, burst=burst)], algorithm=GCRA(),
                             store=SQLiteStateStore(self.connection, key, self._lock))
        # buffer_ms=0: sleep exactly the wait GCRA computes (the default 50 ms extra would slow an even pace).
        return Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=0)

    def pause(self, key: str, seconds: float) -> float:
        """Hold back ``key`` for ``seconds`` from now (never shortening a longer pause); the pause's end (epoch s)."""
        until = time.time() + seconds
        with self._lock:
            self.connection.execute("INSERT INTO paused (key, until_s) VALUES (?, ?) ON CONFLICT(key) "
                                    "DO UPDATE SET until_s = max(until_s, excluded.until_s)", (key, until))
        return until

    def paused_for(self, key: str) -> float:
        """Seconds until ``key``'s pause ends (0 when it is not paused)."""
        with self._lock:
            row = self.connection.execute("SELECT until_s FROM paused WHERE key = ?", (key,)).fetchone()
        return max(0.0, row[0] - time.time()) if row else 0.0

    def close(self) -> None:
        with self._lock:
            self.connection.close()

