"""Inbound webhooks sent the way Twilio sends them, for the fault tests.

Twilio signs each request for the URL it was told (PUBLIC_URL + path), POSTs it to whatever
answers there (a load balancer in front of several `serve` processes), and sends it again when
it gets no 200: a refused or reset connection, a timeout, a 5xx. The sender here does the same
against a list of server addresses, moving to the next address on each failure, and keeps
every attempt so a test can say what each server answered. It stops retrying a message at its
first 200, so a message that was answered 200 but not stored would be missing at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from tests.support.messaging import inbound_params, signature

WEBHOOK_PATH = "/twilio/messages"


@dataclass(frozen=True)
class Attempt:
    sid: str
    target: str
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    retry_after: str | None
    error: str | None
    at: float


@dataclass
class TwilioSender:
    """Signs for `public_url` with `auth_token`; delivers to the addresses in `targets`."""

    public_url: str
    auth_token: str
    targets: list[str]
    timeout: float = 20.0
    retry_pause: float = 0.1
    # A failure guard: a message not answered 200 within this long fails the test.
    give_up_after: float = 120.0
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._turn = 0
        self._client = httpx.AsyncClient(
            timeout=self.timeout, limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def deliver(self, params: Mapping[str, str]) -> Attempt:
        """POST until a 200; the attempt that got it."""
        sid = params["MessageSid"]
        url = self.public_url.rstrip("/") + WEBHOOK_PATH
        headers = {"X-Twilio-Signature": signature(self.auth_token, url, params)}
        self._turn += 1
        turn = self._turn
        deadline = time.monotonic() + self.give_up_after
        while True:
            target = self.targets[turn % len(self.targets)]
            attempt = await self._post(sid, target, params, headers)
            self.attempts.append(attempt)
            if attempt.status == 200:
                return attempt
            if time.monotonic() > deadline:
                raise AssertionError(f"{sid} got no 200 within {self.give_up_after}s: {attempt}")
            turn += 1
            await asyncio.sleep(self.retry_pause)

    async def _post(
        self, sid: str, target: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> Attempt:
        try:
            response = await self._client.post(
                target.rstrip("/") + WEBHOOK_PATH, data=dict(params), headers=dict(headers)
            )
        except httpx.HTTPError as exc:
            return Attempt(sid, target, None, None, type(exc).__name__, time.monotonic())
        return Attempt(
            sid,
            target,
            response.status_code,
            response.headers.get("retry-after"),
            None if response.status_code == 200 else response.text[:200],
            time.monotonic(),
        )

    async def burst(
        self, messages: Sequence[Mapping[str, str]], concurrency: int = 8
    ) -> list[Attempt]:
        """Deliver every message, `concurrency` at a time; the answering attempts, in order."""
        gate = asyncio.Semaphore(concurrency)

        async def one(params: Mapping[str, str]) -> Attempt:
            async with gate:
                return await self.deliver(params)

        return list(await asyncio.gather(*(one(params) for params in messages)))

    def answered_by(self, status: int | None) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status == status]

    def failures(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status != 200]


def texts(
    to: str, count: int, *, first_phone: int = 16175557000, prefix: str = "msg"
) -> list[dict[str, str]]:
    """`count` inbound texts to `to`, from a handful of phones, each with its own MessageSid."""
    return [inbound_params(f"+{first_phone + n % 7}", to, f"{prefix} {n}") for n in range(count)]


def sids(messages: Iterable[Mapping[str, str]]) -> list[str]:
    return [params["MessageSid"] for params in messages]
