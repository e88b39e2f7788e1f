"""Bits every API route module uses: JSON answers and the prefix."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

PREFIX = "/api/v1"


def answer(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status)


def no_content() -> Response:
    return Response(status_code=204)
