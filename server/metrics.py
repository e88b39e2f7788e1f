"""Prometheus metrics at `GET /metrics`, with the official `prometheus_client` library.

Each app has its own registry (several apps live in one test process). What the app does itself
is counted as it happens: HTTP requests by route and status, webhook latency, events published
(and from them, messages and campaign sends by status). What the realtime node knows (open
sockets, subscriptions, frames delivered, send queue depth, slow-consumer disconnects) is read
from its `stats()` at scrape time by `RealtimeCollector`, so the hot path pays nothing for it.

Each `switchboard serve` process exposes its own figures; Prometheus scrapes every process and
sums (see docs/operations.md). There is no shared multi-process directory to set up.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("switchboard.events")

WEBHOOK_PREFIX = "/twilio/"
# Webhooks must answer fast (Twilio waits 15 s at most); the buckets resolve the low end.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


class RealtimeStats(Protocol):
    """What the realtime node tells the metrics at scrape time.

    `stats()` returns a mapping with (any of) these keys, each a number:
    `connections` (open sockets), `subscriptions` (channel subscriptions of those sockets),
    `channels` (channels the process follows on the broker for them),
    `events_delivered` (event frames handed to sockets, ever), `send_queue_depth` (frames
    waiting in all send queues now), `slow_consumers_closed` (sockets cut for not reading,
    ever). Unknown keys are ignored and missing keys are left out.
    """

    def stats(self) -> Mapping[str, float]: ...


# key in stats() -> (metric name, help, kind)
REALTIME_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("connections", "switchboard_ws_connections", "Open websocket connections.", "gauge"),
    ("subscriptions", "switchboard_ws_subscriptions", "Live channel subscriptions.", "gauge"),
    ("channels", "switchboard_live_channels", "Channels this process follows.", "gauge"),
    (
        "events_delivered",
        "switchboard_events_delivered",
        "Event frames handed to websockets.",
        "counter",
    ),
    (
        "send_queue_depth",
        "switchboard_ws_send_queue_depth",
        "Frames waiting in the send queues of all sockets.",
        "gauge",
    ),
    (
        "slow_consumers_closed",
        "switchboard_ws_slow_consumer_disconnects",
        "Sockets disconnected because they stopped reading.",
        "counter",
    ),
)


class RealtimeCollector(Collector):
    """Reads the realtime node's counters when Prometheus scrapes."""

    def __init__(self, source: Callable[[], RealtimeStats | None]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        node = self.source()
        stats_of = getattr(node, "stats", None)
        if stats_of is None:
            return
        try:
            stats = stats_of()
        except Exception:
            logging.getLogger("switchboard.metrics").exception("reading realtime stats failed")
            return
        for key, name, help_text, kind in REALTIME_FIELDS:
            value = stats.get(key)
            if value is None:
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=float(value))

    def describe(self) -> Iterator[Metric]:
        return iter(())


class Metrics:
    """The metrics of one app, in their own registry."""

    def __init__(self, realtime: Callable[[], RealtimeStats | None] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "switchboard_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.webhook_latency = Histogram(
            "switchboard_webhook_duration_seconds",
            "Time to answer a Twilio webhook, by route and status.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events_published = Counter(
            "switchboard_events_published",
            "Committed events handed to the realtime node, by channel kind and type.",
            ["channel_kind", "type"],
            registry=self.registry,
        )
        self.messages = Counter(
            "switchboard_messages_created",
            "Messages created, by direction and tag (inbound, quick, campaign).",
            ["direction", "tag"],
            registry=self.registry,
        )
        self.campaign_messages = Counter(
            "switchboard_campaign_message_statuses",
            "Campaign messages reaching each status (rate() of it is the campaign send rate).",
            ["status"],
            registry=self.registry,
        )
        if realtime is not None:
            self.registry.register(RealtimeCollector(realtime))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        if route.startswith(WEBHOOK_PREFIX):
            self.webhook_latency.labels(route, str(status)).observe(seconds)

    def observe_events(self, envelopes: Sequence[Mapping[str, Any]]) -> None:
        """Count a batch of events, each counter child incremented once per batch (looking a
        child up takes a lock: a webhook's events are counted on every commit)."""
        published: collections.Counter[tuple[str, str]] = collections.Counter()
        messages: collections.Counter[tuple[str, str]] = collections.Counter()
        campaign_messages: collections.Counter[str] = collections.Counter()
        for envelope in envelopes:
            channel = str(envelope.get("channel", ""))
            kind = channel.split(":", 1)[0] or "unknown"
            event_type = str(envelope.get("type", ""))
            published[kind, event_type] += 1
            data = envelope.get("data")
            if kind != "inbox" or not isinstance(data, Mapping):
                # Message events go to the inbox and the conversation: count them once.
                continue
            if event_type == "message.created":
                messages[str(data.get("direction")), str(data.get("tag"))] += 1
            if data.get("tag") == "campaign" and event_type in (
                "message.created",
                "message.status",
            ):
                campaign_messages[str(data.get("status"))] += 1
        for labels, count in published.items():
            self.events_published.labels(*labels).inc(count)
        for labels, count in messages.items():
            self.messages.labels(*labels).inc(count)
        for status, count in campaign_messages.items():
            self.campaign_messages.labels(status).inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ObservedPublisher:
    """Wraps the realtime node's publisher: counts what is published and logs it.

    The log line ties the request id of the work that committed the events (a webhook, an API
    call) to each event's channel and seq, which the delivery side logs and clients see.
    Everything else is passed through to the wrapped node.
    """

    def __init__(self, inner: Any | None, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def publish(self, envelopes: Sequence[dict[str, Any]]) -> None:
        self._metrics.observe_events(envelopes)
        if log.isEnabledFor(logging.INFO):
            for envelope in envelopes:
                log.info(
                    "event published",
                    extra={
                        "channel": envelope.get("channel"),
                        "seq": envelope.get("seq"),
                        "event_type": envelope.get("type"),
                        "request_id": envelope.get("request_id"),
                    },
                )
        if self._inner is not None:
            await self._inner.publish(envelopes)

    async def access_changed(self, user_id: int) -> None:
        if self._inner is not None:
            await self._inner.access_changed(user_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def observe_publisher(state: Any, metrics: Metrics) -> None:
    """Wrap `state.publisher` (once the realtime node has set it) so publishing is observed.

    Without a realtime node (a worker process) events are still counted and logged.
    """
    if not isinstance(state.publisher, ObservedPublisher):
        state.publisher = ObservedPublisher(state.publisher, metrics)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/conversations/{id}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return "unmatched"


class MetricsMiddleware:
    """Counts every HTTP request by route template and status and times the webhooks."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(
                route_template(scope),
                scope.get("method", ""),
                status,
                time.perf_counter() - started,
            )


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
