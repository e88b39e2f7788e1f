"""A local stand-in for Twilio's Messages API, served over real HTTP on a loopback port.

It answers `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` the way Twilio does (basic
auth checked, form-encoded, 201 with Twilio's JSON), records every request, fails on demand
(per `To` number or for everyone: 21211, 21610, 429/20429, 500, 503, a hang), and can send
signed status callbacks to the request's `StatusCallback` — some of them before it returns
the create response, the race a real deployment meets.

    async with TwilioStandIn() as twilio:
        settings = twilio.configure(settings)     # credentials + TWILIO_API_BASE
        twilio.fail(21211, to="+15551230000")
        ...
        assert twilio.messages()[0].param("Body") == "hi"
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from server.settings import Settings
from tests.support.live_server import free_port

MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"

Status = tuple[str, str | None]  # (MessageStatus, ErrorCode)


@dataclass(frozen=True)
class Failure:
    """How the stand-in answers a create call instead of accepting it."""

    status: int
    code: int | None = None
    message: str = ""
    json: bool = True
    hang: bool = False


FAILURES: dict[int | str, Failure] = {
    21211: Failure(400, 21211, "The 'To' number is not a valid phone number."),
    21610: Failure(400, 21610, "Attempt to send to unsubscribed recipient"),
    20429: Failure(429, 20429, "Too Many Requests"),
    429: Failure(429, 20429, "Too Many Requests"),
    500: Failure(500, 20500, "Internal Server Error"),
    503: Failure(503, None, "<html><body>Service Unavailable</body></html>", json=False),
    "timeout": Failure(0, hang=True),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    form: list[tuple[str, str]]
    authorized: bool
    response_status: int = 0
    response_body: bytes = b""
    response_content_type: str = ""

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.form if key == name), None)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.form)


@dataclass
class SentCallback:
    url: str
    params: dict[str, str]
    status_code: int | None
    early: bool


@dataclass
class _Rule:
    failure: Failure
    to: str | None
    remaining: int | None


@dataclass
class TwilioStandIn:
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    # Status callbacks sent after the create response, in order, for every accepted message.
    callbacks: Sequence[Status] = ()
    # Status callbacks sent (and answered) before the create response is returned.
    early_callbacks: Sequence[Status] = ()
    callback_delay: float = 0.05
    requests: list[RecordedRequest] = field(default_factory=list)
    sent_callbacks: list[SentCallback] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._rules: list[_Rule] = []
        self._scripts: dict[str, tuple[Sequence[Status], Sequence[Status]]] = {}
        self._release = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- configuring --------------------------------------------------------------------------

    def configure(self, settings: Settings) -> Settings:
        """`settings` pointed at this stand-in: its credentials and TWILIO_API_BASE."""
        return replace(
            settings,
            twilio_account_sid=self.account_sid,
            twilio_auth_token=self.auth_token,
            twilio_api_base=self.base_url,
        )

    def fail(
        self, failure: int | str | Failure, *, to: str | None = None, times: int | None = None
    ) -> None:
        """Answer create calls (to `to`, or all) with `failure`, `times` times or for good."""
        spec = failure if isinstance(failure, Failure) else FAILURES[failure]
        self._rules.append(_Rule(spec, to, times))

    def script(
        self, to: str, callbacks: Sequence[Status], early_callbacks: Sequence[Status] = ()
    ) -> None:
        """Status callbacks for messages to `to`, replacing the default ones."""
        self._scripts[to] = (callbacks, early_callbacks)

    def reset(self) -> None:
        self._rules.clear()
        self._scripts.clear()

    def messages(self) -> list[RecordedRequest]:
        """The create-message requests received, in order."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")
        ]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10) -> None:
        """Wait until `predicate()` holds (checked whenever a request or callback completes)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def settle(self, within: float = 10) -> None:
        """Wait until every status callback already scheduled has been answered."""
        async with asyncio.timeout(within):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> TwilioStandIn:
        app = Starlette(
            routes=[
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self._create_message,
                    methods=["POST"],
                ),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "DELETE"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._serve_task = asyncio.create_task(self._server.serve())
        self._client = httpx.AsyncClient(timeout=30)
        deadline = time.monotonic() + 20
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()
                raise RuntimeError("the Twilio stand-in stopped before it started")
            if time.monotonic() > deadline:
                raise TimeoutError("the Twilio stand-in did not start")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._serve_task, timeout=15)
        if self._client is not None:
            await self._client.aclose()

    # -- the API ------------------------------------------------------------------------------

    async def _record(self, request: Request) -> RecordedRequest:
        body = await request.body()
        form: list[tuple[str, str]] = []
        if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body,
            form=form,
            authorized=self._authorized(request),
        )
        self.requests.append(recorded)
        return recorded

    def _authorized(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")

    async def _answer(self, recorded: RecordedRequest, response: Response) -> Response:
        recorded.response_status = response.status_code
        recorded.response_body = bytes(response.body)
        recorded.response_content_type = response.headers.get("content-type", "")
        await self._notify()
        return response

    async def _unknown(self, request: Request) -> Response:
        recorded = await self._record(request)
        return await self._answer(
            recorded, _error(404, 20404, "The requested resource was not found")
        )

    async def _create_message(self, request: Request) -> Response:
        recorded = await self._record(request)
        if not recorded.authorized:
            return await self._answer(recorded, _error(401, 20003, "Authenticate"))
        if request.path_params["account_sid"] != self.account_sid:
            return await self._answer(
                recorded, _error(404, 20404, "The requested resource was not found")
            )
        params = recorded.params
        refusal = _missing_parameter(params)
        if refusal is not None:
            return await self._answer(recorded, refusal)
        to = params["To"]
        failure = self._failure_for(to)
        if failure is not None and failure.hang:
            await self._release.wait()
            return await self._answer(recorded, _error(503, None, "stand-in shut down"))
        if failure is not None:
            if not failure.json:
                return await self._answer(
                    recorded,
                    PlainTextResponse(failure.message, failure.status, media_type="text/html"),
                )
            return await self._answer(
                recorded, _error(failure.status, failure.code, failure.message)
            )
        sid = "SM" + secrets.token_hex(16)
        late, early = self._scripts.get(to, (self.callbacks, self.early_callbacks))
        callback_url = params.get("StatusCallback")
        if callback_url:
            for status in early:
                await self._callback(callback_url, sid, params, status, early=True)
        body = self._message_json(sid, params)
        if callback_url and late:
            task = asyncio.create_task(self._callbacks_later(callback_url, sid, params, late))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await self._answer(recorded, JSONResponse(body, 201))

    def _failure_for(self, to: str) -> Failure | None:
        for rule in self._rules:
            if rule.to not in (None, to) or rule.remaining == 0:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            return rule.failure
        return None

    def _message_json(self, sid: str, params: dict[str, str]) -> dict[str, Any]:
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        service = params.get("MessagingServiceSid")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": params.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From"),
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not params.get("From") else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": params["To"],
            "uri": f"{uri}.json",
        }

    # -- status callbacks ---------------------------------------------------------------------

    async def _callbacks_later(
        self, url: str, sid: str, params: dict[str, str], statuses: Sequence[Status]
    ) -> None:
        for status in statuses:
            await asyncio.sleep(self.callback_delay)
            await self._callback(url, sid, params, status, early=False)

    async def _callback(
        self, url: str, sid: str, params: dict[str, str], status: Status, *, early: bool
    ) -> None:
        state, error_code = status
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": state,
            "SmsStatus": state,
            "AccountSid": self.account_sid,
            "From": params.get("From", ""),
            "To": params["To"],
            "ApiVersion": "2010-04-01",
        }
        if params.get("MessagingServiceSid"):
            form["MessagingServiceSid"] = params["MessagingServiceSid"]
        if error_code:
            form["ErrorCode"] = error_code
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        assert self._client is not None
        try:
            response = await self._client.post(
                url, data=form, headers={"X-Twilio-Signature": signature}
            )
            code: int | None = response.status_code
        except httpx.HTTPError:
            code = None
        self.sent_callbacks.append(SentCallback(url, form, code, early))
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _error(status: int, code: int | None, message: str) -> JSONResponse:
    """Twilio's error body: {code, message, more_info, status}."""
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if code is not None:
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return JSONResponse(body, status)


def _missing_parameter(params: dict[str, str]) -> Response | None:
    """Twilio's answers to the rules its OpenAPI description does not encode."""
    if not params.get("To"):
        return _error(400, 21604, "A 'To' phone number is required.")
    if not (params.get("From") or params.get("MessagingServiceSid")):
        return _error(400, 21603, "A 'From' phone number is required.")
    if not (params.get("Body") or params.get("MediaUrl") or params.get("ContentSid")):
        return _error(400, 21602, "Message body is required.")
    return None
