"""The built-in Twilio simulator, used when no Twilio credentials are configured.

Outbound messages get `SM…` sids and then signed status callbacks (queued → sent → delivered)
POSTed to the real `PUBLIC_URL/twilio/status` route, so the app under the simulator runs the
same code paths as under Twilio. `text_in` plays a phone texting one of our numbers: a signed
POST to `PUBLIC_URL/twilio/messages`. Twilio's magic test numbers fail as they do at Twilio.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from collections.abc import Mapping

import httpx

from server.settings import Settings
from server.twilio.gateway import SendResult
from server.twilio.signatures import sign, signed_url

log = logging.getLogger("switchboard.simulator")

SIMULATED_ACCOUNT_SID = "AC" + "0" * 32
INBOUND_PATH = "/twilio/messages"
STATUS_PATH = "/twilio/status"

# Twilio's magic "To" numbers for test credentials, and the error each one gives.
MAGIC_FAILURES = {
    "+15005550001": "21211",
    "+15005550002": "21612",
    "+15005550003": "21408",
    "+15005550004": "21610",
    "+15005550009": "21614",
}


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


async def post_signed(
    settings: Settings,
    url: str,
    params: Mapping[str, str],
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST `params` as a form to `url`, signed the way Twilio signs its webhooks."""
    headers = {"X-Twilio-Signature": sign(settings, url, params)}
    if client is not None:
        return await client.post(url, data=dict(params), headers=headers)
    async with httpx.AsyncClient(timeout=30) as own:
        return await own.post(url, data=dict(params), headers=headers)


async def text_in(
    settings: Settings,
    *,
    from_: str,
    to: str,
    body: str,
    message_sid: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """Text `body` from `from_` to our number `to`, as Twilio would deliver it."""
    sid = message_sid or new_sid()
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": settings.twilio_account_sid or SIMULATED_ACCOUNT_SID,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    return await post_signed(settings, signed_url(settings, INBOUND_PATH), params, client)


class SimulatorGateway:
    """Answers sends like Twilio and later reports their progress through status callbacks."""

    def __init__(self, settings: Settings, step_delay: float = 0.3) -> None:
        self.settings = settings
        # Seconds between one simulated status callback and the next.
        self.step_delay = step_delay
        self.statuses = ("queued", "sent", "delivered")
        self._client = httpx.AsyncClient(timeout=30)
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(
        self,
        *,
        to: str,
        from_: str,
        body: str,
        status_callback: str,
        messaging_service_sid: str | None = None,
    ) -> SendResult:
        if to in MAGIC_FAILURES:
            return SendResult.failure(MAGIC_FAILURES[to])
        sid = new_sid()
        task = asyncio.create_task(self._report(sid, to, from_, status_callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return SendResult(sid, "queued")

    async def _report(self, sid: str, to: str, from_: str, url: str) -> None:
        for status in self.statuses:
            await asyncio.sleep(self.step_delay)
            params = {
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "AccountSid": SIMULATED_ACCOUNT_SID,
                "From": from_,
                "To": to,
                "ApiVersion": "2010-04-01",
            }
            try:
                response = await post_signed(self.settings, url, params, self._client)
            except httpx.HTTPError as exc:
                log.warning("simulated %s callback for %s failed: %s", status, sid, exc)
                return
            if response.status_code != 200:
                log.warning(
                    "simulated %s callback for %s answered %s", status, sid, response.status_code
                )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()


async def run_text_in(settings: Settings, from_: str, to: str, body: str) -> int:
    """`switchboard text-in`: one signed inbound webhook to the server at PUBLIC_URL."""
    try:
        response = await text_in(settings, from_=from_, to=to, body=body)
    except httpx.HTTPError as exc:
        print(f"error: could not reach {settings.public_base}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(
            f"error: the server answered {response.status_code}: {response.text}", file=sys.stderr
        )
        return 1
    print(f"delivered {body!r} from {from_} to {to}")
    return 0
