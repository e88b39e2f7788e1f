"""Dialect helpers the services share: upserts, row locks and time arithmetic on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Float, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


def insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on the session's database."""
    if is_postgres(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def id_table(session: AsyncSession, ids: Sequence[int]) -> Any:
    """`ids` as a table (columns `id` and `position`, from 1) made from one bound value, for
    statements over more ids than a statement may bind one by one."""
    if is_postgres(session):
        given = func.unnest(literal(list(ids), postgresql.ARRAY(BigInteger)))
        return given.table_valued("id", with_ordinality="position").render_derived()
    rows = func.json_each(literal(json.dumps(list(ids)))).table_valued("value", "key")
    return select(rows.c.value.label("id"), (rows.c.key + 1).label("position")).subquery()


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def serialize(session: AsyncSession, key: int) -> None:
    """Hold a transaction-wide lock on `key` so check-then-create cannot race.

    PostgreSQL takes an advisory lock; SQLite needs nothing, since every write transaction
    begins IMMEDIATE and so already excludes every other writer until it ends.
    """
    if is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def plan_each_statement(session: AsyncSession) -> None:
    """On PostgreSQL, plan every statement of this transaction afresh; for a statement run
    hundreds of times over a table that may have just grown.

    A prepared statement run a few times gets a generic plan, kept until the table is next
    analyzed; one made while the table was nearly empty scans it whole ever after. An import
    filling the contacts table chunk by chunk slowed that way from 0.1 to 10 s a chunk.
    """
    if is_postgres(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


class seconds_between(FunctionElement[float]):  # noqa: N801 (SQL functions read as such)
    """`later - earlier` in seconds, for two timestamp columns (NULL if either is)."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later}) - ({earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"
