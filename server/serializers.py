"""The JSON shapes of the HTTP API; websocket events carry exactly the same shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from store.models import (
    Campaign,
    Contact,
    Conversation,
    Inbox,
    Message,
    MessagingService,
    PhoneNumber,
    User,
)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:  # the database's datetimes come back in UTC already
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "active": user.active,
        "created_at": iso(user.created_at),
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "name": contact.display_name,
        "email": contact.email,
        "fields": contact.fields or {},
        "created_at": iso(contact.created_at),
    }


def message_json(message: Message | Row[Any]) -> dict[str, Any]:
    """A message, from its object or its row (the same names)."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "tag": message.tag,
        "body": message.body,
        "status": message.status,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "from": message.from_number,
        "to": message.to_number,
        "twilio_sid": message.twilio_sid,
        "sent_by": message.sent_by,
        "campaign_id": message.campaign_id,
        "segments": message.segments,
        "opt_change": message.opt_change,
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
    }


def conversation_json(
    conversation: Conversation, last_message: Message | Row[Any] | None, unread_count: int
) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "inbox_id": conversation.inbox_id,
        "contact": contact_json(conversation.contact),
        "last_message": message_json(last_message) if last_message else None,
        "last_message_at": iso(conversation.last_message_at),
        "unread_count": unread_count,
        "created_at": iso(conversation.created_at),
    }


def messaging_service_json(service: MessagingService) -> dict[str, Any]:
    return {
        "id": service.id,
        "sid": service.sid,
        "name": service.name,
        "purpose": service.purpose,
        "created_at": iso(service.created_at),
    }


def phone_number_json(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.id,
        "sid": number.sid,
        "number": number.number,
        "messaging_service_id": number.messaging_service_id,
        "inbox_id": number.inbox_id,
        "created_at": iso(number.created_at),
    }


def inbox_json(inbox: Inbox, unread_count: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": inbox.id,
        "name": inbox.name,
        "is_unrouted": inbox.is_unrouted,
        "notifications": {
            "enabled": inbox.notify_enabled,
            "delay_seconds": inbox.notify_delay_seconds,
            "to": inbox.notify_to,
        },
        "created_at": iso(inbox.created_at),
    }
    if unread_count is not None:
        data["unread_count"] = unread_count
    return data


def campaign_json(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "messaging_service_id": campaign.messaging_service_id,
        "body": campaign.body,
        "status": campaign.status,
        "rate_per_second": campaign.rate_per_second,
        "start_at": iso(campaign.start_at),
        "created_at": iso(campaign.created_at),
        "started_at": iso(campaign.started_at),
        "finished_at": iso(campaign.finished_at),
        "counts": counts,
    }
