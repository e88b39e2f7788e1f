"""Sending one SMS: quick messages and contact-record sends call `send_message` or
`send_to_contact`; campaigns, which group their transactions, call its steps (`call_twilio`,
`store_results`).

Two transactions around one gateway call. The first checks the opt-out, picks the sending
number and records the message as `sending` (announced at once); the second stores what
Twilio answered — sid and status, or `failed` with the error code — and applies any status
callback that arrived before it. The gateway call is made once: no retries of ours, so a
timeout or a 5xx ends as a visible `failed` message, never as a silent drop or a double send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import ApiError, invalid, not_found
from server.services import status as statuses
from server.services.conversations import (
    get_or_create_conversation,
    record_message,
)
from server.services.optout import is_opted_out
from server.services.routing import is_our_number
from server.services.segments import segment_count
from server.state import AppState
from server.twilio.gateway import Gateway, SendResult
from server.twilio.setup import gateway_of
from store.models import Contact, Conversation, Inbox, Message, PhoneNumber, utcnow

log = logging.getLogger("switchboard.outbound")

MAX_BODY_CHARS = 1600
STATUS_CALLBACK_PATH = "/twilio/status"
# Built once: constructing a statement costs more than running it from the compiled cache.
_LOCK_MESSAGES = (
    select(Message)
    .where(Message.id.in_(bindparam("ids", expanding=True)))
    .order_by(Message.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)

ConversationResolver = Callable[[AsyncSession], Awaitable[Conversation]]


def check_body(body: object) -> str:
    """The body to send, or 422: a non-empty string of at most 1600 characters."""
    if not isinstance(body, str) or not body.strip():
        raise invalid("body must be a non-empty string", field="body")
    if len(body) > MAX_BODY_CHARS:
        raise invalid(f"body is longer than {MAX_BODY_CHARS} characters", field="body")
    return body


async def send_message(
    state: AppState,
    *,
    conversation_id: int,
    body: str,
    sent_by: int | None,
    tag: str = "quick",
    campaign_id: int | None = None,
    from_number: str | None = None,
) -> Message:
    """Send `body` in a conversation; the stored message, whatever became of the send.

    Raises ApiError before anything is sent: 404 for no such conversation, 409 `opted_out`
    when the contact is opted out of the sending number's messaging service, 409
    `no_number` when the inbox has no number to send from, 422 for a bad body or an unknown
    `from_number`. `from_number` (campaigns) overrides the sticky sender.
    """

    async def existing(session: AsyncSession) -> Conversation:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise not_found("conversation")
        return conversation

    return await _send(state, existing, body, sent_by, tag, campaign_id, from_number)


async def send_to_contact(
    state: AppState, *, contact_id: int, inbox_id: int, body: str, sent_by: int | None
) -> Message:
    """Send from an inbox to a contact, starting their conversation there if need be.

    The conversation is created in the same transaction that records the message, so a
    refused send (opted out, no number) leaves no empty conversation behind.
    """

    async def start(session: AsyncSession) -> Conversation:
        if await session.get(Inbox, inbox_id) is None:
            raise not_found("inbox")
        if await session.get(Contact, contact_id) is None:
            raise not_found("contact")
        return await get_or_create_conversation(session, inbox_id, contact_id)

    return await _send(state, start, body, sent_by, "quick", None, None)


async def _send(
    state: AppState,
    resolve: ConversationResolver,
    body: str,
    sent_by: int | None,
    tag: str,
    campaign_id: int | None,
    from_number: str | None,
) -> Message:
    body = check_body(body)
    gateway = gateway_of(state)
    async with state.transaction() as session:
        conversation = await resolve(session)
        number = await _sending_number(session, conversation, from_number)
        contact = conversation.contact
        if await is_our_number(session, contact.phone):
            raise invalid(
                f"{contact.display_name} is one of our own numbers: a text to it would come back"
            )
        if await is_opted_out(session, number.messaging_service_id, contact.phone):
            raise ApiError(
                409,
                "opted_out",
                f"{contact.display_name} opted out of texts from "
                f"{number.messaging_service.name} (they replied STOP); they have to text "
                f"START to one of its numbers before anyone can text them again",
            )
        service_sid = number.messaging_service.sid
        message = Message(
            direction="outbound",
            tag=tag,
            body=body,
            status="sending",
            from_number=number.number,
            to_number=contact.phone,
            messaging_service_id=number.messaging_service_id,
            segments=segment_count(body),
            sent_by=sent_by,
            campaign_id=campaign_id,
        )
        await record_message(session, conversation, message)
    # Once recorded, the message must reach its outcome even if our caller goes away.
    return await asyncio.shield(hand_over(state, gateway, message, service_sid))


async def hand_over(
    state: AppState, gateway: Gateway, message: Message, service_sid: str | None
) -> Message:
    result = await call_twilio(state, gateway, message, service_sid)
    try:
        async with state.transaction() as session:
            [message] = await store_results(session, [(message.id, result)])
    except Exception:
        log_unstored(message.id, result)
        raise
    if message.twilio_sid is not None:
        await statuses.settle_pending(state, message.twilio_sid)
    return message


async def call_twilio(
    state: AppState, gateway: Gateway, message: Message | Row[Any], service_sid: str | None
) -> SendResult:
    """Give a recorded `sending` message to Twilio, once; what Twilio answered."""
    return await gateway.send(
        to=message.to_number,
        from_=message.from_number,
        body=message.body,
        status_callback=state.settings.public_base + STATUS_CALLBACK_PATH,
        messaging_service_sid=service_sid,
    )


def log_unstored(message_id: int, result: SendResult) -> None:
    log.exception(
        "message %s went to Twilio (sid %s, %s) but its outcome could not be stored",
        message_id,
        result.sid,
        result.error_code or result.status,
    )


STALE_DETAIL = (
    "the server sending this message stopped before Twilio's answer was stored; "
    "it was not sent again"
)


async def settle_stale_quick_sends(state: AppState, older_than: timedelta) -> int:
    """Quick messages left `sending` by a process that died before Twilio's answer was stored
    (no sid, older than `older_than`, which is far past the gateway's timeout) become
    `unknown`, announced like any status, so nobody waits on them. They are never sent again:
    Twilio may have taken them. Returns how many were settled."""
    cutoff = utcnow() - older_than
    async with state.transaction() as session:
        stale = (
            await session.scalars(
                select(Message)
                .where(
                    Message.tag == "quick",
                    Message.status == "sending",
                    Message.twilio_sid.is_(None),
                    Message.created_at < cutoff,
                )
                .with_for_update()
            )
        ).all()
        for message in stale:
            log.warning("message %s was left sending by a dead process: unknown", message.id)
            await statuses.settle_unknown(session, message, STALE_DETAIL)
    return len(stale)


async def store_results(
    session: AsyncSession, results: Sequence[tuple[int, SendResult]]
) -> list[Message]:
    """Store what Twilio answered for each message id (sid and status, or `failed` with the
    error), with any statuses that arrived before the sid, and announce them; set-wide, so a
    group of sends costs a few statements. The caller commits, then looks for pending
    statuses again (`status.settle_pending`): one may have come in meanwhile."""
    ids = sorted({message_id for message_id, _ in results})
    found = {message.id: message for message in await session.scalars(_LOCK_MESSAGES, {"ids": ids})}
    messages: list[Message] = []
    for message_id, result in results:
        message = found[message_id]
        if result.sid is not None:
            message.twilio_sid = result.sid
            message.status = result.status
        else:
            log.warning(
                "message %s to %s failed: %s", message.id, message.to_number, result.error_code
            )
            message.status = "failed"
        await statuses.record_error(session, message, result.error_code, result.error_message)
        messages.append(message)
    await statuses.apply_pending(session, messages)
    await statuses.announce(session, messages)
    return messages


async def _is_unrouted(session: AsyncSession, conversation: Conversation) -> bool:
    inbox = await session.get(Inbox, conversation.inbox_id)
    return inbox is not None and inbox.is_unrouted


async def _sending_number(
    session: AsyncSession, conversation: Conversation, from_number: str | None
) -> PhoneNumber:
    """The number to send from: the one asked for, else sticky, else the inbox's first.

    The sticky number counts while it still feeds this inbox; in the Unrouted inbox (fed by
    no number) it counts while it is one of ours, so admins can answer strays.
    """
    if from_number is not None:
        number = await session.scalar(select(PhoneNumber).where(PhoneNumber.number == from_number))
        if number is None:
            raise invalid(f"{from_number} is not one of our phone numbers", field="from_number")
        return number
    in_inbox = select(PhoneNumber).where(PhoneNumber.inbox_id == conversation.inbox_id)
    if conversation.sticky_number:
        sticky = await session.scalar(
            select(PhoneNumber).where(PhoneNumber.number == conversation.sticky_number)
        )
        if sticky is not None and (
            sticky.inbox_id == conversation.inbox_id or await _is_unrouted(session, conversation)
        ):
            return sticky
    first = await session.scalar(in_inbox.order_by(PhoneNumber.id).limit(1))
    if first is None:
        raise ApiError(
            409, "no_number", "this inbox has no phone number to send from; route one to it"
        )
    return first
