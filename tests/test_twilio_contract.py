"""The requests the project sends to Twilio, checked against Twilio's own OpenAPI description.

Every create-message request the app made through the stand-in is validated offline with
openapi-core against `shared/twilio/twilio_api_v2010.json` (path, AccountSid, basic auth,
form fields and their types), every 201 the stand-in gave back against the response schema,
and each request against the two rules the description does not encode.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from store.models import Contact
from tests.support.messaging import TwilioEnv, messages, text_in
from tests.support.twilio_standin import RecordedRequest, TwilioStandIn

TWILIO_SPEC = Path(__file__).parent / "contracts" / "twilio" / "twilio_api_v2010.json"
TWILIO_HOST = "https://api.twilio.com"


@cache
def twilio_api() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(TWILIO_SPEC.read_text()))


def as_openapi_request(recorded: RecordedRequest, path: str | None = None) -> MockRequest:
    return MockRequest(
        TWILIO_HOST,
        recorded.method,
        path or recorded.path,
        headers=recorded.headers,
        data=recorded.body,
        content_type=recorded.headers.get("content-type", ""),
    )


def check_twilio_rules(params: dict[str, str]) -> None:
    """The two rules Twilio enforces that its OpenAPI description does not say."""
    assert params.get("From") or params.get("MessagingServiceSid"), params
    assert params.get("Body") or params.get("MediaUrl") or params.get("ContentSid"), params


async def test_the_requests_the_app_sends_match_twilios_api_description(
    twilio: TwilioEnv,
) -> None:
    server, http, world, standin = twilio
    await text_in(http, server.settings, "+16175550142", world.n2, "Hi")
    [inbound] = await messages(server.state)
    async with server.state.transaction() as session:
        contact = Contact(phone="+447700900123")
        session.add(contact)
        await session.flush()
    sends = [
        (f"/api/v1/conversations/{inbound.conversation_id}/messages", {"body": "Plain reply"}),
        (f"/api/v1/conversations/{inbound.conversation_id}/messages", {"body": "Ünïcödé 👋 " * 40}),
        (f"/api/v1/contacts/{contact.id}/messages", {"inbox_id": world.aid, "body": "x" * 1600}),
    ]
    for path, payload in sends:
        response = await http.post(path, json=payload, headers=world.auth("admin"))
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "queued"

    recorded = standin.messages()
    assert len(recorded) == len(sends)
    api = twilio_api()
    for request in recorded:
        api.validate_request(as_openapi_request(request))
        check_twilio_rules(request.params)
        assert request.response_status == 201
        api.validate_response(
            as_openapi_request(request),
            MockResponse(request.response_body, 201, content_type=request.response_content_type),
        )
    assert [r.param("Body") for r in recorded] == [p["body"] for _, p in sends]


async def test_the_contract_check_catches_a_request_twilio_would_not_accept(
    twilio: TwilioEnv,
) -> None:
    """The validator above is not a rubber stamp: broken variants of a real request fail it."""
    server, http, world, standin = twilio
    await text_in(http, server.settings, "+16175550142", world.n1, "Hi")
    [inbound] = await messages(server.state)
    await http.post(
        f"/api/v1/conversations/{inbound.conversation_id}/messages",
        json={"body": "Hello"},
        headers=world.auth("admin"),
    )
    [good] = standin.messages()
    api = twilio_api()
    api.validate_request(as_openapi_request(good))

    with pytest.raises(Exception, match="AccountSid"):
        api.validate_request(as_openapi_request(good, "/2010-04-01/Accounts/AC123/Messages.json"))
    no_auth = RecordedRequest(
        **{
            **good.__dict__,
            "headers": {k: v for k, v in good.headers.items() if k != "authorization"},
        }
    )
    with pytest.raises(Exception, match="[Ss]ecurity"):
        api.validate_request(as_openapi_request(no_auth))
    no_to = RecordedRequest(**{**good.__dict__, "body": b"Body=hi&From=%2B16175550101"})
    with pytest.raises(Exception, match="To"):
        api.validate_request(as_openapi_request(no_to))
    with pytest.raises(AssertionError):
        check_twilio_rules({"To": "+16175550142", "Body": "hi"})
    with pytest.raises(AssertionError):
        check_twilio_rules({"To": "+16175550142", "From": "+16175550101"})


async def test_the_standin_answers_like_twilio(standin: TwilioStandIn) -> None:
    url = f"{standin.base_url}/2010-04-01/Accounts/{standin.account_sid}/Messages.json"
    good_auth = (standin.account_sid, standin.auth_token)
    form = {"To": "+16175550142", "From": "+16175550101", "Body": "hi"}
    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(url, data=form, auth=good_auth)
        wrong_auth = await client.post(url, data=form, auth=(standin.account_sid, "nope"))
        other_account = await client.post(
            url.replace(standin.account_sid, "AC" + "f" * 32), data=form, auth=good_auth
        )
        no_sender = await client.post(url, data={"To": form["To"], "Body": "hi"}, auth=good_auth)
        no_body = await client.post(
            url, data={"To": form["To"], "From": form["From"]}, auth=good_auth
        )
        standin.fail(21211, to="+16175550000", times=1)
        bad_number = await client.post(url, data={**form, "To": "+16175550000"}, auth=good_auth)
        bad_number_again = await client.post(
            url, data={**form, "To": "+16175550000"}, auth=good_auth
        )

    assert created.status_code == 201
    body = created.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert (body["status"], body["to"], body["from"]) == ("queued", form["To"], form["From"])
    assert (wrong_auth.status_code, wrong_auth.json()["code"]) == (401, 20003)
    assert other_account.status_code == 404
    assert (no_sender.status_code, no_sender.json()["code"]) == (400, 21603)
    assert (no_body.status_code, no_body.json()["code"]) == (400, 21602)
    assert (bad_number.status_code, bad_number.json()["code"]) == (400, 21211)
    assert bad_number_again.status_code == 201
    assert [r.authorized for r in standin.requests] == [True, False, True, True, True, True, True]
    token = base64.b64encode(f"{standin.account_sid}:{standin.auth_token}".encode()).decode()
    assert standin.requests[0].headers["authorization"] == f"Basic {token}"
