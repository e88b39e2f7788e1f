"""Structured logs: JSON lines with the request id, carried from a request to its events."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.logging import REDACTED, JsonFormatter
from server.settings import Settings
from store import outbox
from tests.ops.conftest import json_lines, start_logged_server
from tests.support.live_server import LiveServer
from tests.support.messaging import World, events, inbound_params, signed_post

# A request id that tries to break out of its JSON string and forge a field.
FORGED_ID = 'bad id"} {"level":"error'


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every record of this process, formatted as the server formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


async def emit_event(request: Request) -> JSONResponse:
    state = request.app.state.switchboard
    async with state.transaction() as session:
        outbox.emit(session, "inbox:7", "message.created", {"id": 1, "body": "hello"})
    return JSONResponse({"ok": True})


async def test_serve_writes_json_lines_with_the_request_id(
    settings: Settings, tmp_path: Path
) -> None:
    server = start_logged_server(settings, tmp_path / "serve.log")
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            given = await http.get("/healthz", headers={"X-Request-Id": "req-from-proxy-1"})
            made = await http.get("/readyz")
            forged = await http.get("/healthz", headers={"X-Request-Id": FORGED_ID})
    finally:
        log = server.stop()

    assert given.headers["x-request-id"] == "req-from-proxy-1"
    made_id = made.headers["x-request-id"]
    assert len(made_id) == 32
    forged_id = forged.headers["x-request-id"]
    assert forged_id != FORGED_ID and len(forged_id) == 32

    records = json_lines(log)
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= record.keys()
    access = {r["request_id"]: r for r in records if r["logger"] == "switchboard.access"}
    assert access["req-from-proxy-1"]["path"] == "/healthz"
    assert access["req-from-proxy-1"]["status"] == 200
    assert access[made_id]["path"] == "/readyz"
    assert forged_id in access
    assert any(r["logger"] == "uvicorn.error" and r["request_id"] is None for r in records)


async def test_request_id_reaches_the_log_lines_of_published_events(
    live_server: LiveServer, http: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    live_server.app.router.routes.append(Route("/_emit", emit_event, methods=["POST"]))
    response = await http.post("/_emit", headers={"X-Request-Id": "webhook-42"})
    assert response.status_code == 200
    records = json_lines(captured_logs.getvalue())
    published = [r for r in records if r["message"] == "event published"]
    assert published, records
    assert published[0]["request_id"] == "webhook-42"
    assert published[0]["channel"] == "inbox:7"
    assert published[0]["event_type"] == "message.created"
    assert isinstance(published[0]["seq"], int)


def test_formatter_masks_secret_fields_and_text() -> None:
    formatter = JsonFormatter(secrets=["configured-secret-value"])
    record = logging.LogRecord(
        "t",
        logging.INFO,
        __file__,
        1,
        "login password=hunter2hunter2 with Bearer abcdefghijkl at "
        "postgresql://app:dbpass99@db/x and configured-secret-value",
        None,
        None,
    )
    record.headers = {"Authorization": "Bearer zzzzzzzzzz", "Cookie": "sb_session=qqqqqqqq"}
    record.auth_token = "tok-123456"
    record.error = "(IntegrityError) [SQL: INSERT …] [parameters: ('$argon2id$v=19$hashhash',)]"
    line = formatter.format(record)
    for secret in (
        "hunter2hunter2",
        "abcdefghijkl",
        "dbpass99",
        "configured-secret-value",
        "zzzzzzzzzz",
        "qqqqqqqq",
        "tok-123456",
        "hashhash",
    ):
        assert secret not in line
    assert REDACTED in line


async def fail(request: Request) -> JSONResponse:
    raise RuntimeError("boom")


async def test_an_unhandled_error_is_logged_with_its_request_id(
    live_server: LiveServer, http: httpx.AsyncClient, captured_logs: io.StringIO
) -> None:
    live_server.app.router.routes.append(Route("/_fail", fail))
    response = await http.get("/_fail", headers={"X-Request-Id": "broken-7"})
    assert response.status_code == 500
    assert response.json()["error"] == "internal"
    assert "boom" not in response.text
    records = json_lines(captured_logs.getvalue())
    errors = [r for r in records if r["level"] == "error" and r["logger"] == "switchboard.errors"]
    assert errors and errors[0]["request_id"] == "broken-7"
    assert "RuntimeError: boom" in errors[0]["exception"]
    access = [r for r in records if r["logger"] == "switchboard.access"]
    assert access[-1]["status"] == 500 and access[-1]["request_id"] == "broken-7"


async def test_webhooks_stored_together_log_their_events_under_their_own_request_ids(
    live_server: LiveServer, http: httpx.AsyncClient, world: World, captured_logs: io.StringIO
) -> None:
    burst = [inbound_params(f"+1617555{300 + n:04d}", world.n1, f"hi {n}") for n in range(12)]

    responses = await asyncio.gather(
        *(
            signed_post(
                http,
                live_server.settings,
                "/twilio/messages",
                params,
                headers={"X-Request-Id": f"hook-{params['MessageSid']}"},
            )
            for params in burst
        )
    )

    assert [r.status_code for r in responses] == [200] * 12
    by_seq = {
        e.seq: e.data["twilio_sid"]
        for e in await events(live_server.state, f"inbox:{world.admissions}", "message.created")
    }
    published = [
        r
        for r in json_lines(captured_logs.getvalue())
        if r["message"] == "event published"
        and r["event_type"] == "message.created"
        and r["channel"] == f"inbox:{world.admissions}"
    ]
    assert len(published) == 12
    assert {r["request_id"] for r in published} == {f"hook-{sid}" for sid in by_seq.values()}
    for record in published:
        assert record["request_id"] == f"hook-{by_seq[record['seq']]}"
