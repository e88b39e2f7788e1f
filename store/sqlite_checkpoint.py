"""Checkpoints a SQLite database's write-ahead log on a thread of its own, off the commit path.

Left to itself, SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that
commit copies the pages into the database file and syncs it before it returns. At 1,000
inbound webhooks a second that was several times a second, and on a virtual disk one such
commit now and then took from 100 ms to over a second, while every webhook of its group, and
every one queued behind it, waited (the README's Ingest section has the figures).

So the engines' connections only checkpoint as a safety net, far out (`SAFETY_NET_PAGES`), and
a `WalCheckpointer` copies the WAL into the database file every `interval` seconds on its own
connection, in PASSIVE mode, which waits for nobody and holds up nobody. A PASSIVE checkpoint
never starts the WAL over while writes keep coming, though, so once the WAL holds more than
`restart_pages` the checkpointer asks for a RESTART: that shuts writers out for the few
milliseconds it takes to copy what came since and sync, and gives up (to try again later)
rather than wait more than `RESTART_WAIT_SECONDS` for a writer or reader to finish. Meanwhile
it holds the process's own writers off with `hold_writers` (`store.write_turn`), so that they
wait in line and go on the moment it is done, rather than poll SQLite's lock.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

log = logging.getLogger("switchboard.store.checkpoint")

# The engines' own automatic checkpoint: only reached when no checkpointer runs (a command
# line tool's process) or it has fallen far behind.
SAFETY_NET_PAGES = 65_536
RESTART_WAIT_SECONDS = 0.05

HoldWriters = Callable[[], AbstractContextManager[object]]


class WalCheckpointer:
    def __init__(
        self,
        path: Path,
        interval: float = 0.25,
        restart_pages: int = 16_384,
        hold_writers: HoldWriters = contextlib.nullcontext,
    ) -> None:
        self.path = path
        self.interval = interval
        self.restart_pages = restart_pages
        self.hold_writers = hold_writers
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint {path.name}", daemon=True
        )
        self._connection: sqlite3.Connection | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._close()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
                failing = False
            except Exception as exc:  # the thread must live on: it is the only checkpointer
                if not failing:  # once per spell of failures, not every interval
                    log.warning("checkpointing %s failed (%s); trying again", self.path, exc)
                failing = True
                self._close()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file; start the WAL over when it has grown long."""
        connection = self._connect()
        if connection is None:
            return
        _, pages, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages > self.restart_pages:
            with self.hold_writers():
                connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()

    def _connect(self) -> sqlite3.Connection | None:
        """The checkpointer's connection; None while the database does not exist yet (mode=rw:
        never create it, the migrations do)."""
        if self._connection is None:
            if not self.path.exists():
                return None
            self._connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=RESTART_WAIT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
