"""The websocket protocol `switchboard serve` runs under uvicorn: uvicorn's own (websockets,
sans-I/O), plus a direct writer through which the live socket puts pre-framed messages
straight into the socket's buffer.

Through ASGI every outgoing message costs an `await` through Starlette and uvicorn and is framed
again for each socket; a fan-out to a thousand sockets paid that a thousand times. The direct
writer takes the message already framed once per process (`realtime.protocol.Frame.wire`) and
appends it to the transport's buffer synchronously. Everything else (handshake, receiving,
pings, closing) stays uvicorn's. Control frames uvicorn writes are whole frames too, so the
two never interleave inside a frame.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from realtime import TransportClosed

# The key of the ASGI scope extension that carries the socket's DirectWriter.
DIRECT_WRITE = "switchboard.direct_write"


class DirectWriter:
    """Synchronous writes of pre-framed messages, with the socket's flow control.

    `writable` is a plain attribute the protocol keeps current (fan-out reads it once per
    socket per event): False from the transport's pause_writing to its resume_writing.
    """

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol
        self.writable = protocol.writable.is_set()

    @property
    def _gone(self) -> bool:
        protocol = self._protocol
        return protocol.disconnected or protocol.close_sent or protocol.transport.is_closing()

    def write(self, message: bytes) -> None:
        if self._gone:
            raise TransportClosed
        self._protocol.transport.write(message)

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()  # also set when the connection is lost
        if self._gone:
            raise TransportClosed

    def abort(self) -> None:
        self._protocol.transport.abort()


class SwitchboardWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, offering the app a DirectWriter in the ASGI scope.

    Only without per-message compression: a compressed socket needs each message compressed
    with its own context, so there is no one framing to share.
    """

    direct: DirectWriter | None = None

    async def run_asgi(self) -> None:
        if not self.conn.extensions:
            self.direct = DirectWriter(self)
            self.scope["extensions"][DIRECT_WRITE] = self.direct  # type: ignore[index]
        await super().run_asgi()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.direct is not None:
            self.direct.writable = False

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.direct is not None:
            self.direct.writable = True

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.direct is not None:
            self.direct.writable = True  # writes now fail fast with TransportClosed


# What uvicorn needs to serve the app's live sockets, wherever it is served (`serve`, the test
# server, the screenshots script): this protocol, whose direct writer the /ws route asks for,
# without per-message compression.
UVICORN_WS_OPTIONS: dict[str, Any] = {
    "ws": SwitchboardWebSocketProtocol,
    "ws_per_message_deflate": False,
}
