"""Phone numbers, normalised to E.164 with the `phonenumbers` library."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "US"


class InvalidPhone(ValueError):
    pass


# The same few numbers come back on every webhook (an office's own, its busiest contacts), and
# parsing one costs more than the rest of reading the webhook's fields.
@lru_cache(maxsize=4096)
def to_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """`raw` as E.164 (`+14155550100`); raises InvalidPhone for anything that is not a number."""
    text = (raw or "").strip()
    if not text or len(text) > 40:
        raise InvalidPhone(f"not a phone number: {raw!r}")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhone(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_e164(raw: str) -> str | None:
    try:
        return to_e164(raw)
    except InvalidPhone:
        return None
