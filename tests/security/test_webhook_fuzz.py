"""Twilio's webhooks fuzzed with Hypothesis: nothing is stored, and no status moves, unless the
`X-Twilio-Signature` is right for PUBLIC_URL + path (+ query) and the parameters sent.

Forged signatures, signed requests replayed with changed parameters, oversized and chunked
bodies, wrong content types, bytes that are not UTF-8, and proxy headers that would change the
URL the app thinks it serves (X-Forwarded-Proto/Host, Forwarded, Host) are all refused; the
same proxy headers on a rightly signed request change nothing. Never a 5xx.

Hypothesis runs in a worker thread with a plain HTTP client while the server serves in the
test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from server.services.contacts import find_or_create_contact
from server.services.conversations import get_or_create_conversation
from store.models import Contact, Event, Message
from tests.support.live_server import LiveServer
from tests.support.messaging import World, inbound_params, seed_world, signature

PUBLIC_URL = "https://sms.example.edu"
INBOUND, STATUS = "/twilio/messages", "/twilio/status"
# Derandomized so CI is repeatable. To search further by hand, set SWITCHBOARD_FUZZ_RANDOM=1
# and raise SWITCHBOARD_FUZZ_EXAMPLES; what a search finds stays as an explicit test below.
FUZZ = settings(
    max_examples=int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "60")),
    derandomize=os.environ.get("SWITCHBOARD_FUZZ_RANDOM", "") == "",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OUTBOUND_SID = "SM" + "ab" * 16

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40)
param_names = st.sampled_from(
    ["MessageSid", "From", "To", "Body", "MessageStatus", "ErrorCode", "OptOutType", "NumMedia"]
) | st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=12)


@dataclass
class Target:
    server: LiveServer
    world: World
    token: str

    def sign(self, url: str, params: dict[str, str], token: str | None = None) -> str:
        return signature(token or self.token, url, params)

    def inbound(self, body: str = "hello") -> dict[str, str]:
        return inbound_params("+16175550199", self.world.n1, body)


@pytest.fixture
async def target(live_server: LiveServer) -> Target:
    """The server behind a proxy: Twilio calls https://sms.example.edu, the app sees http."""
    state = live_server.state
    state.settings = replace(state.settings, public_url=PUBLIC_URL)
    world = await seed_world(state)
    async with state.transaction() as session:  # a message of ours a forger would move
        contact = await find_or_create_contact(session, "+16175550199")
        conversation = await get_or_create_conversation(session, world.admissions, contact.id)
        session.add(
            Message(
                direction="outbound",
                tag="quick",
                body="sent by us",
                status="sent",
                from_number=world.n1,
                to_number=contact.phone,
                twilio_sid=OUTBOUND_SID,
                conversation_id=conversation.id,
            )
        )
    return Target(live_server, world, state.settings.webhook_auth_token)


@pytest.fixture
def client(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.server.base_url, timeout=30) as http:
        yield http


async def in_thread(run: Callable[[], None]) -> None:
    """Run a (blocking) Hypothesis test while the event loop goes on serving."""
    await asyncio.to_thread(run)


async def stored(target: Target) -> dict[str, int]:
    async with target.server.state.reading() as session:
        counts = {}
        for model in (Message, Contact, Event):
            counts[model.__name__] = int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
        counts["status"] = await session.scalar(
            select(Message.status).where(Message.twilio_sid == OUTBOUND_SID)
        )
    return counts


def assert_refused(response: httpx.Response, allowed: tuple[int, ...] = (400, 403, 413)) -> None:
    assert response.status_code in allowed, (response.status_code, response.text)
    assert "Traceback" not in response.text
    assert response.json()["error"]


