"""The HTTP API under `/api/v1` (SPEC section 4) and its description at `/openapi.json`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.openapi import document
from server.routes import api_admin, api_auth, api_member


async def openapi_json(request: Request) -> Response:
    return JSONResponse(document(request.app.state.switchboard.settings.public_base))


routes: list[BaseRoute] = [
    *api_auth.routes,
    *api_member.routes,
    *api_admin.routes,
    Route("/openapi.json", openapi_json, methods=["GET"]),
]
