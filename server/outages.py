"""The database is unreachable: answer 503 with `Retry-After`, never a 200 or a stack trace.

Twilio retries a webhook that answers 5xx, so a message that could not be stored arrives again
once the database is back; API clients and load balancers read `Retry-After` the same way.
A database error that is not an outage (a constraint violated by a bug, say) stays a logged 500.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from server.errors import error_response, server_error_handler

log = logging.getLogger("switchboard.outages")

RETRY_AFTER_SECONDS = 5
# Websocket close code 1013: "try again later".
WS_TRY_AGAIN_LATER = 1013

# SQLSTATE classes that mean "the database is not there for us right now":
# 08 connection exception, 53 insufficient resources (too many connections, disk full),
# 57 operator intervention (shutdown, restart, cannot connect now), 3D000 database missing,
# 40001/40P01 serialization failure and deadlock (the same request succeeds when retried).
_OUTAGE_SQLSTATE_PREFIXES = ("08", "53", "57", "3D", "40001", "40P01")


def _sqlstate(error: BaseException | None) -> str | None:
    value = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return value if isinstance(value, str) else None


def is_outage(error: BaseException) -> bool:
    """Whether `error` means the database (or the network to it) is unavailable."""
    if isinstance(
        error,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | sa_exc.DisconnectionError
        | asyncpg.exceptions.InterfaceError
        | OSError,
    ):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    for candidate in (error, getattr(error, "orig", None), error.__cause__):
        state = _sqlstate(candidate)
        if state and state.startswith(_OUTAGE_SQLSTATE_PREFIXES):
            return True
    return False


async def unavailable_handler(conn: HTTPConnection, error: Exception) -> Response | None:
    if not is_outage(error):
        if isinstance(conn, Request):
            return await server_error_handler(conn, error)
        raise error
    log.warning(
        "database unavailable on %s: %s",
        conn.url.path,
        type(error).__name__,
        extra={"error": str(error).splitlines()[0] if str(error) else type(error).__name__},
    )
    if isinstance(conn, WebSocket):
        await conn.close(WS_TRY_AGAIN_LATER, "database unavailable; reconnect shortly")
        return None
    return error_response(
        503,
        "unavailable",
        "the database is unavailable; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# The exception classes whose handler decides between 503 (an outage) and 500 (a bug).
handlers: dict[Any, Any] = {
    sa_exc.DBAPIError: unavailable_handler,
    sa_exc.TimeoutError: unavailable_handler,
    sa_exc.DisconnectionError: unavailable_handler,
    asyncpg.exceptions.PostgresError: unavailable_handler,
    asyncpg.exceptions.InterfaceError: unavailable_handler,
    OSError: unavailable_handler,
}
