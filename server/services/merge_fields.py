"""Campaign bodies: `{field}` merge fields filled from a contact, and SMS segment counts."""

from __future__ import annotations

import math
import re
from typing import Any

from store.models import Contact

FIELD = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
CONTACT_ATTRIBUTES = ("first_name", "last_name", "email", "phone")

# The GSM 03.38 alphabet: its basic characters take one 7-bit unit, the extension ones two.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def field_names(body: str) -> list[str]:
    """The merge fields `body` uses, in order of first use."""
    return list(dict.fromkeys(FIELD.findall(body)))


def field_value(contact: Contact, name: str) -> str | None:
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


def missing_fields(body: str, contact: Contact) -> list[str]:
    return [name for name in field_names(body) if field_value(contact, name) is None]


class MissingMergeField(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"no value for {', '.join(names)}")
        self.names = names


def render(body: str, contact: Contact) -> str:
    """`body` with every merge field filled; MissingMergeField rather than a blank in a text."""
    missing = missing_fields(body, contact)
    if missing:
        raise MissingMergeField(missing)
    return FIELD.sub(lambda match: field_value(contact, match.group(1)) or "", body)


def segments(text: str) -> tuple[str, int]:
    """The encoding (`GSM-7` or `UCS-2`) and number of SMS segments `text` is sent as."""
    if all(char in GSM_BASIC or char in GSM_EXTENSION for char in text):
        units = sum(2 if char in GSM_EXTENSION else 1 for char in text)
        return "GSM-7", 1 if units <= 160 else math.ceil(units / 153)
    units = sum(2 if ord(char) > 0xFFFF else 1 for char in text)  # UTF-16 code units
    return "UCS-2", 1 if units <= 70 else math.ceil(units / 67)
