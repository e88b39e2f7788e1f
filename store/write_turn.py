"""A process's turn at SQLite's one write lock, taken by its transactions on the event loop and
by the WAL checkpointer's thread while it runs a checkpoint that shuts writers out.

SQLite itself makes a writer that finds the lock taken poll for it, sleeping 1, 2, 5, 10, 15,
20 ms and longer between tries: a transaction shut out for 9 ms gets the lock after 18, one
shut out for 20 ms after 33, and every webhook queued behind it waits as long. Writers that
wait here instead are let in, first come first served, the moment the turn is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class WriteTurn:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()

    @contextlib.contextmanager
    def held_from_thread(self, timeout: float) -> Iterator[bool]:
        """From a thread other than the loop's: hold the turn while the block runs, so that
        the process's transactions wait for it here. Yields whether the turn was had within
        `timeout` seconds (False too when no transaction has run on a loop yet, or the loop
        is gone); the block runs either way, and the turn is given back however it ends."""
        loop = self._loop
        if loop is None or loop.is_closed():
            yield False
            return
        held = threading.Event()
        released = asyncio.Event()  # bound to `loop` when `hold` first waits on it

        async def hold() -> None:
            async with self._lock:
                held.set()
                await released.wait()

        try:
            asyncio.run_coroutine_threadsafe(hold(), loop)
        except RuntimeError:  # the loop closed meanwhile
            yield False
            return
        try:
            yield held.wait(timeout)
        finally:
            # Given up waiting or done: either way `hold` lets go as soon as it has the turn.
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile holds nothing
                loop.call_soon_threadsafe(released.set)
