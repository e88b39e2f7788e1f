"""A raw websocket client for the benchmarks: the handshake, subscribing and the probes.

A client built on the `websockets` library spends tens of microseconds on each frame (a
parser generator, a frame object, a queue and an `await` per message). This one is an asyncio
protocol that, once subscribed, only splits the byte stream into frames and hands each payload
to a callback: the same client for Switchboard and for the peer, so the comparison stays fair.
The probes, which decode each frame to time it, stay on it; the other clients are handed over
(`detach`) to `bench/frame_counter.c`, which counts for a fraction of its cost.

Until then it offers `recv()` and `send()` like the `websockets` connection, so a client
adapter's handshake code reads the same. Server frames are never masked or fragmented here
(neither server fragments, and compression is not offered); pings are answered with pongs, as
the servers expect.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from websockets.frames import Frame, Opcode

OnMessage = Callable[[str | bytes], None]

_TEXT, _BINARY, _CLOSE, _PING = 0x1, 0x2, 0x8, 0x9
# Thousands of handshakes queue up behind each other on a busy server.
OPEN_TIMEOUT = 120


class HandshakeError(Exception):
    """The server did not switch protocols."""


class RawClient(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False
        self._upgrade: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._on_message: OnMessage | None = None
        self.closed = asyncio.Event()

    # asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            self._upgraded = True
            self._upgrade.set_result(head)
        self._split_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._upgrade.done():
            self._upgrade.set_exception(ConnectionError("closed during the handshake"))
        self._messages.put_nowait(None)
        self.closed.set()

    # frames ------------------------------------------------------------------------------

    def _split_frames(self) -> None:
        buffer = self._buffer
        size = len(buffer)
        at = 0
        while size - at >= 2:
            opcode = buffer[at] & 0x0F
            length = buffer[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                if size - at < 4:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 4], "big")
                start = at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length = int.from_bytes(buffer[at + 2 : at + 10], "big")
                start = at + 10
            end = start + length
            if end > size:
                break
            payload = bytes(buffer[start:end])
            at = end
            if opcode == _BINARY:
                self._deliver(payload)
            elif opcode == _TEXT:
                self._deliver(payload.decode())
            elif opcode == _PING:
                self._write(Opcode.PONG, payload)
            elif opcode == _CLOSE:
                self._write(Opcode.CLOSE, payload[:2])
                assert self.transport is not None
                self.transport.close()
        if at:
            del buffer[:at]

    def _deliver(self, message: str | bytes) -> None:
        if self._on_message is not None:
            self._on_message(message)
        else:
            self._messages.put_nowait(message)

    def _write(self, opcode: Opcode, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(Frame(opcode, payload).serialize(mask=True))

    # what the adapters use ---------------------------------------------------------------

    async def recv(self) -> str | bytes:
        """The next message (only until `on_message` takes over)."""
        message = await self._messages.get()
        if message is None:
            raise ConnectionError("the server closed the connection")
        return message

    async def send(self, message: str | bytes) -> None:
        self.send_nowait(message)

    def send_nowait(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._write(Opcode.TEXT, message.encode())
        else:
            self._write(Opcode.BINARY, message)

    def on_message(self, callback: OnMessage) -> None:
        """From now on every message goes to `callback`, as it is split off the stream."""
        while not self._messages.empty():
            waiting = self._messages.get_nowait()
            if waiting is not None:
                callback(waiting)
        self._on_message = callback

    def detach(self) -> int:
        """Stop reading here and return a duplicate of the socket's descriptor, for another
        process to read from. Only between frames: no partial frame may be left behind."""
        assert self.transport is not None
        self.transport.pause_reading()
        if self._buffer:
            raise RuntimeError(f"{len(self._buffer)} bytes of a frame not yet read")
        return os.dup(self.transport.get_extra_info("socket").fileno())

    def close(self) -> None:
        self._write(Opcode.CLOSE, (1000).to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()


async def connect(url: str, headers: Mapping[str, str]) -> RawClient:
    """Open `url` (ws://host:port/path) and upgrade it; `headers` go with the request."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(OPEN_TIMEOUT):
        _, client = await loop.create_connection(RawClient, host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        assert client.transport is not None
        client.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await client._upgrade
    if not head.startswith(b"HTTP/1.1 101"):
        client.transport.close()
        raise HandshakeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return client