async def test_forged_signatures_store_nothing_and_move_no_status(
    target: Target, client: httpx.Client
) -> None:
    before = await stored(target)
    wrong_token = secrets.token_hex(16)

    @FUZZ
    @given(
        path=st.sampled_from([INBOUND, STATUS]),
        params=st.dictionaries(param_names, texts, max_size=8),
        realistic=st.booleans(),
        forgery=st.sampled_from(["garbage", "wrong token", "wrong url", "other path", "none"]),
        garbage=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    )
    def forged(
        path: str, params: dict[str, str], realistic: bool, forgery: str, garbage: str
    ) -> None:
        if realistic:
            params = (
                {**target.inbound(), **params}
                if path == INBOUND
                else {
                    "MessageSid": OUTBOUND_SID,
                    "MessageStatus": "failed",
                    **params,
                }
            )
        url = PUBLIC_URL + path
        headers = {
            "garbage": {"X-Twilio-Signature": garbage},
            "wrong token": {"X-Twilio-Signature": target.sign(url, params, wrong_token)},
            "wrong url": {"X-Twilio-Signature": target.sign(target.server.base_url + path, params)},
            "other path": {
                "X-Twilio-Signature": target.sign(
                    PUBLIC_URL + (STATUS if path == INBOUND else INBOUND), params
                )
            },
            "none": {},
        }[forgery]
        assert_refused(client.post(path, data=params, headers=headers), (403,))

    await in_thread(forged)
    assert await stored(target) == before


async def test_signed_requests_replayed_with_changed_params_are_refused(
    target: Target, client: httpx.Client
) -> None:
    before = await stored(target)
    originals: list[str] = []

    @FUZZ
    @given(
        body=texts,
        change=st.sampled_from(["value", "add", "drop", "duplicate", "rename"]),
        field=st.sampled_from(["Body", "From", "To", "MessageSid", "OptOutType"]),
        new=texts,
    )
    def replayed(body: str, change: str, field: str, new: str) -> None:
        params = target.inbound(body)
        assume(change in ("add", "duplicate") or field in params)
        # Twilio's scheme signs each parameter's set of values: repeating one with the value
        # it has is the same request (see test_a_repeated_parameter_is_the_same_request).
        assume(change not in ("value", "duplicate") or params.get(field) != new)
        sig = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params)}
        altered: list[tuple[str, str]] = list(params.items())
        if change == "value":
            altered = [(k, new if k == field else v) for k, v in altered]
        elif change == "add":
            altered.append(("X" + field, new))
        elif change == "drop":
            altered = [(k, v) for k, v in altered if k != field]
        elif change == "duplicate":
            altered.append((field, new))
        else:
            altered = [(k.lower() if k == field else k, v) for k, v in altered]
        response = client.post(
            INBOUND,
            content=urlencode(altered),
            headers={**sig, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_refused(response, (403,))
        # The genuine request, once: accepted and stored.
        genuine = client.post(INBOUND, data=params, headers=sig)
        assert genuine.status_code == 200, genuine.text
        originals.append(params["MessageSid"])

    await in_thread(replayed)
    async with target.server.state.reading() as session:
        sids = (
            await session.scalars(select(Message.twilio_sid).where(Message.direction == "inbound"))
        ).all()
    assert sorted(sids) == sorted(set(originals)) and len(originals) == len(set(originals))
    assert (await stored(target))["status"] == before["status"]


async def test_proxy_headers_do_not_change_what_is_signed(
    target: Target, client: httpx.Client
) -> None:
    accepted: list[str] = []
    hosts = st.sampled_from(
        ["evil.example", "sms.example.edu", "127.0.0.1", "sms.example.edu:8443"]
    )

    @FUZZ
    @given(
        proto=st.none() | st.sampled_from(["http", "https", "wss"]),
        forwarded_host=st.none() | hosts,
        host=st.none() | hosts,
        forwarded=st.none()
        | st.builds(lambda h, p: f"host={h};proto={p}", hosts, st.sampled_from(["http", "https"])),
        prefix=st.none() | st.sampled_from(["/sms", "/twilio"]),
    )
    def proxied(
        proto: str | None,
        forwarded_host: str | None,
        host: str | None,
        forwarded: str | None,
        prefix: str | None,
    ) -> None:
        headers = {
            name: value
            for name, value in (
                ("X-Forwarded-Proto", proto),
                ("X-Forwarded-Host", forwarded_host),
                ("Host", host),
                ("Forwarded", forwarded),
                ("X-Forwarded-Prefix", prefix),
                ("X-Original-URL", prefix and prefix + INBOUND),
            )
            if value is not None
        }
        # What the headers claim the URL is: signing it gets nothing in…
        claimed = f"{proto or 'http'}://{forwarded_host or host or '127.0.0.1'}{prefix or ''}"
        params = target.inbound("proxied")
        if claimed != PUBLIC_URL:
            forged = {"X-Twilio-Signature": target.sign(claimed + INBOUND, params)}
            assert_refused(client.post(INBOUND, data=params, headers={**headers, **forged}), (403,))
        # …while a signature for PUBLIC_URL is accepted whatever the headers say.
        right = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params)}
        response = client.post(INBOUND, data=params, headers={**headers, **right})
        assert response.status_code == 200, response.text
        accepted.append(params["MessageSid"])

    await in_thread(proxied)
    async with target.server.state.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(Message).where(Message.twilio_sid.in_(accepted))
        )
    assert count == len(accepted)


