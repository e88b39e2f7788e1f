"""What can be a row's id: a positive integer that fits a BIGINT. Anything else (a bool, a
negative number, 2**80) names no row, and is refused before it reaches the database, where
the driver would fail on it."""

from __future__ import annotations

MAX_ID = 2**62


def is_id(value: object) -> bool:
    """Whether `value` can be a row's id: an int (not a bool) from 1 to MAX_ID."""
    return type(value) is int and 0 < value <= MAX_ID


def parse_id(text: str) -> int | None:
    """`text` as a row's id when it is one written in decimal digits, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if is_id(number) else None
