"""`GET /ws`: the live socket (SPEC section 5).

The handshake is authenticated here: a bearer token, or the session cookie from a page of
this very site (the `Origin` must be `PUBLIC_URL`'s, which refuses cross-site websocket
hijacking). Everything after the handshake is the realtime node's.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime import Principal, TransportClosed, protocol
from server import live
from server.auth import credentials
from server.errors import error_response
from server.state import AppState
from server.websocket import DIRECT_WRITE, DirectWriter

log = logging.getLogger("switchboard.ws")

# Refused origins already logged (a bounded set: a flood of forged origins logs little).
_logged_origins: set[str] = set()
MAX_LOGGED_ORIGINS = 32

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class _Socket:
    """The realtime node's Transport: Starlette's websocket to receive and close, the
    protocol's direct writer to write."""

    def __init__(self, websocket: WebSocket, writer: DirectWriter) -> None:
        self._websocket = websocket
        self._writer = writer
        self.write = writer.write
        self.wait_writable = writer.wait_writable
        self.abort = writer.abort

    async def receive(self) -> bytes | str | None:
        try:
            message = await self._websocket.receive()
        except (OSError, RuntimeError, WebSocketDisconnect):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        data = message.get("bytes")
        if data is not None:
            return data
        return message.get("text") or ""

    @property
    def writable(self) -> bool:
        return self._writer.writable

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._websocket.close(code, reason)
        except (OSError, RuntimeError, WebSocketDisconnect) as exc:
            raise TransportClosed from exc


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None


def same_origin(origin: str | None, public_url: str) -> bool:
    return bool(origin) and _origin(origin or "") == _origin(public_url)


def _log_refused_origin(origin: str | None, public_url: str) -> None:
    """Say once per origin why a signed-in page's socket was refused: a cross-site attempt,
    or, far more often, PUBLIC_URL not being the address the browsers use."""
    key = origin or ""
    if key in _logged_origins or len(_logged_origins) >= MAX_LOGGED_ORIGINS:
        return
    _logged_origins.add(key)
    log.warning(
        "websocket refused: its page's Origin %r is not PUBLIC_URL %r; if browsers open "
        "Switchboard at that address, set PUBLIC_URL to it",
        origin,
        public_url,
    )


async def _refuse(websocket: WebSocket, status: int, code: str, detail: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, code, detail))
    else:
        await websocket.close(protocol.CLOSE_POLICY, detail)


async def live_socket(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.switchboard
    node = live.node_of(state)
    if node is None:
        await _refuse(websocket, 503, "unavailable", "the live service is not running")
        return
    writer = websocket.scope.get("extensions", {}).get(DIRECT_WRITE)
    if writer is None:
        await _refuse(websocket, 500, "unavailable", "serve with `switchboard serve` (uvicorn)")
        return
    chosen = protocol.choose_subprotocol(websocket.scope.get("subprotocols") or [])
    if chosen is None:
        await _refuse(websocket, 400, "bad_request", "use the msgpack or json subprotocol")
        return
    token, from_cookie = credentials(websocket)
    if token is None:
        await _refuse(websocket, 401, "unauthorized", "sign in first")
        return
    origin = websocket.headers.get("origin")
    if from_cookie and not same_origin(origin, state.settings.public_url):
        _log_refused_origin(origin, state.settings.public_url)
        await _refuse(websocket, 403, "forbidden", "cross-site websocket refused")
        return
    found = await websocket.app.state.socket_sign_ins.check(token)
    if found is None:
        await _refuse(websocket, 401, "unauthorized", "sign in first")
        return
    user, auth_session = found
    encoding, subprotocol = chosen
    await websocket.accept(subprotocol=subprotocol)
    await node.serve(
        _Socket(websocket, writer),
        Principal(user.id, auth_session.id, user.name or user.email),
        encoding,
    )


routes: list[BaseRoute] = [WebSocketRoute("/ws", live_socket)]
