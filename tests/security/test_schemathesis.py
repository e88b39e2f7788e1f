"""Schemathesis over `/openapi.json`: every operation, called as an admin (bearer token) with
data generated from its own description, answers without a 5xx, with a documented status and
content type, and a body that matches the documented schema.

The budget is small (25 examples per operation) so it runs in CI in a couple of minutes;
raise `EXAMPLES` for a deeper run by hand. Hypothesis runs in a worker thread with a plain
HTTP session while the server serves in the test's event loop.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.live_server import LiveServer
from tests.support.messaging import World

EXAMPLES = int(os.environ.get("SWITCHBOARD_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations left out, and why: logging out would end the session the run signs in with; `/ws`
# is a websocket handshake, not an HTTP call (tests/live and tests/security/test_websocket_*).
LEFT_OUT = {("POST", "/api/v1/auth/logout"), ("GET", "/ws")}


async def test_every_operation_answers_as_documented(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    document = (await http.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    failures: list[str] = []
    called: list[str] = []

    def fuzz(operation: schemathesis.APIOperation, session: requests.Session) -> None:
        key = (operation.method.upper(), operation.path)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            # The admin the run signs in as stays an active admin.
            assume(
                key != ("PATCH", "/api/v1/users/{id}")
                or (case.path_parameters or {}).get("id") != world.admin
            )
            session.cookies.clear()  # bearer only, whatever a call set
            case.call_and_validate(
                base_url=live_server.base_url,
                session=session,
                headers=admin,
                checks=CHECKS,
                timeout=30,
            )

        call()

    def run() -> None:
        with requests.Session() as session:
            for result in schema.get_all_operations():
                operation = result.ok()
                label = f"{operation.method.upper()} {operation.path}"
                if (operation.method.upper(), operation.path) in LEFT_OUT:
                    continue
                try:
                    fuzz(operation, session)
                    called.append(label)
                except (Exception, BaseExceptionGroup) as exc:  # Schemathesis' FailureGroup
                    failures.append(f"{label}:\n{exc}")

    await asyncio.to_thread(run)
    assert not failures, "\n\n".join(failures)
    assert len(called) >= 30, called
