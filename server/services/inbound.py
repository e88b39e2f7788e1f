"""Inbound SMS from Twilio's webhook: stored once per MessageSid, routed by `To`.

Idempotency rests on the unique constraint on `messages.twilio_sid`, not on a lookup: a
retried or concurrent duplicate fails its insert, its whole transaction (and every event it
emitted) rolls back, and the caller answers 200 as for the first delivery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.errors import ApiError
from server.phones import InvalidPhone, to_e164
from server.services.contacts import find_or_create_contact
from server.services.conversations import get_or_create_conversation, record_message
from server.services.optout import requested_action, set_opt_out
from server.services.routing import route_inbound
from server.services.segments import segment_count
from server.state import AppState
from store.models import Message

log = logging.getLogger("switchboard.inbound")

SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
MAX_BODY_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class InboundSms:
    message_sid: str
    from_number: str
    to_number: str
    body: str
    num_media: int = 0
    num_segments: int | None = None
    messaging_service_sid: str | None = None
    opt_out_type: str | None = None


def parse_inbound(form: Mapping[str, str]) -> InboundSms:
    """The webhook's parameters, checked; a clear 400 for anything unusable."""
    sid = (form.get("MessageSid") or form.get("SmsMessageSid") or "").strip()
    if not SID_PATTERN.match(sid):
        raise ApiError(400, "bad_request", "MessageSid is missing or malformed")
    numbers = {}
    for field in ("From", "To"):
        raw = form.get(field)
        if not raw:
            raise ApiError(400, "bad_request", f"{field} is missing")
        try:
            numbers[field] = to_e164(raw)
        except InvalidPhone:
            raise ApiError(400, "bad_request", f"{field} is not a phone number: {raw!r}") from None
    body = form.get("Body") or ""
    if len(body) > MAX_BODY_CHARS:
        raise ApiError(400, "bad_request", f"Body is longer than {MAX_BODY_CHARS} characters")
    return InboundSms(
        message_sid=sid,
        from_number=numbers["From"],
        to_number=numbers["To"],
        body=body,
        num_media=_count(form.get("NumMedia")) or 0,
        num_segments=_count(form.get("NumSegments")),
        messaging_service_sid=(form.get("MessagingServiceSid") or "").strip() or None,
        opt_out_type=(form.get("OptOutType") or "").strip() or None,
    )


def _count(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 6 else None


async def receive(state: AppState, sms: InboundSms) -> Message | None:
    """Store an inbound SMS and apply its opt-out keyword; None when it is a repeat.

    Everything, the opt-out included, commits before this returns, so the opt-out is in force
    when the webhook answers 200.
    """
    try:
        async with state.transaction() as session:
            route = await route_inbound(session, sms.to_number, sms.messaging_service_sid)
            contact = await find_or_create_contact(session, sms.from_number)
            conversation = await get_or_create_conversation(session, route.inbox.id, contact.id)
            action = requested_action(sms.body, sms.opt_out_type)
            service_id = route.messaging_service_id
            message = Message(
                direction="inbound",
                tag="inbound",
                body=sms.body,
                status="received",
                from_number=sms.from_number,
                to_number=sms.to_number,
                twilio_sid=sms.message_sid,
                messaging_service_id=service_id,
                segments=sms.num_segments or segment_count(sms.body),
                num_media=sms.num_media,
                opt_change=_opt_change(action) if service_id is not None else None,
            )
            await record_message(session, conversation, message)
            if action is not None and service_id is not None:
                await set_opt_out(
                    session,
                    messaging_service_id=service_id,
                    phone=contact.phone,
                    opted_out=action == "opt_out",
                    source="opt_out_type" if sms.opt_out_type else "keyword",
                    message_id=message.id,
                    extra_inbox_ids=[route.inbox.id],
                )
            elif action is not None:
                log.warning("%s to unknown number %s: no messaging service", action, sms.to_number)
    except IntegrityError:
        if await _already_stored(state, sms.message_sid):
            log.info("repeated webhook for %s ignored", sms.message_sid)
            return None
        raise
    return message


def _opt_change(action: str | None) -> str | None:
    return {"opt_out": "opted_out", "opt_in": "opted_in"}.get(action or "")


async def _already_stored(state: AppState, sid: str) -> bool:
    async with state.reading() as session:
        found = await session.scalar(select(Message.id).where(Message.twilio_sid == sid))
    return found is not None
