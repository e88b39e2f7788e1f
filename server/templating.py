"""Jinja2 for the pages: the environment, its filters, and cache-busted static URLs.

Autoescaping is on for every template, so anything a user wrote (a message body, a contact's
name) reaches the page as text. Times are shown in the viewer's time zone, which the browser
script reports in the `sb_tz` cookie (UTC until it has).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from starlette.requests import Request
from starlette.templating import Jinja2Templates

import web
from server import labels

WEB_DIR = Path(web.__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
TZ_COOKIE = "sb_tz"

_US_NUMBER = re.compile(r"^\+1(\d{3})(\d{3})(\d{4})$")


def viewer_zone(request: Request) -> ZoneInfo:
    name = request.cookies.get(TZ_COOKIE, "")
    if name and len(name) < 64 and re.fullmatch(r"[A-Za-z0-9_+\-/]+", name):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A timestamp from the database or from a JSON shape (ISO 8601 with a `Z`)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pretty_phone(number: str | None) -> str:
    """A North American number as (415) 555-0100; any other number stays in E.164."""
    if not number:
        return ""
    match = _US_NUMBER.match(number)
    if match:
        return f"({match[1]}) {match[2]}-{match[3]}"
    return number


def clock(moment: datetime) -> str:
    return moment.strftime("%I:%M %p").lstrip("0")


def short_when(moment: datetime, today: date) -> str:
    """How a conversation list says when: 2:05 PM today, Mon this week, Mar 3, Mar 3, 2023."""
    day = moment.date()
    if day == today:
        return clock(moment)
    if today - timedelta(days=6) <= day < today:
        return moment.strftime("%a")
    if day.year == today.year:
        return f"{moment.strftime('%b')} {day.day}"
    return f"{moment.strftime('%b')} {day.day}, {day.year}"


def day_label(day: date, today: date) -> str:
    """A thread's day separator: Today, Yesterday, Monday, March 3, or March 3, 2023."""
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if day.year == today.year:
        return f"{day.strftime('%A, %B')} {day.day}"
    return f"{day.strftime('%B')} {day.day}, {day.year}"


def initials(name: str | None) -> str:
    words = [w for w in re.split(r"[\s.@_-]+", name or "") if w and w[0].isalnum()]
    if not words:
        return "#"
    if len(words) == 1:
        return words[0][:2].upper() if words[0][0].isalpha() else "#"
    return (words[0][0] + words[-1][0]).upper()


def avatar_hue(seed: str | int | None) -> int:
    """A stable colour (one of the 12 `.hue-N` classes) for an avatar, from an id or phone.

    The browser script computes the same with the same sum, so live rows match rendered ones.
    """
    return sum(str(seed).encode()) % 12


@cache
def _static_version(path: str) -> str:
    target = (STATIC_DIR / path).resolve()
    if not target.is_relative_to(STATIC_DIR) or not target.is_file():
        raise FileNotFoundError(f"no static file {path}")
    return hashlib.sha256(target.read_bytes()).hexdigest()[:12]


def static_url(path: str) -> str:
    """`/static/<path>?v=<content hash>`: browsers may cache it for good, edits still show."""
    return f"/static/{path}?v={_static_version(path)}"


class Templates(Jinja2Templates):
    """Jinja2Templates whose filters know the viewer's time zone."""

    def __init__(self) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            phone=pretty_phone,
            status_words=labels.status_words,
            initials=initials,
            hue=avatar_hue,
        )
        env.globals.update(
            static_url=static_url,
            error_words=labels.error_words,
            tag_words=labels.TAG_WORDS,
            problem_statuses=labels.PROBLEM_STATUSES,
            status_kind=labels.status_kind,
        )
        super().__init__(env=env)

    def page(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Any:
        zone = viewer_zone(request)
        today = datetime.now(zone).date()

        def local(value: datetime | str | None) -> datetime | None:
            moment = as_datetime(value)
            return moment.astimezone(zone) if moment else None

        def when(value: datetime | str | None) -> str:
            moment = local(value)
            return short_when(moment, today) if moment else ""

        def at(value: datetime | str | None) -> str:
            moment = local(value)
            return clock(moment) if moment else ""

        def day_of(value: datetime | str | None) -> str:
            moment = local(value)
            return day_label(moment.date(), today) if moment else ""

        def full(value: datetime | str | None) -> str:
            moment = local(value)
            if moment is None:
                return ""
            return f"{day_label(moment.date(), today)}, {clock(moment)}"

        context = {**context, "when": when, "at": at, "day_of": day_of, "full_time": full}
        return self.TemplateResponse(request, name, context, status_code=status_code)


templates = Templates()
