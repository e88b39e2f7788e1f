"""Admin pages for campaigns: the list with progress bars, a new-campaign form, and one
campaign's live progress (its `campaign:{id}` channel carries `campaign.progress`), its
recipients by count and, for a draft, a form to add more.

They read through the campaign services the API uses and write through the campaigns API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server import labels, queries
from server.page_shell import NotFoundPage, Viewer, channel_seqs, page, path_id, render
from server.services import campaign_stats, campaigns
from store.ids import parse_id
from store.models import Campaign, utcnow

LIST_LIMIT = 50
PREVIEW = 3
RECIPIENT_PAGE = 50

# The bar's segments, in order, with the counts they draw (sent includes delivered).
BAR = [
    ("delivered", "Delivered"),
    ("in_flight", "Sent, not yet delivered"),
    ("failed", "Failed"),
    ("unknown", "Unknown"),
    ("skipped_opted_out", "Skipped: opted out"),
    ("canceled", "Canceled"),
    ("pending", "Waiting to send"),
]


def bar(counts: dict[str, int]) -> list[dict[str, Any]]:
    """The stacked progress bar of a campaign: each segment's share of the recipients."""
    total = counts.get("total", 0)
    values = {
        "delivered": counts.get("delivered", 0),
        "in_flight": max(0, counts.get("sent", 0) - counts.get("delivered", 0)),
        "failed": counts.get("failed", 0),
        "unknown": counts.get("unknown", 0),
        "skipped_opted_out": counts.get("skipped_opted_out", 0),
        "canceled": counts.get("canceled", 0),
        "pending": counts.get("queued", 0) + counts.get("sending", 0),
    }
    segments, start = [], 0.0
    for key, label in BAR:
        share = 100.0 * values[key] / total if total else 0.0
        segments.append({"key": key, "label": label, "count": values[key], "x": start, "w": share})
        start += share
    return segments


# The progress counts a page lists recipients by: (count, label).
RECIPIENT_FILTERS = [
    ("failed", "Failed"),
    ("unknown", "Unknown"),
    ("skipped_opted_out", "Skipped: opted out"),
    ("queued", "Waiting"),
    ("sending", "Sending"),
    ("sent", "Sent, not yet delivered"),
    ("delivered", "Delivered"),
    ("canceled", "Canceled"),
]
UNSENT_WORDS = {
    "pending": "Waiting",
    "claimed": "Waiting",
    "sending": "Sending…",
    "skipped_opted_out": "Skipped: opted out",
    "canceled": "Canceled",
    "failed": "Failed",
    "unknown": "Unknown — may not have gone out",
}


def recipient_filters(counts: dict[str, int]) -> list[dict[str, Any]]:
    """The counts to list recipients by, with their sizes (`sent` less delivered); the page
    hides the empty ones and its script keeps the sizes live."""
    sizes = {**counts, "sent": counts.get("sent", 0) - counts.get("delivered", 0)}
    return [
        {"key": key, "label": label, "count": sizes.get(key, 0)} for key, label in RECIPIENT_FILTERS
    ]


def recipient_row(item: dict[str, Any]) -> dict[str, Any]:
    """A recipient as the page shows it: where it went, and its fate in words."""
    message = item["message"]
    if message is None:
        kind = "problem" if item["state"] in ("failed", "unknown") else "pending"
        words = UNSENT_WORDS.get(item["state"], item["state"])
        error = labels.error_words(item["error_code"])
    else:
        kind = labels.status_kind(message["status"])
        words = labels.status_words(message["status"])
        error = labels.error_words(
            message["error_code"] or item["error_code"], message["error_message"]
        )
    return {**item, "kind": kind, "words": words, "error": error}


async def _routed_inboxes(session: AsyncSession, viewer: Viewer) -> list[dict[str, Any]]:
    """The inboxes a campaign's audience may be chosen from (not the unrouted catch-all)."""
    inboxes = await queries.visible_inboxes(session, viewer.user)
    return [inbox for inbox in inboxes if not inbox["is_unrouted"]]


async def campaigns_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    found = (
        await session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(LIST_LIMIT))
    ).all()
    items = [await campaign_stats.view(session, campaign) for campaign in found]
    services = (await queries.list_messaging_services(session, viewer.user, limit=200)).items
    context = {
        "page": "admin-campaigns",
        "admin_section": "campaigns",
        "campaigns": [{**item, "bar": bar(item["counts"])} for item in items],
        "blast_services": [s for s in services if s["purpose"] == "blast"],
        "inboxes": await _routed_inboxes(session, viewer),
    }
    # The list follows the campaigns that can still move (their rows refresh on progress).
    moving = [
        campaign_stats.channel(item["id"])
        for item in items
        if item["status"] in ("draft", "scheduled", "sending", "paused")
    ]
    return await render(request, viewer, session, "admin/campaigns.html", context, channels=moving)


async def campaign_page(request: Request, viewer: Viewer, session: AsyncSession) -> Response:
    campaign_id = path_id(request)
    channel = campaign_stats.channel(campaign_id)
    seqs = await channel_seqs(session, [channel])
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundPage
    view = await campaign_stats.view(session, campaign)
    services = (await queries.list_messaging_services(session, viewer.user, limit=200)).items
    count = request.query_params.get("count")
    count = count if count in dict(RECIPIENT_FILTERS) else None
    after = parse_id(request.query_params.get("after", ""))
    items, last = await campaigns.recipient_list(
        session, campaign_id, count=count, after=after, limit=RECIPIENT_PAGE
    )
    more = {"count": count, "after": last} if count else {"after": last}
    context = {
        "page": "admin-campaign",
        "admin_section": "campaigns",
        "campaign": view,
        "bar": bar(view["counts"]),
        "warnings": await campaigns.routing_warnings(session, campaign.messaging_service_id),
        # Said on the draft, not first as a refusal when Send is pressed.
        "no_sender": campaign.status in ("draft", "scheduled", "paused")
        and await campaigns.choose_sender(session, campaign.messaging_service_id) is None,
        "preview": await campaigns.preview(session, campaign, limit=PREVIEW),
        "service": next((s for s in services if s["id"] == campaign.messaging_service_id), None),
        "inboxes": await _routed_inboxes(session, viewer),
        "recipients": [recipient_row(item) for item in items],
        "recipient_filters": recipient_filters(view["counts"]),
        "showing": count,
        "starts_ahead": campaign.start_at is not None and campaign.start_at > utcnow(),
        "more_recipients": f"?{urlencode(more)}#recipients-title" if last else None,
    }
    boot = {"seqs": seqs, "campaign": {"id": campaign_id, "channel": channel}}
    return await render(
        request, viewer, session, "admin/campaign.html", context, channels=[channel], boot=boot
    )


routes: list[BaseRoute] = [
    Route("/admin/campaigns", page(campaigns_page, admin=True), methods=["GET"]),
    Route("/admin/campaigns/{id}", page(campaign_page, admin=True), methods=["GET"]),
]
