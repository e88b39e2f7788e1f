"""Campaigns: creating one with its recipients, previewing it, and its life (send, pause, …).

Sending itself is the worker's (`campaign_sender`). Here a campaign is checked before anything
is stored: a blast messaging service with numbers, recipients that exist, and a value for every
merge field of every recipient — otherwise the error names the contacts, and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ApiError, invalid, not_found
from server.services import campaign_stats, sql
from server.services.merge_fields import encoding, field_names, missing_fields, render
from server.services.outbound import MAX_BODY_CHARS
from server.services.recipient_import import RecipientInput
from server.services.segments import segment_count
from store.ids import is_id
from store.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Conversation,
    Inbox,
    Message,
    MessagingService,
    PhoneNumber,
    utcnow,
)

CHUNK = 500
# Rows per execution of a statement executed many.
EXECUTE_MANY = 5000
MAX_RATE = 10_000.0
MISSING_LISTED = 100
RECIPIENT_STATES = (
    "pending",
    "claimed",
    "sending",
    "sent",
    "failed",
    "unknown",
    "skipped_opted_out",
    "canceled",
)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Added:
    added: int
    already: int


# --- the messaging service and its numbers ------------------------------------------------


async def blast_service(session: AsyncSession, service_id: Any) -> MessagingService:
    if not is_id(service_id):
        raise invalid("messaging_service_id must be the id of a messaging service")
    service = await session.get(MessagingService, service_id)
    if service is None:
        raise invalid("messaging_service_id: no such messaging service")
    if service.purpose != "blast":
        raise ApiError(
            409,
            "service_not_blast",
            f"messaging service {service.name!r} is for 1:1 conversations; campaigns send only "
            "from a service of purpose 'blast', so 1:1 numbers never carry blasts",
        )
    return service


async def choose_sender(session: AsyncSession, service_id: int) -> PhoneNumber | None:
    """The number a campaign goes out from: the service's first number routed to an inbox
    (replies then land in that inbox's thread), else its first number."""
    stmt = (
        select(PhoneNumber)
        .where(PhoneNumber.messaging_service_id == service_id)
        .order_by(PhoneNumber.inbox_id.is_(None), PhoneNumber.id)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def routing_warnings(session: AsyncSession, service_id: int) -> list[dict[str, Any]]:
    """Loud warnings about where replies go: inboxes shared with 1:1 numbers, or none at all."""
    numbers = (
        await session.scalars(
            select(PhoneNumber).where(PhoneNumber.messaging_service_id == service_id)
        )
    ).all()
    warnings: list[dict[str, Any]] = []
    if numbers and all(number.inbox_id is None for number in numbers):
        warnings.append(
            {
                "code": "replies_unrouted",
                "detail": "no number of this service routes to an inbox: replies land in "
                "the Unrouted inbox, which only admins see",
            }
        )
    inbox_ids = sorted({number.inbox_id for number in numbers if number.inbox_id is not None})
    for inbox_id in inbox_ids:
        mixed = (
            await session.execute(
                select(PhoneNumber.number, MessagingService.name)
                .join(MessagingService, MessagingService.id == PhoneNumber.messaging_service_id)
                .where(
                    PhoneNumber.inbox_id == inbox_id,
                    PhoneNumber.messaging_service_id != service_id,
                    MessagingService.purpose != "blast",
                )
            )
        ).all()
        if mixed:
            inbox = await session.get(Inbox, inbox_id)
            names = ", ".join(sorted({name for _, name in mixed}))
            warnings.append(
                {
                    "code": "mixed_inbox",
                    "inbox_id": inbox_id,
                    "detail": f"inbox {inbox.name if inbox else inbox_id!r} also receives 1:1 "
                    f"numbers (service {names}); keep blast and 1:1 numbers in separate inboxes",
                }
            )
    return warnings


# --- recipients -----------------------------------------------------------------------------


async def ensure_contacts(session: AsyncSession, inputs: Sequence[RecipientInput]) -> list[int]:
    """Find or create a contact per input (by phone), filling in the names and fields given."""
    by_phone = {item.phone: item for item in inputs}
    found: dict[str, Contact] = {}
    for part in chunks(list(by_phone)):
        for contact in await session.scalars(select(Contact).where(Contact.phone.in_(part))):
            found[contact.phone] = contact
    now = utcnow()
    new = [
        {
            "phone": item.phone,
            "first_name": item.first_name,
            "last_name": item.last_name,
            "email": item.email,
            "fields": item.fields,
            "created_at": now,
            "updated_at": now,
        }
        for phone, item in by_phone.items()
        if phone not in found
    ]
    # One statement, compiled once and executed many, a chunk at a time (a VALUES list of 500
    # rows compiled afresh for every chunk was most of a big import's time in its transaction;
    # between chunks the event loop gets its turn).
    insert_new = sql.insert(session, Contact.__table__).on_conflict_do_nothing(
        index_elements=["phone"]
    )
    for part in chunks(new, EXECUTE_MANY):
        await session.execute(insert_new, list(part))
    for contact in found.values():
        _fill_in(contact, by_phone[contact.phone])
    await session.flush()
    ids: dict[str, int] = {phone: contact.id for phone, contact in found.items()}
    missing = [row["phone"] for row in new]
    for part in chunks(missing):
        rows = await session.execute(
            select(Contact.phone, Contact.id).where(Contact.phone.in_(part))
        )
        ids.update({phone: contact_id for phone, contact_id in rows.all()})
    return [ids[phone] for phone in by_phone]


def _fill_in(contact: Contact, item: RecipientInput) -> None:
    """An import updates the contact record with the values it carries (blanks change nothing)."""
    for name in ("first_name", "last_name", "email"):
        value = getattr(item, name)
        if value and getattr(contact, name) != value:
            setattr(contact, name, value)
    if item.fields:
        merged = {**(contact.fields or {}), **item.fields}
        if merged != contact.fields:
            contact.fields = merged


async def existing_contact_ids(session: AsyncSession, contact_ids: Any) -> list[int]:
    if not isinstance(contact_ids, list) or not all(is_id(i) for i in contact_ids):
        raise invalid("contact_ids must be a list of contact ids")
    wanted = list(dict.fromkeys(contact_ids))
    found: set[int] = set()
    for part in chunks(wanted):
        found.update((await session.scalars(select(Contact.id).where(Contact.id.in_(part)))).all())
    unknown = [i for i in wanted if i not in found]
    if unknown:
        raise invalid(f"no contact with id {', '.join(map(str, unknown[:20]))}", unknown=unknown)
    return wanted


async def filtered_contact_ids(session: AsyncSession, spec: Any) -> list[int]:
    """Contacts chosen by a filter: `inbox_ids` (a conversation there) and/or `fields` (equal)."""
    if not isinstance(spec, dict) or not spec:
        raise invalid('filter must be an object, e.g. {"inbox_ids": [1], "fields": {"year": "2"}}')
    unknown = set(spec) - {"inbox_ids", "fields", "all"}
    if unknown:
        raise invalid(f"filter: unknown keys {', '.join(sorted(unknown))}")
    inbox_ids = spec.get("inbox_ids")
    fields = spec.get("fields") or {}
    if not isinstance(fields, dict):
        raise invalid("filter.fields must be an object of field values")
    if inbox_ids is None and not fields and spec.get("all") is not True:
        raise invalid('an empty filter: give inbox_ids, fields, or "all": true')
    stmt = select(Contact.id, Contact.fields).order_by(Contact.id)
    if inbox_ids is not None:
        if not isinstance(inbox_ids, list) or not all(is_id(i) for i in inbox_ids):
            raise invalid("filter.inbox_ids must be a list of inbox ids")
        in_inboxes = select(Conversation.contact_id).where(Conversation.inbox_id.in_(inbox_ids))
        stmt = stmt.where(Contact.id.in_(in_inboxes))
    rows = (await session.execute(stmt)).all()
    return [
        contact_id
        for contact_id, values in rows
        if all(str((values or {}).get(key, "")) == str(value) for key, value in fields.items())
    ]


def require_draft(campaign: Campaign) -> None:
    if campaign.status != "draft":
        raise ApiError(409, "not_draft", "recipients can only be added to a draft campaign")


async def add_recipients(
    session: AsyncSession, campaign: Campaign, contact_ids: Sequence[int]
) -> Added:
    """Add contacts to a draft campaign (ones already in it are merged), then check merge fields."""
    require_draft(campaign)
    insert_recipients = (
        sql.insert(session, CampaignRecipient.__table__)
        .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
        .returning(CampaignRecipient.id)
    )
    added = 0
    for part in chunks(contact_ids, EXECUTE_MANY):
        rows = [{"campaign_id": campaign.id, "contact_id": i, "state": "pending"} for i in part]
        added += len((await session.execute(insert_recipients, rows)).all())
    await check_merge_fields(session, campaign.body, contact_ids)
    return Added(added=added, already=len(contact_ids) - added)


async def check_merge_fields(session: AsyncSession, body: str, contact_ids: Sequence[int]) -> None:
    """422 naming the contacts that lack a value for a merge field of `body`."""
    if not field_names(body):
        return
    missing: list[dict[str, Any]] = []
    count = 0
    for part in chunks(list(contact_ids)):
        for contact in await session.scalars(select(Contact).where(Contact.id.in_(part))):
            names = missing_fields(body, contact)
            if names:
                count += 1
                if len(missing) < MISSING_LISTED:
                    missing.append(
                        {
                            "contact_id": contact.id,
                            "phone": contact.phone,
                            "name": contact.display_name,
                            "fields": names,
                        }
                    )
    if count:
        listed = "; ".join(
            f"{item['name']} ({item['phone']}) has no {', '.join(item['fields'])}"
            for item in missing[:5]
        )
        more = f" and {count - 5} more" if count > 5 else ""
        raise ApiError(
            422,
            "missing_merge_fields",
            f"{count} recipient(s) lack a value for a merge field: {listed}{more}",
            missing=missing,
            missing_count=count,
        )


async def recipient_contact_ids(session: AsyncSession, campaign_id: int) -> list[int]:
    stmt = (
        select(CampaignRecipient.contact_id)
        .where(CampaignRecipient.campaign_id == campaign_id)
        .order_by(CampaignRecipient.id)
    )
    return list((await session.scalars(stmt)).all())


async def recipient_list(
    session: AsyncSession,
    campaign_id: int,
    *,
    state: str | None = None,
    count: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """Recipients in the order they were added, each with its contact and its message's status
    and error, by recipient `state` or by the progress `count` they are in; and the id to go
    on `after`, if there are more."""
    stmt = (
        select(CampaignRecipient, Contact, Message)
        .join(Contact, Contact.id == CampaignRecipient.contact_id)
        .outerjoin(Message, Message.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.campaign_id == campaign_id)
        .order_by(CampaignRecipient.id)
        .limit(limit + 1)
    )
    if state is not None:
        stmt = stmt.where(CampaignRecipient.state == state)
    if count is not None:
        stmt = stmt.where(campaign_stats.bucket() == count)
    if after is not None:
        stmt = stmt.where(CampaignRecipient.id > after)
    rows = (await session.execute(stmt)).all()
    items = [
        {
            "id": recipient.id,
            "state": recipient.state,
            "error_code": recipient.error_code,
            "contact": {"id": contact.id, "phone": contact.phone, "name": contact.display_name},
            "message": None
            if message is None
            else {
                "id": message.id,
                "conversation_id": message.conversation_id,
                "status": message.status,
                "error_code": message.error_code,
                "error_message": message.error_message,
            },
        }
        for recipient, contact, message in rows[:limit]
    ]
    return items, rows[limit - 1][0].id if len(rows) > limit else None


# --- creating and previewing ----------------------------------------------------------------


def check_text(data: dict[str, Any]) -> tuple[str, str]:
    name, body = data.get("name"), data.get("body")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise invalid("name is required (at most 200 characters)")
    if not isinstance(body, str) or not body.strip():
        raise invalid("body is required")
    if len(body) > MAX_BODY_CHARS:
        raise invalid(f"body is longer than {MAX_BODY_CHARS} characters")
    return name.strip(), body


def check_rate(value: Any) -> float:
    if value is None:
        return 10.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_RATE:
        raise invalid(f"rate_per_second must be a number above 0 and at most {MAX_RATE:g}")
    return float(value)


def check_start_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("start_at must be an ISO 8601 time with a zone, e.g. 2030-01-31T09:00:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid("start_at must be an ISO 8601 time with a zone") from None
    if moment.tzinfo is None:
        raise invalid("start_at needs a time zone (e.g. a trailing Z for UTC)")
    return moment


async def create(
    session: AsyncSession,
    *,
    name: str,
    body: str,
    service: MessagingService,
    rate_per_second: float,
    start_at: datetime | None,
    created_by: int | None,
) -> Campaign:
    campaign = Campaign(
        name=name,
        body=body,
        messaging_service_id=service.id,
        rate_per_second=rate_per_second,
        start_at=start_at,
        created_by=created_by,
        status="draft",
    )
    session.add(campaign)
    await session.flush()
    return campaign


async def preview(session: AsyncSession, campaign: Campaign, limit: int = 5) -> dict[str, Any]:
    """The first messages as they will read, and the segments they take."""
    stmt = (
        select(Contact)
        .join(CampaignRecipient, CampaignRecipient.contact_id == Contact.id)
        .where(CampaignRecipient.campaign_id == campaign.id)
        .order_by(CampaignRecipient.id)
        .limit(limit)
    )
    items = []
    for contact in await session.scalars(stmt):
        missing = missing_fields(campaign.body, contact)
        text = None if missing else render(campaign.body, contact)
        items.append(
            {
                "contact_id": contact.id,
                "phone": contact.phone,
                "name": contact.display_name,
                "body": text,
                "missing_fields": missing,
                "encoding": None if text is None else encoding(text),
                "segments": None if text is None else segment_count(text),
            }
        )
    return {
        "items": items,
        "template": {
            "encoding": encoding(campaign.body),
            "segments": segment_count(campaign.body),
        },
        "merge_fields": field_names(campaign.body),
        "segments_max": max(
            [item["segments"] or 0 for item in items] + [segment_count(campaign.body)]
        ),
    }


# --- life: send, pause, resume, cancel ---------------------------------------------------


async def locked(session: AsyncSession, campaign_id: int) -> Campaign:
    """The campaign, its row locked for this transaction (a no-op lock on SQLite's one writer).

    FOR NO KEY UPDATE: it does not wait for the key-share locks that messages being inserted
    with this campaign_id hold on the row.
    """
    stmt = (
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    campaign = (await session.scalars(stmt)).first()
    if campaign is None:
        raise not_found("campaign")
    return campaign


def _conflict(campaign: Campaign, action: str) -> ApiError:
    return ApiError(
        409,
        "bad_status",
        f"cannot {action} a campaign that is {campaign.status}",
        campaign_status=campaign.status,
    )


async def start(session: AsyncSession, campaign: Campaign) -> None:
    """draft → sending (or scheduled, when start_at is still ahead)."""
    if campaign.status != "draft":
        raise _conflict(campaign, "send")
    service = await blast_service(session, campaign.messaging_service_id)
    sender = await choose_sender(session, service.id)
    if sender is None:
        raise ApiError(
            409, "no_numbers", f"messaging service {service.name!r} has no phone numbers"
        )
    contact_ids = await recipient_contact_ids(session, campaign.id)
    if not contact_ids:
        raise ApiError(409, "no_recipients", "the campaign has no recipients")
    await check_merge_fields(session, campaign.body, contact_ids)
    campaign.from_number = sender.number
    now = utcnow()
    if campaign.start_at is not None and campaign.start_at > now:
        campaign.status = "scheduled"
    else:
        campaign.status = "sending"
        campaign.started_at = now
    await campaign_stats.emit_progress(session, campaign)


async def pause(session: AsyncSession, campaign: Campaign) -> None:
    if campaign.status not in {"sending", "scheduled"}:
        raise _conflict(campaign, "pause")
    campaign.status = "paused"
    await _set_recipients(session, campaign.id, ("claimed",), state="pending", claimed_by=None)
    await campaign_stats.emit_progress(session, campaign)


async def resume(session: AsyncSession, campaign: Campaign) -> None:
    if campaign.status != "paused":
        raise _conflict(campaign, "resume")
    now = utcnow()
    if campaign.started_at is None and campaign.start_at is not None and campaign.start_at > now:
        campaign.status = "scheduled"
    else:
        campaign.status = "sending"
        campaign.started_at = campaign.started_at or now
    await campaign_stats.emit_progress(session, campaign)


async def cancel(session: AsyncSession, campaign: Campaign) -> None:
    """Stop for good: recipients not yet being sent to are canceled (in-flight sends finish)."""
    if campaign.status in {"done", "canceled"}:
        raise _conflict(campaign, "cancel")
    campaign.status = "canceled"
    campaign.finished_at = utcnow()
    await _set_recipients(session, campaign.id, ("pending", "claimed"), state="canceled")
    await campaign_stats.emit_progress(session, campaign)


async def _set_recipients(
    session: AsyncSession, campaign_id: int, states: tuple[str, ...], **values: Any
) -> None:
    await session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state.in_(states))
        .values(**values)
    )
