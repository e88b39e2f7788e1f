"""Campaign recipients given as data (a JSON list or a CSV file): checked, normalised, merged.

Every problem is reported with where it is (list index or CSV line) so nothing is silently
dropped; numbers become E.164 and rows for the same number merge into one recipient.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from server.phones import InvalidPhone, to_e164
from server.services import contact_rules

MAX_RECIPIENTS = 200_000
MAX_ERRORS_LISTED = 100
NAME_COLUMNS = {"first_name", "last_name", "email"}
PHONE_ALIASES = {"phone", "phone_number", "mobile", "mobile_number", "cell", "number", "to"}
HEADER_ALIASES = {"first": "first_name", "firstname": "first_name", "given_name": "first_name"}
HEADER_ALIASES |= {"last": "last_name", "lastname": "last_name", "surname": "last_name"}
HEADER_ALIASES |= {"e_mail": "email", "email_address": "email"}


@dataclass
class RecipientInput:
    phone: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def absorb(self, other: RecipientInput) -> None:
        """Merge a duplicate row: values this one lacks are taken from it."""
        self.first_name = self.first_name or other.first_name
        self.last_name = self.last_name or other.last_name
        self.email = self.email or other.email
        for key, value in other.fields.items():
            if self.fields.get(key) in (None, ""):
                self.fields[key] = value


@dataclass
class ImportResult:
    recipients: list[RecipientInput]
    duplicates: int
    errors: list[dict[str, Any]]


class _Merger:
    def __init__(self) -> None:
        self.by_phone: dict[str, RecipientInput] = {}
        self.duplicates = 0

    def add(self, item: RecipientInput) -> None:
        existing = self.by_phone.get(item.phone)
        if existing is None:
            self.by_phone[item.phone] = item
        else:
            existing.absorb(item)
            self.duplicates += 1


def _text(value: Any, what: str, limit: int = 200) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    return value


def from_json(items: Any) -> ImportResult:
    """`recipients` of a campaign body: a list of {"phone", "first_name"?, "last_name"?, …}."""
    if not isinstance(items, list):
        return ImportResult([], 0, [{"index": None, "error": "recipients must be a list"}])
    if len(items) > MAX_RECIPIENTS:
        error = f"at most {MAX_RECIPIENTS} recipients at once"
        return ImportResult([], 0, [{"index": None, "error": error}])
    merger = _Merger()
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            merger.add(_json_recipient(item))
        except (ValueError, InvalidPhone) as exc:
            errors.append({"index": index, "error": str(exc)})
    return ImportResult(list(merger.by_phone.values()), merger.duplicates, errors)


def _json_recipient(item: Any) -> RecipientInput:
    if not isinstance(item, dict):
        raise ValueError("each recipient must be an object with a phone")
    unknown = set(item) - {"phone", "first_name", "last_name", "email", "fields"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    phone = item.get("phone")
    if not isinstance(phone, str) or not phone.strip():
        raise ValueError("phone is required")
    fields = item.get("fields") or {}
    if not isinstance(fields, dict) or not all(isinstance(key, str) for key in fields):
        raise ValueError("fields must be an object")
    return _checked(
        RecipientInput(
            phone=to_e164(phone),
            first_name=_text(item.get("first_name"), "first_name"),
            last_name=_text(item.get("last_name"), "last_name"),
            email=_text(item.get("email"), "email", 320),
            fields={key.strip(): value for key, value in fields.items() if key.strip()},
        )
    )


def _checked(person: RecipientInput) -> RecipientInput:
    """`person`, if its email and fields keep the rules every contact keeps."""
    problem = contact_rules.email_problem(person.email)
    if problem:
        raise ValueError(problem)
    broken = contact_rules.fields_problem(person.fields)
    if broken:
        where, what = broken
        raise ValueError(f"{where}: {what}")
    return person


def _column_name(header: str) -> str:
    """A header cell as a contact field name: accents dropped, lower case, every run of other
    characters one underscore ("Zip/Postal Code" is zip_postal_code, "Année" annee)."""
    plain = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode().lower()
    name = "_".join(re.findall(r"[a-z0-9]+", plain))[: contact_rules.MAX_FIELD_NAME]
    return HEADER_ALIASES.get(name, name)


def from_csv(text: str) -> ImportResult:
    """A CSV with a header row naming a phone column; other columns become contact fields."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return ImportResult([], 0, [{"line": 1, "error": "the file is empty"}])
    except csv.Error as exc:
        return ImportResult([], 0, [{"line": 1, "error": f"not a CSV file: {exc}"}])
    columns = [_column_name(cell) for cell in header]
    phone_columns = [i for i, name in enumerate(columns) if name in PHONE_ALIASES]
    problems = _header_problems(columns, phone_columns)
    if problems:
        return ImportResult([], 0, [{"line": 1, "error": problem} for problem in problems])
    phone_at = phone_columns[0]
    merger = _Merger()
    errors: list[dict[str, Any]] = []
    rows = 0
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            rows += 1
            if rows > MAX_RECIPIENTS:
                errors.append({"line": line, "error": f"more than {MAX_RECIPIENTS} rows"})
                break
            try:
                merger.add(_csv_recipient(columns, cells, phone_at))
            except (ValueError, InvalidPhone) as exc:
                errors.append({"line": line, "error": str(exc)})
    except csv.Error as exc:
        errors.append({"line": reader.line_num, "error": f"unreadable CSV: {exc}"})
    return ImportResult(list(merger.by_phone.values()), merger.duplicates, errors)


def _header_problems(columns: list[str], phone_columns: list[int]) -> list[str]:
    problems = []
    if not phone_columns:
        problems.append("the header row needs a phone column")
    elif len(phone_columns) > 1:
        problems.append("the header row has more than one phone column")
    if any(not name for name in columns):
        problems.append("a column of the header row has no name of letters or digits")
    seen = [name for name in columns if columns.count(name) > 1]
    if seen:
        problems.append(f"repeated column: {', '.join(sorted(set(seen)))}")
    field_columns = [name for name in columns if name not in NAME_COLUMNS | PHONE_ALIASES]
    if len(field_columns) > contact_rules.MAX_FIELDS:
        problems.append(f"at most {contact_rules.MAX_FIELDS} columns besides phone and names")
    return problems


def _csv_recipient(columns: list[str], cells: list[str], phone_at: int) -> RecipientInput:
    if len(cells) != len(columns):
        raise ValueError(f"expected {len(columns)} cells, found {len(cells)}")
    raw_phone = cells[phone_at].strip()
    if not raw_phone:
        raise ValueError("no phone number")
    values = {name: cell.strip() for name, cell in zip(columns, cells, strict=True)}
    return _checked(
        RecipientInput(
            phone=to_e164(raw_phone),
            first_name=_text(values.get("first_name"), "first_name"),
            last_name=_text(values.get("last_name"), "last_name"),
            email=_text(values.get("email"), "email", 320),
            fields={
                name: value
                for i, (name, value) in enumerate(values.items())
                if i != phone_at and name not in NAME_COLUMNS and value
            },
        )
    )
