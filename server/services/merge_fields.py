"""Campaign bodies: `{field}` merge fields filled from a contact, and their SMS encoding.

`{field|fallback}` stands for the contact's value, or the fallback when it has none: a
field with a fallback never keeps a campaign from being sent. One without is required.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from server.services.segments import GSM7_BASIC, GSM7_EXTENDED

FIELD = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^{}|]*))?\}")
CONTACT_ATTRIBUTES = ("first_name", "last_name", "email", "phone")


class ContactValues(Protocol):
    """What merge fields read: a Contact, or a row of its value columns (cheaper by the
    hundred thousand)."""

    first_name: str
    last_name: str
    email: str
    phone: str
    fields: dict[str, Any] | None


def field_names(body: str) -> list[str]:
    """The merge fields `body` uses, in order of first use."""
    return list(dict.fromkeys(match.group(1) for match in FIELD.finditer(body)))


def required_fields(body: str) -> list[str]:
    """The merge fields `body` uses somewhere without a fallback: a contact needs a value."""
    return list(
        dict.fromkeys(match.group(1) for match in FIELD.finditer(body) if match.group(2) is None)
    )


def uses_custom_fields(body: str) -> bool:
    """Whether `body` reads a contact's custom `fields` rather than only its attributes."""
    return any(name not in CONTACT_ATTRIBUTES for name in field_names(body))


def field_value(contact: ContactValues, name: str) -> str | None:
    """The contact's value for merge field `name`, or None when it has none (or a blank one)."""
    if name in CONTACT_ATTRIBUTES:
        value: Any = getattr(contact, name)
    else:
        fields = contact.fields or {}
        value = fields.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in fields.items() if str(k).lower() == lowered), None)
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def missing_fields(body: str, contact: ContactValues) -> list[str]:
    """The required merge fields of `body` the contact has no value for."""
    return [name for name in required_fields(body) if field_value(contact, name) is None]


class MissingMergeField(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"no value for {', '.join(names)}")
        self.names = names


def render(body: str, contact: ContactValues) -> str:
    """`body` with every merge field filled; MissingMergeField rather than a blank in a text."""
    missing = missing_fields(body, contact)
    if missing:
        raise MissingMergeField(missing)
    return FIELD.sub(
        lambda match: field_value(contact, match.group(1)) or (match.group(2) or "").strip(),
        body,
    )


def encoding(text: str) -> str:
    """`GSM-7` when every character fits the GSM alphabet, else `UCS-2` (70 per segment)."""
    gsm = all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text)
    return "GSM-7" if gsm else "UCS-2"
