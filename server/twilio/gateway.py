"""The outbound SMS gateway: one `send` that never raises for Twilio-side trouble.

`TwilioGateway` is the real one, built on the `twilio` library's async client. Every request
goes to `TWILIO_API_BASE` (a local stand-in in tests) and is made exactly once: the library's
own retry option stays off and we add none, so a timeout can never turn into a double send.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from server.twilio.errors import describe

log = logging.getLogger("switchboard.twilio")

TWILIO_ORIGIN = "https://api.twilio.com"
DEFAULT_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one send: a sid and Twilio's status, or `failed` with an error code."""

    sid: str | None
    status: str
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def failure(cls, code: str, message: str | None = None) -> SendResult:
        return cls(None, "failed", code, message or describe(code))


class Gateway(Protocol):
    async def send(
        self,
        *,
        to: str,
        from_: str,
        body: str,
        status_callback: str,
        messaging_service_sid: str | None = None,
    ) -> SendResult: ...

    async def close(self) -> None: ...


class RebasedHttpClient(AsyncTwilioHttpClient):
    """The library's aiohttp client, with `https://api.twilio.com` swapped for our base URL."""

    def __init__(self, api_base: str) -> None:
        super().__init__(pool_connections=True)
        self.api_base = api_base.rstrip("/")

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_ORIGIN):
            url = self.api_base + url[len(TWILIO_ORIGIN) :]
        # Basic auth as a header: aiohttp deprecates its `auth=` parameter.
        auth = kwargs.pop("auth", None)
        if auth is not None:
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Authorization": f"Basic {credentials}",
            }
        return await super().request(method, url, **kwargs)


class TwilioGateway:
    """Sends through Twilio's Messages API (or whatever answers at `api_base`)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_base: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.http_client = RebasedHttpClient(api_base)
        self.client = Client(account_sid, auth_token, http_client=self.http_client)
        # Total seconds one create call may take before the message counts as failed.
        self.timeout = timeout

    async def send(
        self,
        *,
        to: str,
        from_: str,
        body: str,
        status_callback: str,
        messaging_service_sid: str | None = None,
    ) -> SendResult:
        params: dict[str, Any] = {
            "to": to,
            "from_": from_,
            "body": body,
            "status_callback": status_callback,
        }
        if messaging_service_sid:
            params["messaging_service_sid"] = messaging_service_sid
        try:
            async with asyncio.timeout(self.timeout):
                created = await self.client.messages.create_async(**params)
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            log.warning("Twilio refused a message to %s: %s %s", to, code, exc.msg)
            return SendResult.failure(code, describe(code) or _strip_prefix(str(exc.msg)))
        except TwilioServiceException as exc:
            code = str(exc.code or exc.status)
            log.warning("Twilio refused a message to %s: %s %s", to, code, exc.title)
            return SendResult.failure(code, describe(code) or exc.detail or exc.title)
        except TimeoutError:
            log.warning("Twilio did not answer within %ss for a message to %s", self.timeout, to)
            return SendResult.failure("timeout")
        except aiohttp.ClientError as exc:
            log.warning("could not reach Twilio for a message to %s: %s", to, exc)
            return SendResult.failure("network_error")
        except Exception:
            log.exception("unexpected failure sending a message to %s", to)
            return SendResult.failure("gateway_error")
        error_code = str(created.error_code) if created.error_code else None
        return SendResult(
            created.sid, str(created.status or "queued"), error_code, created.error_message
        )

    async def close(self) -> None:
        await self.http_client.close()


def _strip_prefix(message: str) -> str:
    """The library prefixes Twilio's message with its own words; keep Twilio's."""
    return message.split(": ", 1)[-1] if message.startswith("Unable to") else message
