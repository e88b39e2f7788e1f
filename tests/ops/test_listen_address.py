"""Without PUBLIC_URL, where `serve` listens is the public URL: pages served on another port
go live, and `text-in --port` reaches the server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from server.settings import Settings, local_url
from tests.live.helpers import LiveClient
from tests.ops.conftest import json_lines, start_logged_server
from tests.support.live_server import run_cli, settings_env

PASSWORD = "a long enough password"


def test_the_listening_address_as_a_url() -> None:
    assert local_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert local_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert local_url("::1", 9000) == "http://[::1]:9000"
    assert Settings.from_env({"PORT": "9100"}).public_url == "http://127.0.0.1:9100"
    assert Settings.from_env({}, host="localhost", port=9200).public_url == "http://localhost:9200"
    given = {"PUBLIC_URL": "https://sms.example.edu", "PORT": "9100"}
    assert Settings.from_env(given, port=9200).public_url == "https://sms.example.edu"


async def test_serve_on_another_port_goes_live_without_public_url(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**settings_env(settings), "PUBLIC_URL": ""}  # unset, as on a fresh machine
    server = start_logged_server(settings, tmp_path / "serve.log", PUBLIC_URL="")
    port = server.base_url.rsplit(":", 1)[1]
    try:
        made = await run_cli(
            env, "create-user", "ada@example.edu", "--password", PASSWORD, "--admin"
        )
        assert made[0] == 0, made[2]
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": "ada@example.edu", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]

        # The page's own socket (cookie, Origin of the page) is let in; other origins are not.
        ws_url = f"ws://127.0.0.1:{port}/ws"
        page = await LiveClient.connect(ws_url, cookie=token, origin=server.base_url)
        await page.subscribe(f"user:{login.json()['user']['id']}")
        await page.close()
        for _ in range(2):
            with pytest.raises(InvalidStatus) as refused:
                await LiveClient.connect(ws_url, cookie=token, origin="http://127.0.0.1:8000")
            assert refused.value.response.status_code == 403

        # The simulator signs for the same URL the server checks.
        sent = await run_cli(
            env, "text-in", "--port", port, "--from", "+16175550142", "--to", "+16175550100", "Hi"
        )
        assert sent[0] == 0, sent[2]
    finally:
        server.stop()
    # The refusal says why in the log, once per origin.
    [refusal] = [r for r in json_lines(server.stop()) if r["logger"] == "switchboard.ws"]
    assert refusal["level"] == "warning"
    assert "Origin 'http://127.0.0.1:8000' is not PUBLIC_URL" in refusal["message"]
    assert f"'{server.base_url}'" in refusal["message"]
