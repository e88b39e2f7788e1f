"""Twilio webhook signatures, checked against PUBLIC_URL and never the Host header.

Behind a proxy the app sees `http://10.0.0.5:8000/...` while Twilio signed
`https://sms.example.edu/...`; only PUBLIC_URL knows what Twilio called, so it alone is signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import Request
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    compare,
    get_signature_algorithm,
)

from server.bodies import bounded
from server.errors import ApiError
from server.settings import Settings

MAX_WEBHOOK_BYTES = 256_000
MAX_WEBHOOK_FIELDS = 1000
FORM_TYPE = "application/x-www-form-urlencoded"


def signed_url(settings: Settings, path: str, query: str = "") -> str:
    """The URL Twilio signs for a request to `path` (and `query`) on this server."""
    url = settings.public_base + path
    return f"{url}?{query}" if query else url


def sign(settings: Settings, url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature for a POST of `params` to `url` (the simulator signs with it)."""
    return RequestValidator(settings.webhook_auth_token).compute_signature(url, dict(params))


async def verified_form(request: Request, settings: Settings) -> FormData:
    """The webhook's form parameters, or 403 when the signature is missing or wrong."""
    request = bounded(request, MAX_WEBHOOK_BYTES, "the webhook body")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise ApiError(403, "forbidden", f"missing {SIGNATURE_HEADER} header")
    fields = await _form_fields(request)
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    # The routes are exact paths; the query is signed as sent (Twilio %-encodes it).
    query = request.scope["query_string"].decode("utf-8", "replace")
    url = signed_url(settings, request.scope["path"], query)
    if not _signed(settings, url, SignedParams.of(fields), signature, algorithm):
        raise ApiError(403, "forbidden", f"invalid {SIGNATURE_HEADER} for {url}")
    # PostgreSQL text cannot hold NUL: keep what was sent, a NUL shown as U+FFFD.
    return FormData([(key, value.replace("\x00", "\ufffd")) for key, value in fields])


class SignedParams(dict[str, list[str]]):
    """Each field's values, in the multidict shape the validator reads first (`getall`).

    Handed a FormData, it looked `getall` up and failed before using `getlist`, which scans
    every field: twice per field per signature, the costliest part of a webhook's check.
    """

    @classmethod
    def of(cls, fields: list[tuple[str, str]]) -> SignedParams:
        params = cls()
        for key, value in fields:
            params.setdefault(key, []).append(value)
        return params

    def getall(self, key: str) -> list[str]:
        return self[key]


def _signed(
    settings: Settings, url: str, params: SignedParams, signature: str, algorithm: str | None
) -> bool:
    """Whether Twilio signed these params for this URL.

    The URL as configured is what Twilio signs; the validator also accepts it with its port
    added or removed, but computes both every time. The one signature is checked first, and
    the validator, which refuses unknown algorithms, decides the rest.
    """
    validator = RequestValidator(settings.webhook_auth_token)
    known = (algorithm or HMAC_SHA1).upper() in (HMAC_SHA1, HMAC_SHA256)
    if known and compare(validator.compute_signature(url, params, algorithm), signature):
        return True
    return bool(validator.validate(url, params, signature, algorithm))


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    """The fields of a urlencoded body, decoded as Starlette decodes them (raw bytes as
    Latin-1, %-escapes as UTF-8, a bad escape as U+FFFD); a body of another type (Twilio sends
    none) has no fields, so only a signature over no fields could pass.

    The standard library's parser reads the whole body at once: Starlette's streaming form
    parser, built for uploads, cost a fifth of a webhook's CPU.
    """
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return []
    body = await request.body()
    try:
        return parse_qsl(
            body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_WEBHOOK_FIELDS
        )
    except ValueError as exc:
        raise ApiError(400, "bad_request", "the webhook body is not a form") from exc
