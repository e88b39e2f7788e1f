"""Campaigns: creating one with its recipients, previewing it, and its life (send, pause, …).

Sending itself is the worker's (`campaign_sender`). Here a campaign is checked before anything
is stored: a blast messaging service with numbers, recipients that exist, and a value for every
merge field of every recipient — otherwise the error names the contacts, and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, bindparam, delete, literal, null, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ApiError, invalid, not_found
from server.services import campaign_stats, sql
from server.services.merge_fields import (
    ContactValues,
    encoding,
    field_names,
    missing_fields,
    render,
    required_fields,
    uses_custom_fields,
)
from server.services.outbound import MAX_BODY_CHARS
from server.services.recipient_import import RecipientInput
from server.services.segments import segment_count
from server.state import AppState
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
    display_name,
    utcnow,
)

CHUNK = 500
# Contacts an import creates or fills in per write transaction (about 50 ms of it on SQLite).
IMPORT_CHUNK = 2000
MAX_RATE = 10_000.0
# A start this little in the past (a clock a little behind, a minute-precise form) means now.
START_AT_SLACK = timedelta(minutes=5)
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


async def import_people(state: AppState, people: Sequence[RecipientInput]) -> list[int]:
    """The contacts of the people an import names, created or filled in IMPORT_CHUNK at a time.

    Each chunk is its own short transaction, so that on SQLite, where a write transaction
    holds the one write lock, an import of 100,000 never keeps inbound webhooks waiting for
    more than a chunk. Check merge fields first (`check_import_merge_fields`): past that
    nothing refuses an import, and one cut off midway is completed by sending it again.
    """
    ids: list[int] = []
    for part in chunks(people, IMPORT_CHUNK):
        async with state.transaction() as session:
            ids.extend(await ensure_contacts(session, part))
    return ids


async def ensure_contacts(session: AsyncSession, inputs: Sequence[RecipientInput]) -> list[int]:
    """Find or create a contact per input (by phone), filling in the names and fields given.

    Known contacts are read as rows and only the changed ones are written back, by one
    statement executed many: loading Contact objects cost a big import seconds.
    """
    by_phone = {item.phone: item for item in inputs}
    known = await _known_by_phone(session, list(by_phone))
    now = utcnow()
    changes = []
    for phone, row in known.items():
        filled = _filled_in(row, by_phone[phone])
        if any(getattr(filled, name) != getattr(row, name) for name in _FILLED_IN):
            values = {name: getattr(filled, name) for name in _FILLED_IN}
            changes.append({**values, "contact_id": row.id, "updated_at": now})
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
        if phone not in known
    ]
    # One statement, compiled once and executed many (a VALUES list compiled afresh for every
    # chunk was most of a big import's time).
    if new:
        insert_new = sql.insert(session, Contact.__table__).on_conflict_do_nothing(
            index_elements=["phone"]
        )
        await session.execute(insert_new, new)
    if changes:
        await session.execute(_UPDATE_FILLED_IN, changes)
    ids = {phone: row.id for phone, row in known.items()}
    for part in chunks([row["phone"] for row in new]):
        rows = await session.execute(
            select(Contact.phone, Contact.id).where(Contact.phone.in_(part))
        )
        ids.update({phone: contact_id for phone, contact_id in rows.all()})
    return [ids[phone] for phone in by_phone]


_CONTACTS = Contact.__table__
_FILLED_IN = ("first_name", "last_name", "email", "fields")
_UPDATE_FILLED_IN = (
    _CONTACTS.update()
    .where(_CONTACTS.c.id == bindparam("contact_id"))
    .values({name: bindparam(name) for name in (*_FILLED_IN, "updated_at")})
)


async def _known_by_phone(session: AsyncSession, phones: Sequence[str]) -> dict[str, Row[Any]]:
    """The contacts with these numbers, as rows of their values (`_values`)."""
    known: dict[str, Row[Any]] = {}
    values = _values()
    await sql.plan_each_statement(session)
    for part in chunks(phones):
        for row in await session.execute(values.where(Contact.phone.in_(part))):
            known[row.phone] = row
    return known


def _filled_in(known: ContactValues, item: RecipientInput) -> RecipientInput:
    """A known contact's values once an import fills it in: what it lacks is filled in, but
    a name or email it has stays (a list never renames someone staff know: their contact
    record does), and fields given are merged into its fields."""
    named = bool(known.first_name or known.last_name)
    return RecipientInput(
        phone=known.phone,
        first_name=known.first_name if named else item.first_name,
        last_name=known.last_name if named else item.last_name,
        email=known.email or item.email,
        fields={**(known.fields or {}), **item.fields} if item.fields else known.fields or {},
    )


async def existing_contact_ids(session: AsyncSession, contact_ids: Any) -> list[int]:
    if not isinstance(contact_ids, list) or not all(is_id(i) for i in contact_ids):
        raise invalid("contact_ids must be a list of contact ids")
    wanted = list(dict.fromkeys(contact_ids))
    found: set[int] = set()
    await sql.plan_each_statement(session)
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
    """Add contacts to a draft campaign (ones already in it are merged). Check their merge
    fields first (`check_merge_fields`, `check_import_merge_fields`), on a read."""
    require_draft(campaign)
    if not contact_ids:
        return Added(added=0, already=0)
    # One INSERT … SELECT over the ids passed as one value: the rows are made by the database,
    # not one by one in Python (100,000 took half a second that way, SQLite's write lock held).
    given = sql.id_table(session, contact_ids)
    # WHERE true: SQLite would read ON CONFLICT as part of a bare SELECT's join.
    rows = select(literal(campaign.id), given.c.id, literal("pending")).where(true())
    insert_recipients = (
        sql.insert(session, CampaignRecipient.__table__)
        .from_select(["campaign_id", "contact_id", "state"], rows.order_by(given.c.position))
        .on_conflict_do_nothing(index_elements=["campaign_id", "contact_id"])
    )
    added = (await session.execute(insert_recipients)).rowcount
    return Added(added=added, already=len(contact_ids) - added)


async def check_merge_fields(session: AsyncSession, body: str, contact_ids: Sequence[int]) -> None:
    """422 naming the contacts that lack a value for a merge field of `body`."""
    if not required_fields(body):
        return
    values = _values(with_fields=uses_custom_fields(body))
    rows: list[Row[Any]] = []
    await sql.plan_each_statement(session)
    for part in chunks(list(contact_ids)):
        rows.extend(await session.execute(values.where(Contact.id.in_(part))))
    _refuse_missing(body, [(row.id, row) for row in rows])


async def check_recipients_merge_fields(session: AsyncSession, campaign: Campaign) -> None:
    """`check_merge_fields` for every recipient a campaign has, in one statement."""
    if not required_fields(campaign.body):
        return
    stmt = (
        _values(with_fields=uses_custom_fields(campaign.body))
        .join(CampaignRecipient, CampaignRecipient.contact_id == Contact.id)
        .where(CampaignRecipient.campaign_id == campaign.id)
        .order_by(CampaignRecipient.id)
    )
    _refuse_missing(campaign.body, [(row.id, row) for row in await session.execute(stmt)])


def _values(with_fields: bool = True) -> Select[Any]:
    """Contacts as rows of the values imports and merge fields read, not Contact objects
    (loading 100,000 of those is seconds); without custom `fields` when nothing reads them
    (decoding 100,000 of them is a cost too)."""
    return select(
        Contact.id,
        Contact.phone,
        Contact.first_name,
        Contact.last_name,
        Contact.email,
        Contact.fields if with_fields else null().label("fields"),
    )


async def check_import_merge_fields(
    session: AsyncSession, body: str, people: Sequence[RecipientInput]
) -> None:
    """`check_merge_fields` for the people an import names, on the values the import will
    leave each with, before it writes anything (new people are listed without an id)."""
    if not required_fields(body):
        return
    known = await _known_by_phone(session, [person.phone for person in people])
    _refuse_missing(
        body,
        [
            (known[person.phone].id, _filled_in(known[person.phone], person))
            if person.phone in known
            else (None, person)
            for person in people
        ],
    )


def _refuse_missing(body: str, contacts: Sequence[tuple[int | None, ContactValues]]) -> None:
    missing: list[dict[str, Any]] = []
    count = 0
    for contact_id, values in contacts:
        names = missing_fields(body, values)
        if names:
            count += 1
            if len(missing) < MISSING_LISTED:
                missing.append(
                    {
                        "contact_id": contact_id,
                        "phone": values.phone,
                        "name": display_name(values.first_name, values.last_name, values.phone),
                        "fields": names,
                    }
                )
    if not count:
        return
    listed = "; ".join(
        f"{item['name']} ({item['phone']}) has no {', '.join(item['fields'])}"
        for item in missing[:5]
    )
    more = f" and {count - 5} more" if count > 5 else ""
    example = missing[0]["fields"][0]
    raise ApiError(
        422,
        "missing_merge_fields",
        f"{count} recipient(s) lack a value for a merge field: {listed}{more}. Give them one,"
        f" or a fallback in the text, like {{{example}|there}}",
        missing=missing,
        missing_count=count,
    )


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
        raise invalid(
            f"rate_per_second (texts per second) must be above 0 and at most {MAX_RATE:g}",
            field="rate_per_second",
        )
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
    if moment < utcnow() - START_AT_SLACK:
        raise invalid(
            f"start_at {value} is in the past: give a time ahead, or none to send when told"
        )
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
    """draft → sending (or scheduled, when start_at is still ahead). Check the recipients'
    merge fields first (`check_recipients_merge_fields`), on a read: for 100,000 that is a
    second, which SQLite's write lock would be held for."""
    if campaign.status != "draft":
        raise _conflict(campaign, "send")
    service = await blast_service(session, campaign.messaging_service_id)
    sender = await choose_sender(session, service.id)
    if sender is None:
        raise ApiError(
            409, "no_numbers", f"messaging service {service.name!r} has no phone numbers"
        )
    has_recipients = await session.scalar(
        select(CampaignRecipient.id).where(CampaignRecipient.campaign_id == campaign.id).limit(1)
    )
    if has_recipients is None:
        raise ApiError(409, "no_recipients", "the campaign has no recipients")
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


async def delete_campaign(session: AsyncSession, campaign: Campaign) -> None:
    """Forget a draft, or a canceled campaign that never sent a text: nothing of it is in any
    thread. One that sent texts stays, as the record of what went out."""
    if campaign.status not in {"draft", "canceled"}:
        raise _conflict(campaign, "delete")
    if await session.scalar(select(Message.id).where(Message.campaign_id == campaign.id).limit(1)):
        raise ApiError(
            409,
            "campaign_sent",
            f"{campaign.name} sent texts: it stays as the record of what went out",
            campaign_status=campaign.status,
        )
    await session.execute(
        delete(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id)
    )
    await session.delete(campaign)
    try:
        await session.flush()
    except IntegrityError:  # a send of a canceled campaign still finishing stored its text
        raise ApiError(409, "campaign_sent", f"{campaign.name} sent texts meanwhile") from None


async def _set_recipients(
    session: AsyncSession, campaign_id: int, states: tuple[str, ...], **values: Any
) -> None:
    await session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state.in_(states))
        .values(**values)
    )
