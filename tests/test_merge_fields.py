"""Merge fields: a contact's values, `{field|fallback}`, and what a campaign may not send."""

from __future__ import annotations

import pytest

from server.services.merge_fields import (
    MissingMergeField,
    field_names,
    missing_fields,
    render,
    required_fields,
)
from server.services.recipient_import import RecipientInput

ANN = RecipientInput(phone="+16175550100", first_name="Ann", fields={"School": "Elm High"})
NAMELESS = RecipientInput(phone="+16175550101", fields={"school": "  "})


def test_values_fill_fields_and_fallbacks_fill_what_a_contact_lacks() -> None:
    body = "Hi {first_name|there}, see you at { school | our campus }!"
    assert render(body, ANN) == "Hi Ann, see you at Elm High!"  # field keys match any case
    assert render(body, NAMELESS) == "Hi there, see you at our campus!"  # blank is no value
    assert field_names(body) == ["first_name", "school"]
    assert required_fields(body) == []
    assert missing_fields(body, NAMELESS) == []


def test_a_field_without_a_fallback_anywhere_is_required() -> None:
    body = "Hi {first_name|there}! {first_name}, your code is {code|}."
    assert required_fields(body) == ["first_name"]
    assert missing_fields(body, NAMELESS) == ["first_name"]
    with pytest.raises(MissingMergeField) as missing:
        render(body, NAMELESS)
    assert missing.value.names == ["first_name"]
    assert render(body, ANN) == "Hi Ann! Ann, your code is ."


def test_braces_that_are_not_a_field_are_left_as_written() -> None:
    body = "Use {promo code} or {a|b|c}, not {}"
    assert field_names(body) == []
    assert render(body, NAMELESS) == body
