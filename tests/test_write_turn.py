"""A process's SQLite write turn: its transactions take it on the event loop, the WAL
checkpointer's thread takes it while it shuts writers out, and it is never left taken."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from typing import Any

from server.settings import Settings
from server.state import AppState
from store.write_turn import WriteTurn

WAIT = 5.0


class HeldByThread:
    """A thread that holds `hold()` until told to let go."""

    def __init__(self, hold: Callable[[], AbstractContextManager[Any]]) -> None:
        self.entered = threading.Event()
        self.leave = threading.Event()
        self.had: list[bool] = []
        self._thread = threading.Thread(target=self._run, args=(hold,))

    def _run(self, hold: Callable[[], AbstractContextManager[Any]]) -> None:
        with hold() as had:
            self.had.append(had)
            self.entered.set()
            self.leave.wait(WAIT)

    async def start(self) -> None:
        self._thread.start()
        assert await asyncio.to_thread(self.entered.wait, WAIT)

    async def let_go(self) -> None:
        self.leave.set()
        await asyncio.to_thread(self._thread.join, WAIT)


async def transaction_order(
    turn: AbstractAsyncContextManager[Any], thread: HeldByThread
) -> list[str]:
    """What happens first: the thread letting go of the turn, or a transaction getting it."""
    order: list[str] = []

    async def transaction() -> None:
        async with turn:
            order.append("transaction")

    await thread.start()
    task = asyncio.create_task(transaction())
    await asyncio.sleep(0.05)  # time enough for a transaction that was not held off
    order.append("thread let go")
    await thread.let_go()
    await asyncio.wait_for(task, WAIT)
    return order


async def test_a_transaction_waits_while_a_thread_holds_the_turn() -> None:
    turn = WriteTurn()
    async with turn:  # the first transaction tells the turn which loop it lives on
        pass
    thread = HeldByThread(lambda: turn.held_from_thread(WAIT))
    assert await transaction_order(turn, thread) == ["thread let go", "transaction"]
    assert thread.had == [True]


async def test_a_thread_that_cannot_have_the_turn_in_time_goes_on_and_takes_nothing() -> None:
    turn = WriteTurn()

    def hold_briefly() -> bool:
        with turn.held_from_thread(0.05) as had:
            return had

    async with turn:  # a long transaction
        assert await asyncio.to_thread(hold_briefly) is False
    # The thread's late claim on the turn is given back the moment it is had.
    async with asyncio.timeout(WAIT):
        async with turn:
            pass


def test_before_any_transaction_and_after_the_loop_closed_it_holds_nothing() -> None:
    turn = WriteTurn()
    with turn.held_from_thread(WAIT) as had:
        assert had is False

    async def one_transaction() -> None:
        async with turn:
            pass

    asyncio.run(one_transaction())
    with turn.held_from_thread(WAIT) as had:
        assert had is False


async def test_the_app_states_checkpointer_holds_its_transactions_off(tmp_path: Path) -> None:
    state = AppState(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"))
    try:
        async with state.transaction():
            pass
        assert state.checkpointer is not None
        thread = HeldByThread(state.checkpointer.hold_writers)
        assert await transaction_order(state.transaction(), thread) == [
            "thread let go",
            "transaction",
        ]
        assert thread.had == [True]
    finally:
        await state.close()
