"""`/openapi.json` is a valid OpenAPI document that describes exactly the app's routes."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate

from tests.api.test_access_matrix import http_routes, websocket_routes
from tests.support.live_server import LiveServer


async def test_openapi_describes_every_route(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["servers"] == [{"url": live_server.base_url}]
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    routes = {
        (method, re.sub(r"{(\w+):\w+}", r"{\1}", path))
        for method, path in http_routes(live_server.app)
    } | {("GET", path) for path in websocket_routes(live_server.app)}
    assert sorted(routes - described) == [], "routes missing from /openapi.json"
    assert sorted(described - routes) == [], "/openapi.json describes routes that do not exist"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"] and operation["responses"], (method, path)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
