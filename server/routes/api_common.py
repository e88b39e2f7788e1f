"""Bits every API route module uses: the prefix and JSON answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.deps import app_state
from server.queries import Page

PREFIX = "/api/v1"


def answer(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status)


def no_content() -> Response:
    return Response(status_code=204)


async def read_answer(
    request: Request, read: Callable[[AsyncSession], Awaitable[Any]]
) -> JSONResponse:
    """Answer what `read` finds in a read-only session; a Page, or a whole list, as a list answer
    (`{"items", "next_cursor"}`)."""
    async with app_state(request).reading() as session:
        found = await read(session)
    if isinstance(found, Page):
        return answer(found.json())
    if isinstance(found, list):
        return answer(Page(found, None).json())
    return answer(found)
