"""Checking what API callers send: JSON bodies field by field, and query parameters.

Every problem is a 422 naming the field (`{"error":"invalid","detail":…,"field":…}`); a field
the call does not know is refused too, so a typo never passes silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from server.errors import invalid
from server.queries import DEFAULT_LIMIT, MAX_LIMIT
from store.ids import MAX_ID, is_id

MISSING: Any = object()


class Fields:
    """The fields of one JSON body; each accessor checks one field's type and bounds."""

    def __init__(self, data: dict[str, Any], allowed: Iterable[str]) -> None:
        known = set(allowed)
        for name in data:
            if name not in known:
                raise invalid(f"unknown field {name!r}", field=name)
        self.data = data

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data:
            if required:
                raise invalid(f"{name} is required", field=name)
            return MISSING
        return self.data[name]

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        max_length: int = 200,
        blank: bool = False,
        nullable: bool = False,
    ) -> Any:
        """A string, stripped; MISSING when absent and not required."""
        value = self._get(name, required)
        if value is MISSING or (value is None and nullable):
            return value
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string", field=name)
        value = value.strip()
        if not value and not blank:
            raise invalid(f"{name} must not be empty", field=name)
        if len(value) > max_length:
            raise invalid(f"{name} must be at most {max_length} characters", field=name)
        if "\x00" in value:
            raise invalid(f"{name} must not contain NUL characters", field=name)
        return value

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = True) -> Any:
        value = self._get(name, required)
        if value is MISSING:
            return value
        if not isinstance(value, str) or value not in choices:
            raise invalid(f"{name} must be one of {', '.join(choices)}", field=name)
        return value

    def boolean(self, name: str, *, required: bool = True) -> Any:
        value = self._get(name, required)
        if value is not MISSING and not isinstance(value, bool):
            raise invalid(f"{name} must be true or false", field=name)
        return value

    def integer(
        self,
        name: str,
        *,
        required: bool = True,
        minimum: int = 0,
        maximum: int = MAX_ID,
        nullable: bool = False,
    ) -> Any:
        value = self._get(name, required)
        if value is MISSING or (value is None and nullable):
            return value
        if type(value) is not int or not minimum <= value <= maximum:
            raise invalid(f"{name} must be an integer from {minimum} to {maximum}", field=name)
        return value

    def object_id(self, name: str, *, required: bool = True, nullable: bool = False) -> Any:
        """The id of another object (a positive integer), or None when `nullable`."""
        value = self._get(name, required)
        if value is MISSING or (value is None and nullable):
            return value
        if not is_id(value):
            raise invalid(f"{name} must be the id of an existing object", field=name)
        return value

    def mapping(self, name: str, *, required: bool = False) -> Any:
        value = self._get(name, required)
        if value is not MISSING and not isinstance(value, dict):
            raise invalid(f"{name} must be a JSON object", field=name)
        return value


def query_text(request: Request, name: str, max_length: int = 200) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise invalid(f"{name} must be at most {max_length} characters", field=name)
    if "\x00" in value:
        raise invalid(f"{name} must not contain NUL characters", field=name)
    return value


def query_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def paging(request: Request) -> dict[str, Any]:
    """The `cursor` and `limit` of a list call, checked."""
    return {"cursor": query_text(request, "cursor"), "limit": query_limit(request)}
