"""Structured logs: one JSON object per line, tagged with the request id of the work that wrote it.

The request id lives in a context variable set by `RequestIdMiddleware`, so every line written
while serving a request (including the lines of the events a webhook publishes, which are
published from the same task) carries it. Secrets never reach the output: fields whose names
look secret are replaced, tokens, passwords and URL credentials inside text are masked, and
the configured secrets themselves (secret key, Twilio auth token, passwords in the database,
Redis and SMTP URLs) are scrubbed from every line as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-Id"
REDACTED = "[redacted]"

request_id_var: ContextVar[str | None] = ContextVar("switchboard_request_id", default=None)

access_log = logging.getLogger("switchboard.access")

# A request id we accept from a client or a proxy: short and plain, so it cannot forge log lines.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "signature",
    "api_key",
    "apikey",
    "credential",
    "session",
)

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / Basic abc
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    # SQLAlchemy errors quote the statement's bound values (password hashes, message bodies)
    (re.compile(r"\[parameters: [^\n]*\]"), "[parameters: " + REDACTED + "]"),
    # scheme://user:password@host
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    # password=…, "token": "…", auth_token: …, sb_session=…, Cookie: …, in text or query strings
    (
        re.compile(
            r"(?i)((?:\w*(?:password|passwd|secret|token|api_?key|cookie|session|signature)\w*)"
            r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"
        ),
        r"\1" + REDACTED,
    ),
)

# LogRecord attributes that are not extra fields.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return secrets.token_hex(16)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(name: str, value: Any) -> Any:
    """`value` fit to log under `name`: secrets masked, mappings and lists walked."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value("", item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id and extra fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                payload[key] = redact_value(key, value)
        if record.exc_info:
            payload["exception"] = redact_text(self.formatException(record.exc_info))
        line = json.dumps(payload, default=str, ensure_ascii=False)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


class TextFormatter(JsonFormatter):
    """The same fields for a human at a terminal (SWITCHBOARD_LOG_FORMAT=text)."""

    def format(self, record: logging.LogRecord) -> str:
        data = json.loads(super().format(record))
        head = f"{data.pop('time')} {data.pop('level').upper():7} {data.pop('logger')}"
        message = data.pop("message")
        request_id = data.pop("request_id")
        exception = data.pop("exception", None)
        fields = " ".join(f"{k}={v}" for k, v in data.items())
        line = f"{head} [{request_id or '-'}] {message}" + (f" {fields}" if fields else "")
        return line + (f"\n{exception}" if exception else "")


def url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def configured_secrets(settings: Any) -> list[str]:
    """The secrets in `settings` that must never appear in a log line."""
    found = [
        getattr(settings, "secret_key", None),
        getattr(settings, "twilio_auth_token", None),
        url_password(getattr(settings, "database_url", None)),
        url_password(getattr(settings, "redis_url", None)),
        url_password(getattr(settings, "smtp_url", None)),
    ]
    return [s for s in found if s]


def setup_logging(
    settings: Any = None,
    *,
    level: str | None = None,
    fmt: str | None = None,
    stream: Any = None,
) -> logging.Handler:
    """Send every log record to `stream` (stderr) as JSON lines (or text), secrets scrubbed.

    Level and format come from SWITCHBOARD_LOG_LEVEL (INFO) and SWITCHBOARD_LOG_FORMAT
    (json | text) unless given.
    """
    level = (level or os.environ.get("SWITCHBOARD_LOG_LEVEL") or "INFO").upper()
    fmt = (fmt or os.environ.get("SWITCHBOARD_LOG_FORMAT") or "json").lower()
    secrets = configured_secrets(settings) if settings is not None else []
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter(secrets) if fmt == "text" else JsonFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings (deprecations printed by libraries) become log records too.
    logging.captureWarnings(True)
    # uvicorn's own handlers would print plain text beside ours; let its records reach the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Libraries that log request details at INFO stay quiet unless asked.
    for name in ("twilio", "httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return new_request_id()


class RequestIdMiddleware:
    """Gives each HTTP request and websocket a request id, echoes it, and logs each request.

    An incoming `X-Request-Id` (from a proxy or the caller) is honoured when it is plain text of
    reasonable length; otherwise a new one is made. The id is set in `request_id_var` for the
    whole of the request; when the request fails with an exception it stays set, so the error
    line written by the outer error handler carries it too (each request runs in its own task).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        scope["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: list[int] = []
        header = REQUEST_ID_HEADER.encode()

        async def send_with_id(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status.append(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            elif kind == "websocket.accept":
                headers = list(message.get("headers") or [])
                headers.append((header, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if scope["type"] == "http":
                _log_access(scope, status[0] if status else 500, time.perf_counter() - started)
            raise
        if scope["type"] == "http":
            _log_access(scope, status[0] if status else 0, time.perf_counter() - started)
        request_id_var.reset(token)


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    client = scope.get("client")
    access_log.info(
        "%s %s %s",
        scope.get("method", ""),
        scope.get("path", ""),
        status,
        extra={
            "method": scope.get("method", ""),
            "path": scope.get("path", ""),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
        },
    )
