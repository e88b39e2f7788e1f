"""Claiming rows for one worker out of many: the queue pattern shared by campaigns and emails."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.services import sql


def claim_update(
    session: AsyncSession,
    model: Any,
    candidates: Select[Any],
    still: ColumnElement[bool],
    values: dict[str, Any],
) -> Update:
    """UPDATE the `candidates` rows (a SELECT of ids) that `still` hold, setting `values`.

    The candidates are picked once, in a MATERIALIZED CTE: as a plain `IN (subquery)`
    PostgreSQL may run a LIMITed subquery again for every row and claim far more than the
    limit. On PostgreSQL they are also locked FOR UPDATE SKIP LOCKED, so concurrent claimers
    take different rows without waiting for each other; `still` re-checks each row after any
    wait, so a row is only ever claimed once. On SQLite the write transaction (BEGIN
    IMMEDIATE) already runs alone.
    """
    if sql.is_postgres(session):
        candidates = candidates.with_for_update(skip_locked=True)
    picked = candidates.cte("picked").prefix_with("MATERIALIZED")
    return update(model).where(model.id.in_(select(picked.c.id)), still).values(**values)
