"""Inbound SMS from Twilio's webhook: stored once per MessageSid, routed by `To`.

A repeat (Twilio retrying, or the same webhook at two processes at once) is stored once. A
transaction first skips the sids already stored; a repeat that races past that lookup is
caught by the unique constraint on `messages.twilio_sid`: the transaction, and every event it
emitted, rolls back, its webhooks are tried again one by one, and the repeat then answers 200
as the first delivery did.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ApiError
from server.logging import current_request_id
from server.phones import InvalidPhone, to_e164
from server.services.contacts import find_or_create_contact_ids
from server.services.conversations import (
    add_messages,
    announce_message,
    get_or_create_conversations,
)
from server.services.group_commit import GroupCommit
from server.services.optout import Action, requested_action, set_opt_out
from server.services.routing import Route, route_inbound
from server.services.segments import segment_count
from server.state import AppState
from store import outbox
from store.models import Message

log = logging.getLogger("switchboard.inbound")

SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
MAX_BODY_CHARS = 10_000

# Built once: constructing a statement costs more than running it from the compiled cache.
_sids = Message.__table__.c.twilio_sid
_STORED_SIDS = select(_sids).where(_sids.in_(bindparam("sids", expanding=True)))


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


class Receiver:
    """Stores inbound SMS; webhooks that arrive while a transaction runs are stored together
    in the next one (`GroupCommit`), which is what lets one process keep up with a burst."""

    def __init__(self, state: AppState, group_limit: int = 64) -> None:
        self._group = GroupCommit(state, _receive_all, group_limit)

    async def receive(self, sms: InboundSms) -> Row[Any] | None:
        """Store an inbound SMS and apply its opt-out keyword: the stored message's row, or
        None when it is a repeat.

        Everything, the opt-out included, commits before this returns, so the opt-out is in
        force when the webhook answers 200.
        """
        item = (sms, current_request_id())
        try:
            return await self._group.submit(item)
        except IntegrityError:
            # The same sid, delivered at the same time elsewhere, committed first: now found.
            return await self._group.submit(item)


async def _receive_all(
    session: AsyncSession, items: Sequence[tuple[InboundSms, str | None]]
) -> list[Row[Any] | None]:
    """Store each SMS not stored before (by MessageSid), with set-wide lookups; each one's
    events carry the request id it came with."""
    sids = sorted({sms.message_sid for sms, _ in items})
    stored = set(await session.scalars(_STORED_SIDS, {"sids": sids}))
    fresh: dict[str, tuple[InboundSms, str | None]] = {}
    for sms, origin in items:
        if sms.message_sid in stored or sms.message_sid in fresh:
            log.info("repeated webhook for %s ignored", sms.message_sid)
        else:
            fresh[sms.message_sid] = (sms, origin)
    if not fresh:
        return [None] * len(items)
    smses = [sms for sms, _ in fresh.values()]
    routes = {
        key: await route_inbound(session, *key) for key in dict.fromkeys(map(_route_key, smses))
    }
    routed = [routes[_route_key(sms)] for sms in smses]
    contact_ids = await find_or_create_contact_ids(session, {sms.from_number for sms in smses})
    threads = [
        (route.inbox_id, contact_ids[sms.from_number])
        for sms, route in zip(smses, routed, strict=True)
    ]
    conversations = await get_or_create_conversations(session, threads)
    actions = [requested_action(sms.body, sms.opt_out_type) for sms in smses]
    added = await add_messages(
        session,
        [
            (conversations[thread], _message(sms, route, action))
            for sms, route, thread, action in zip(smses, routed, threads, actions, strict=True)
        ],
        key=("twilio_sid",),
    )
    for (_, origin), sms, route, action, (conversation, message) in zip(
        fresh.values(), smses, routed, actions, added, strict=True
    ):
        outbox.set_origin(session, origin)
        announce_message(session, conversation, message)
        if action is not None:
            await _apply_opt_out(session, sms, route, message, action)
    messages = {message.twilio_sid: message for _, message in added}
    return [messages.pop(sms.message_sid, None) for sms, _ in items]


def _route_key(sms: InboundSms) -> tuple[str, str | None]:
    return sms.to_number, sms.messaging_service_sid


def _message(sms: InboundSms, route: Route, action: Action | None) -> dict[str, Any]:
    return {
        "direction": "inbound",
        "tag": "inbound",
        "body": sms.body,
        "status": "received",
        "from_number": sms.from_number,
        "to_number": sms.to_number,
        "twilio_sid": sms.message_sid,
        "messaging_service_id": route.messaging_service_id,
        "segments": sms.num_segments or segment_count(sms.body),
        "num_media": sms.num_media,
        "opt_change": _opt_change(action) if route.messaging_service_id is not None else None,
    }


async def _apply_opt_out(
    session: AsyncSession, sms: InboundSms, route: Route, message: Row[Any], action: Action
) -> None:
    if route.messaging_service_id is None:
        log.warning("%s to unknown number %s: no messaging service", action, sms.to_number)
        return
    await set_opt_out(
        session,
        messaging_service_id=route.messaging_service_id,
        phone=sms.from_number,
        opted_out=action == "opt_out",
        source="opt_out_type" if sms.opt_out_type else "keyword",
        message_id=message.id,
        extra_inbox_ids=[route.inbox_id],
    )


def _opt_change(action: str | None) -> str | None:
    return {"opt_out": "opted_out", "opt_in": "opted_in"}.get(action or "")
