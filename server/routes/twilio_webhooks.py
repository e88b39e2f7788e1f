"""Twilio's webhooks: inbound SMS (`POST /twilio/messages`) and status callbacks.

Both are signed by Twilio against PUBLIC_URL; an unsigned or forged request is refused with
403 before anything is read into the database.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.deps import app_state
from server.errors import ApiError
from server.services import inbound
from server.services import status as statuses
from server.twilio.signatures import verified_form

log = logging.getLogger("switchboard.webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


async def inbound_message(request: Request) -> Response:
    form = await verified_form(request, app_state(request).settings)
    sms = inbound.parse_inbound(form)
    await request.app.state.inbound.receive(sms)
    return twiml()


async def status_callback(request: Request) -> Response:
    state = app_state(request)
    form = await verified_form(request, state.settings)
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not inbound.SID_PATTERN.match(sid):
        raise ApiError(400, "bad_request", "MessageSid is missing or malformed")
    if not status:
        raise ApiError(400, "bad_request", "MessageStatus is missing")
    if not statuses.is_known(status):
        log.info("status callback for %s with status %r ignored", sid, status)
        return twiml()
    error_code = (form.get("ErrorCode") or "").strip()[:16] or None
    await statuses.handle_callback(state, statuses.StatusUpdate(sid, status, error_code))
    return twiml()


routes: list[BaseRoute] = [
    Route("/twilio/messages", inbound_message, methods=["POST"]),
    Route("/twilio/status", status_callback, methods=["POST"]),
]
