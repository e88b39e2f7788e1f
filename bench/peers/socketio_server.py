"""The peer: a shared-inbox fan-out server built the usual way, on python-socketio.

An `AsyncServer` (ASGI, served by uvicorn with the same options as `switchboard serve`) with
an `AsyncRedisManager` when `--redis` is given, so several processes act as one. Clients join
the room `inbox:1` with an acknowledged `join` event. `POST /webhook` (a form like Twilio's)
plays the inbound webhook: it builds a message shaped like Switchboard's `message.created`
data and emits it to the room. It stores nothing (a generous peer: Switchboard commits every
message and its event to the database before it publishes).

    python -m bench.peers.socketio_server --port 8100 [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import itertools
from datetime import UTC, datetime

import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOM = "inbox:1"


def build_app(redis_url: str | None, channel: str) -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel) if redis_url else None
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, cors_allowed_origins="*", logger=False
    )
    ids = itertools.count(1)

    @sio.event
    async def join(sid: str, room: str) -> str:
        await sio.enter_room(sid, room)
        return "ok"

    async def webhook(request: Request) -> Response:
        form = await request.form()
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        message = {
            "id": next(ids),
            "conversation_id": 1,
            "direction": "inbound",
            "tag": "inbound",
            "body": form.get("Body", ""),
            "status": "received",
            "error_code": None,
            "error_message": None,
            "from": form.get("From", ""),
            "to": form.get("To", ""),
            "twilio_sid": form.get("MessageSid", ""),
            "sent_by": None,
            "campaign_id": None,
            "segments": 1,
            "opt_change": None,
            "created_at": now,
            "updated_at": now,
        }
        await sio.emit("message.created", message, room=ROOM)
        return Response("<Response/>", media_type="text/xml")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    http = Starlette(
        routes=[Route("/webhook", webhook, methods=["POST"]), Route("/healthz", healthz)]
    )
    return socketio.ASGIApp(sio, other_asgi_app=http)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--channel", default="bench-socketio")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.redis, args.channel),
        host="127.0.0.1",
        port=args.port,
        ws="websockets",
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