async def test_the_query_string_is_signed_too(target: Target, http: httpx.AsyncClient) -> None:
    params = target.inbound("with a query")
    signed_with_query = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND + "?a=1", params)}
    assert_refused(await http.post(INBOUND, data=params, headers=signed_with_query), (403,))
    assert_refused(
        await http.post(INBOUND + "?a=2", data=params, headers=signed_with_query), (403,)
    )
    response = await http.post(INBOUND + "?a=1", data=params, headers=signed_with_query)
    assert response.status_code == 200


async def test_oversized_bodies_are_refused_unread(target: Target, http: httpx.AsyncClient) -> None:
    before = await stored(target)
    params = {**target.inbound("big"), "Padding": "x" * 300_000}
    sig = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params)}
    assert_refused(await http.post(INBOUND, data=params, headers=sig), (413,))

    # Chunked: no Content-Length to check up front, cut off once past the limit.
    body = urlencode(params).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    chunked = await http.post(
        INBOUND,
        content=chunks(),
        headers={**sig, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(chunked, (413,))
    assert await stored(target) == before


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/json", "application/xml", "text/xml; charset=utf-8"],
)
async def test_a_body_that_is_not_a_form_stores_nothing(
    target: Target, http: httpx.AsyncClient, content_type: str | None
) -> None:
    before = await stored(target)
    params = target.inbound("not a form")
    sig = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params)}
    headers = {**sig, **({"Content-Type": content_type} if content_type else {})}
    for content in (urlencode(params), str(params).replace("'", '"')):
        assert_refused(await http.post(INBOUND, content=content, headers=headers), (400, 403, 415))
    assert await stored(target) == before


async def test_each_signature_twilio_makes_is_accepted_and_only_those(
    target: Target, http: httpx.AsyncClient
) -> None:
    """Twilio signs PUBLIC_URL as configured, sometimes with the default port added, and with
    HMAC-SHA256 over a shared key when the settings header says so: each is stored once. A
    signature over another host, or with an algorithm Twilio does not have, is refused."""
    validator = RequestValidator(target.token)
    settings_header = "X-Twilio-Webhooks-Signature-Settings"
    accepted = [
        ("https://sms.example.edu" + INBOUND, None),
        ("https://sms.example.edu:443" + INBOUND, None),
        ("https://sms.example.edu" + INBOUND, "algorithm=HMAC_SHA256"),
    ]
    for url, signature_settings in accepted:
        params = target.inbound(f"signed for {url} {signature_settings}")
        algorithm = "HMAC_SHA256" if signature_settings else None
        headers = {"X-Twilio-Signature": validator.compute_signature(url, params, algorithm)}
        if signature_settings:
            headers[settings_header] = signature_settings
        response = await http.post(INBOUND, data=params, headers=headers)
        assert response.status_code == 200, (url, signature_settings, response.text)
        async with target.server.state.reading() as session:
            bodies = await session.scalars(
                select(Message.body).where(Message.twilio_sid == params["MessageSid"])
            )
            assert list(bodies) == [params["Body"]]
    before = await stored(target)
    params = target.inbound("refused")
    for url, signature_settings in [
        ("https://sms.example.edu:8443" + INBOUND, None),
        ("https://other.example.edu" + INBOUND, None),
        ("https://sms.example.edu" + INBOUND, "algorithm=HMAC_MD5"),
    ]:
        headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
        if signature_settings:
            headers[settings_header] = signature_settings
        assert_refused(await http.post(INBOUND, data=params, headers=headers), (403,))
    assert await stored(target) == before


