"""The campaigns admin API: create, add recipients (JSON or CSV), preview, send and steer.

GET  /api/v1/campaigns                      newest first, with progress counts
POST /api/v1/campaigns                      a draft, with its recipients
GET  /api/v1/campaigns/{id}                 status, counts, final figures, warnings
POST /api/v1/campaigns/{id}/recipients      more recipients: JSON, a CSV body or upload
GET  /api/v1/campaigns/{id}/recipients      per recipient: state, message status, error
GET  /api/v1/campaigns/{id}/preview         the first messages as they will read
POST /api/v1/campaigns/{id}/send|pause|resume|cancel
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.bodies import bounded
from server.deps import app_state, json_body, path_id, require_admin
from server.errors import ApiError, invalid, not_found
from server.routes.api_common import no_content
from server.services import campaign_stats, campaigns
from server.services.recipient_import import MAX_ERRORS_LISTED, ImportResult, from_csv, from_json
from server.state import AppState
from store.ids import parse_id
from store.models import Campaign, CampaignRecipient

PREFIX = "/api/v1/campaigns"
MAX_CSV_BYTES = 20_000_000
MULTIPART_SLACK = 65_536  # a multipart upload's boundaries and part headers
# A CSV sent as JSON text (as the admin pages send it) grows by its escapes, up to twice.
MAX_IMPORT_JSON_BYTES = 2 * MAX_CSV_BYTES
PAGE = 50
CREATE_KEYS = {"name", "messaging_service_id", "body", "rate_per_second", "start_at"}
SOURCES = ("contact_ids", "recipients", "filter", "csv")


async def _campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise not_found("campaign")
    return campaign


async def _full_view(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    return {
        **await campaign_stats.view(session, campaign),
        "warnings": await campaigns.routing_warnings(session, campaign.messaging_service_id),
    }


def _bad_rows(result: ImportResult) -> ApiError:
    # A CSV's rows by line; a list's items counted from 1, as a person counts (the errors
    # themselves keep the 0-based `index` of the JSON array).
    first = "; ".join(
        f"line {e['line']}: {e['error']}" if "line" in e else f"item {e['index'] + 1}: {e['error']}"
        for e in result.errors[:5]
    )
    return ApiError(
        422,
        "invalid_recipients",
        f"{len(result.errors)} recipient row(s) are not usable, nothing was added: {first}",
        errors=result.errors[:MAX_ERRORS_LISTED],
        error_count=len(result.errors),
    )


async def _parsed(source: str, value: Any) -> tuple[str, Any]:
    """A CSV or a list of people read into recipients, on a thread: before the write
    transaction, and not on the event loop (100,000 rows are seconds of work)."""
    if source == "csv" and not isinstance(value, str):
        raise invalid("csv must be the text of a CSV file")
    if source not in ("csv", "recipients"):
        return source, value
    result = await asyncio.to_thread(from_csv if source == "csv" else from_json, value)
    if result.errors:
        raise _bad_rows(result)
    return "people", result


async def _recipient_ids(
    state: AppState, body: str, parsed: tuple[str, Any]
) -> tuple[list[int], int]:
    """The contacts a (`_parsed`) recipient source names, and how many rows merged.

    Every merge field of `body` is checked on a read before anything is written, so a refused
    list adds nobody; the people an import names are then created or filled in, in chunks.
    """
    source, value = parsed
    async with state.reading() as session:
        if source == "people":
            await campaigns.check_import_merge_fields(session, body, value.recipients)
        else:
            if source == "contact_ids":
                contact_ids = await campaigns.existing_contact_ids(session, value)
            else:
                contact_ids = await campaigns.filtered_contact_ids(session, value)
            await campaigns.check_merge_fields(session, body, contact_ids)
            return contact_ids, 0
    return await campaigns.import_people(state, value.recipients), value.duplicates


def _one_source(data: dict[str, Any]) -> tuple[str, Any] | None:
    given = [key for key in SOURCES if key in data]
    if len(given) > 1:
        raise invalid(f"give recipients one way only, not {' and '.join(given)}")
    return (given[0], data[given[0]]) if given else None


async def list_campaigns(request: Request) -> JSONResponse:
    await require_admin(request)
    cursor = request.query_params.get("cursor")
    stmt = select(Campaign).order_by(Campaign.id.desc()).limit(PAGE + 1)
    if cursor:
        if not cursor.isdigit():
            raise invalid("cursor is not one this API gave out")
        stmt = stmt.where(Campaign.id < int(cursor))
    async with app_state(request).reading() as session:
        found = list((await session.scalars(stmt)).all())
        items = [await campaign_stats.view(session, c) for c in found[:PAGE]]
    next_cursor = str(found[PAGE - 1].id) if len(found) > PAGE else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def create_campaign(request: Request) -> JSONResponse:
    """A draft campaign with its recipients; merge fields are checked for every recipient."""
    user = await require_admin(request)
    data = await json_body(request, MAX_IMPORT_JSON_BYTES)
    unknown = set(data) - CREATE_KEYS - set(SOURCES)
    if unknown:
        raise invalid(f"unknown keys: {', '.join(sorted(unknown))}")
    name, body = campaigns.check_text(data)
    rate = campaigns.check_rate(data.get("rate_per_second"))
    start_at = campaigns.check_start_at(data.get("start_at"))
    source = _one_source(data)
    parsed = await _parsed(*source) if source else None
    state = app_state(request)
    async with state.reading() as session:
        await campaigns.blast_service(session, data.get("messaging_service_id"))
    contact_ids, merged = await _recipient_ids(state, body, parsed) if parsed else ([], 0)
    async with state.transaction() as session:
        service = await campaigns.blast_service(session, data.get("messaging_service_id"))
        campaign = await campaigns.create(
            session,
            name=name,
            body=body,
            service=service,
            rate_per_second=rate,
            start_at=start_at,
            created_by=user.id,
        )
        await campaigns.add_recipients(session, campaign, contact_ids)
        answer = await _full_view(session, campaign)
        answer["duplicates_merged"] = merged
        answer["preview"] = await campaigns.preview(session, campaign, limit=3)
    return JSONResponse(answer, 201)


async def show_campaign(request: Request) -> JSONResponse:
    await require_admin(request)
    async with app_state(request).reading() as session:
        campaign = await _campaign(session, path_id(request))
        return JSONResponse(await _full_view(session, campaign))


async def add_recipients(request: Request) -> JSONResponse:
    """More recipients for a draft: JSON (`contact_ids`, `recipients`, `filter`), a `text/csv`
    body, or a multipart upload with the CSV in the `file` field."""
    await require_admin(request)
    campaign_id = path_id(request)
    parsed = await _parsed(*await _upload_source(request))
    state = app_state(request)
    async with state.reading() as session:
        draft = await _campaign(session, campaign_id)
        campaigns.require_draft(draft)
    contact_ids, merged = await _recipient_ids(state, draft.body, parsed)
    async with state.transaction() as session:
        campaign = await campaigns.locked(session, campaign_id)
        campaigns.require_draft(campaign)
        added = await campaigns.add_recipients(session, campaign, contact_ids)
        if added.added:
            await campaign_stats.emit_progress(session, campaign)
        total = await session.scalar(
            select(func.count()).where(CampaignRecipient.campaign_id == campaign.id)
        )
    return JSONResponse(
        {
            "added": added.added,
            "already_recipients": added.already,
            "duplicates_merged": merged,
            "total": total,
        }
    )


async def _upload_source(request: Request) -> tuple[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("text/csv"):
        return "csv", _decode(await bounded(request, MAX_CSV_BYTES, "the CSV").body())
    if content_type.startswith("multipart/form-data"):
        upload_request = bounded(request, MAX_CSV_BYTES + MULTIPART_SLACK, "the upload")
        async with upload_request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise invalid("upload the CSV in a form field named file")
            return "csv", _decode(await upload.read())
    data = await json_body(request, MAX_IMPORT_JSON_BYTES)
    source = _one_source(data)
    unknown = set(data) - set(SOURCES)
    if source is None or unknown:
        raise invalid(f"give one of {', '.join(SOURCES)} (and nothing else)")
    return source


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, as spreadsheets export it."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            raise invalid("the CSV is neither UTF-8 nor Windows-1252 text") from None


async def list_recipients(request: Request) -> JSONResponse:
    """Each recipient's state with its message's status and error (`?state=unknown` …)."""
    await require_admin(request)
    campaign_id = path_id(request)
    wanted = request.query_params.get("state")
    if wanted is not None and wanted not in campaigns.RECIPIENT_STATES:
        raise invalid(f"state must be one of {', '.join(campaigns.RECIPIENT_STATES)}")
    cursor = request.query_params.get("cursor")
    after = parse_id(cursor) if cursor is not None else None
    if cursor is not None and after is None:
        raise invalid("cursor is not one this API gave out")
    async with app_state(request).reading() as session:
        await _campaign(session, campaign_id)
        items, last = await campaigns.recipient_list(
            session, campaign_id, state=wanted, after=after, limit=PAGE
        )
    return JSONResponse({"items": items, "next_cursor": None if last is None else str(last)})


async def preview_campaign(request: Request) -> JSONResponse:
    await require_admin(request)
    raw = request.query_params.get("limit", "5")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise invalid("limit must be a number from 1 to 50")
    async with app_state(request).reading() as session:
        campaign = await _campaign(session, path_id(request))
        return JSONResponse(await campaigns.preview(session, campaign, limit=int(raw)))


async def send_campaign(request: Request) -> JSONResponse:
    """Send a draft (or schedule it, when its start is ahead) once every recipient has a value
    for every merge field: checked on a read, before the short write that starts it."""
    await require_admin(request)
    campaign_id = path_id(request)
    state = app_state(request)
    async with state.reading() as session:
        draft = await _campaign(session, campaign_id)
        if draft.status == "draft":  # any other is refused by `start`, as it is
            await campaigns.check_recipients_merge_fields(session, draft)
    async with state.transaction() as session:
        campaign = await campaigns.locked(session, campaign_id)
        await campaigns.start(session, campaign)
        answer = await _full_view(session, campaign)
    return JSONResponse(answer)


def _transition(action: Any) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        await require_admin(request)
        campaign_id = path_id(request)
        async with app_state(request).transaction() as session:
            campaign = await campaigns.locked(session, campaign_id)
            await action(session, campaign)
            answer = await _full_view(session, campaign)
        return JSONResponse(answer)

    endpoint.__name__ = f"{action.__name__}_campaign"
    endpoint.__doc__ = action.__doc__
    return endpoint


async def delete_campaign(request: Request) -> Response:
    await require_admin(request)
    campaign_id = path_id(request)
    async with app_state(request).transaction() as session:
        await campaigns.delete_campaign(session, await campaigns.locked(session, campaign_id))
    return no_content()


routes: list[BaseRoute] = [
    Route(PREFIX, list_campaigns, methods=["GET"]),
    Route(PREFIX, create_campaign, methods=["POST"]),
    Route(PREFIX + "/{id}", show_campaign, methods=["GET"]),
    Route(PREFIX + "/{id}", delete_campaign, methods=["DELETE"]),
    Route(PREFIX + "/{id}/recipients", list_recipients, methods=["GET"]),
    Route(PREFIX + "/{id}/recipients", add_recipients, methods=["POST"]),
    Route(PREFIX + "/{id}/preview", preview_campaign, methods=["GET"]),
    Route(PREFIX + "/{id}/send", send_campaign, methods=["POST"]),
    Route(PREFIX + "/{id}/pause", _transition(campaigns.pause), methods=["POST"]),
    Route(PREFIX + "/{id}/resume", _transition(campaigns.resume), methods=["POST"]),
    Route(PREFIX + "/{id}/cancel", _transition(campaigns.cancel), methods=["POST"]),
]
