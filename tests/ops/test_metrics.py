"""Prometheus exposition at /metrics after real traffic: requests, webhooks, events, messages."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from server.settings import Settings
from store import outbox
from tests.live.helpers import LiveClient
from tests.support.live_server import LiveServer
from tests.support.messaging import World, eventually, text_in


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by name and labels (parsed by prometheus_client)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def test_metrics_count_requests_webhooks_and_events(
    live_server: LiveServer, http: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/no/such/page")).status_code == 404
    for body in ("Hello", "When is the deadline?"):
        response = await text_in(http, live_server.settings, "+16175552001", world.n1, body)
        assert response.status_code == 200, response.text

    exposition = await http.get("/metrics")
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    found = samples(exposition.text)

    requests = "switchboard_http_requests_total"
    assert value(found, requests, route="/healthz", method="GET", status="200") == 2
    assert value(found, requests, route="unmatched", method="GET", status="404") == 1
    assert value(found, requests, route="/twilio/messages", method="POST", status="200") == 2

    webhook = "switchboard_webhook_duration_seconds"
    assert value(found, f"{webhook}_count", route="/twilio/messages", status="200") == 2
    assert value(found, f"{webhook}_bucket", route="/twilio/messages", status="200", le="+Inf") == 2
    assert value(found, f"{webhook}_sum", route="/twilio/messages", status="200") > 0

    published = "switchboard_events_published_total"
    assert value(found, published, channel_kind="inbox", type="message.created") == 2
    assert value(found, published, channel_kind="conversation", type="message.created") == 2
    created = "switchboard_messages_created_total"
    assert value(found, created, direction="inbound", tag="inbound") == 2


async def test_metrics_read_the_realtime_node_at_scrape_time(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    clients = [
        await LiveClient.connect(live_server.ws_url, world.tokens[who])
        for who in ("member", "member", "admin")
    ]
    try:
        for client in clients:
            await client.subscribe(f"inbox:{world.admissions}")
        await clients[0].subscribe(f"user:{world.member}")
        response = await text_in(http, live_server.settings, "+16175552002", world.n1, "Hi")
        assert response.status_code == 200
        for client in clients:
            await client.until(op="event", type="message.created")

        found = samples((await http.get("/metrics")).text)
        assert value(found, "switchboard_ws_connections") == 3
        assert value(found, "switchboard_ws_subscriptions") == 4
        assert value(found, "switchboard_live_channels") == 2
        # message.created and conversation.updated, to each of the three inbox subscribers
        assert value(found, "switchboard_events_delivered_total") >= 3
    finally:
        for client in clients:
            await client.close()

    async def closed() -> bool:
        return value(samples((await http.get("/metrics")).text), "switchboard_ws_connections") == 0

    assert await eventually(closed)


async def test_campaign_sends_are_counted_by_status(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    """Campaign messages are counted from the events their sends commit (any sender)."""
    state = live_server.state
    sent = {"id": 1, "tag": "campaign", "direction": "outbound", "status": "sending"}
    async with state.transaction() as session:
        for message_id in (1, 2, 3):
            data = {**sent, "id": message_id}
            outbox.emit(session, "inbox:1", "message.created", data)
            outbox.emit(session, "conversation:1", "message.created", data)
    async with state.transaction() as session:
        for message_id, status in ((1, "sent"), (2, "sent"), (3, "failed")):
            data = {**sent, "id": message_id, "status": status}
            outbox.emit(session, "inbox:1", "message.status", data)
            outbox.emit(session, "conversation:1", "message.status", data)

    found = samples((await http.get("/metrics")).text)
    statuses = "switchboard_campaign_message_statuses_total"
    assert value(found, statuses, status="sending") == 3
    assert value(found, statuses, status="sent") == 2
    assert value(found, statuses, status="failed") == 1
    created = "switchboard_messages_created_total"
    assert value(found, created, direction="outbound", tag="campaign") == 3
