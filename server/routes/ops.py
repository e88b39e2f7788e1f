"""Routes: operations — liveness, readiness and Prometheus metrics.

`/healthz` answers while the process can serve at all (no I/O: a load balancer that restarts
on it must not restart a healthy process because the database blipped). `/readyz` answers 200
only when the database answers, and Redis too when `REDIS_URL` is set; otherwise 503 naming
what is down, so a load balancer sends traffic to the processes that can do the work.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.deps import app_state
from server.errors import error_response
from server.metrics import metrics_endpoint
from server.state import AppState

log = logging.getLogger("switchboard.ops")

CHECK_TIMEOUT_SECONDS = 3.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def check_database(state: AppState) -> None:
    async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_redis(url: str) -> None:
    client = redis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await client.ping()
    finally:
        await client.aclose()


async def readyz(request: Request) -> Response:
    state = app_state(request)
    checks = {"database": check_database(state)}
    if state.settings.redis_url:
        checks["redis"] = check_redis(state.settings.redis_url)
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    report: dict[str, str] = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            report[name] = "down"
            log.warning(
                "readiness: %s is down", name, extra={"check": name, "error": type(result).__name__}
            )
        else:
            report[name] = "ok"
    down = [name for name, status in report.items() if status != "ok"]
    if down:
        return error_response(
            503,
            "unavailable",
            f"not ready: {' and '.join(down)} down",
            {"Retry-After": "5"},
            down=down,
            checks=report,
        )
    return JSONResponse({"status": "ok", "checks": report})


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
    Route("/readyz", readyz, methods=["GET", "HEAD"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
