"""Request bodies with a size limit, however they are framed: a body past the limit is refused
with 413 by its Content-Length before any of it is read, or, sent in chunks, as soon as it
passes the limit, so an oversized body is never held in memory or spooled to disk."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from server.errors import ApiError


def bounded(request: Request, limit: int, what: str = "the body") -> Request:
    """The same request, whose body (read as bytes, a form or a stream) stops at `limit`."""
    too_large = ApiError(413, "too_large", f"{what} is larger than {limit:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large
        return message

    return Request(request.scope, receive)
