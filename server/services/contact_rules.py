"""What a contact's email and free fields may hold: one set of rules for the contacts API and
for campaign imports, so an import cannot store a contact the API would refuse."""

from __future__ import annotations

import re
from typing import Any

MAX_FIELDS = 50
MAX_FIELD_VALUE = 2000
MAX_FIELD_NAME = 64
FIELD_NAME = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_FIELD_NAME}}}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def email_problem(email: str) -> str | None:
    """Why `email` (blank is fine) is not an email address, or None."""
    return "email must be an email address" if email and not EMAIL.fullmatch(email) else None


def fields_problem(fields: dict[Any, Any]) -> tuple[str, str] | None:
    """The first rule `fields` breaks, as (where, what), or None."""
    if len(fields) > MAX_FIELDS:
        return "fields", f"at most {MAX_FIELDS} fields"
    for key, value in fields.items():
        where = f"fields.{key}"
        if not isinstance(key, str) or not FIELD_NAME.fullmatch(key):
            return where, f"field names are 1 to {MAX_FIELD_NAME} letters, digits or underscores"
        if value is not None and not isinstance(value, str | int | float | bool):
            return where, "field values are strings, numbers, booleans or null"
        if isinstance(value, str) and len(value) > MAX_FIELD_VALUE:
            return where, f"field values are at most {MAX_FIELD_VALUE} characters"
    return None