async def test_a_multipart_body_stores_nothing_even_rightly_signed(
    target: Target, http: httpx.AsyncClient
) -> None:
    """Twilio posts urlencoded forms only: fields sent as multipart are not read, so the
    signature over them cannot match."""
    before = await stored(target)
    params = target.inbound("multipart")
    sig = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params)}
    files = {"Media": ("a.txt", b"x", "text/plain")}
    response = await http.post(INBOUND, data=params, files=files, headers=sig)
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert_refused(response, (403,))
    assert await stored(target) == before


async def test_bytes_that_are_not_utf8_are_refused_without_a_5xx(
    target: Target, client: httpx.Client, http: httpx.AsyncClient
) -> None:
    before = await stored(target)

    @FUZZ
    @given(
        raw=st.binary(max_size=300),
        sig=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
    )
    def undecodable(raw: bytes, sig: str) -> None:
        body = urlencode(target.inbound("a")).encode() + b"&Body=" + raw + b"\xe9\xff"
        response = client.post(
            INBOUND,
            content=body,
            headers={
                "X-Twilio-Signature": sig or "x",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert_refused(response, (400, 403))

    await in_thread(undecodable)
    # Percent-encoded bytes that are not UTF-8, signed over what a client would think it sent.
    params = target.inbound("caf%E9")
    raw_body = urlencode(params).replace("caf%25E9", "caf%E9").encode()
    response = await http.post(
        INBOUND,
        content=raw_body,
        headers={
            "X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert_refused(response, (403,))
    assert await stored(target) == before


async def test_a_repeated_parameter_is_the_same_request(
    target: Target, http: httpx.AsyncClient
) -> None:
    """Twilio signs the set of each parameter's values: the same value twice is the request as
    signed (stored once, as sent); another value beside it is a forgery."""
    params = target.inbound("once")
    sig = {
        "X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    other = urlencode([*params.items(), ("Body", "twice")])
    assert_refused(await http.post(INBOUND, content=other, headers=sig), (403,))
    same = urlencode([*params.items(), ("Body", "once")])
    assert (await http.post(INBOUND, content=same, headers=sig)).status_code == 200
    async with target.server.state.reading() as session:
        bodies = (
            await session.scalars(
                select(Message.body).where(Message.twilio_sid == params["MessageSid"])
            )
        ).all()
    assert bodies == ["once"]


async def test_a_rightly_signed_nul_is_stored_not_a_500(
    target: Target, http: httpx.AsyncClient
) -> None:
    """PostgreSQL text holds no NUL: the message is kept (the NUL shown as U+FFFD), never a
    500 that Twilio would retry for ever; the same for a status callback's ErrorCode."""
    params = {
        **target.inbound("a\x00b"),
        "MessagingServiceSid": "MG\x00",
        "OptOutType": "\x00",
    }
    sig = {"X-Twilio-Signature": target.sign(PUBLIC_URL + INBOUND, params)}
    response = await http.post(INBOUND, data=params, headers=sig)
    assert response.status_code == 200, response.text
    callback = {"MessageSid": OUTBOUND_SID, "MessageStatus": "failed", "ErrorCode": "3\x000"}
    sig = {"X-Twilio-Signature": target.sign(PUBLIC_URL + STATUS, callback)}
    assert (await http.post(STATUS, data=callback, headers=sig)).status_code == 200
    async with target.server.state.reading() as session:
        body = await session.scalar(
            select(Message.body).where(Message.twilio_sid == params["MessageSid"])
        )
        error = await session.scalar(
            select(Message.error_code).where(Message.twilio_sid == OUTBOUND_SID)
        )
    assert (body, error) == ("a\ufffdb", "3\ufffd0")
