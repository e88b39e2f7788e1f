"""What the realtime node needs from the application, injected so it knows nothing of storage.

`server/` decides who may subscribe to what (`Policy`), where committed events come from
(`History`, backed by the event outbox), and hands each accepted websocket over as a
`Transport`. An event travelling through the node is an `Envelope`:
`{"channel": str, "seq": int, "type": str, "data": dict}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Envelope = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end of a socket: a user, through one sign-in session."""

    user_id: int
    session_id: int
    name: str = ""


class Policy(Protocol):
    async def authorize(self, principal: Principal, channels: Sequence[str]) -> dict[str, bool]:
        """May `principal` subscribe to each channel? All False once its session is gone.

        Also decides `typing` and `viewing` on `conversation:{id}`: allowed exactly when that
        channel could be subscribed to.
        """
        ...

    async def session_valid(self, principal: Principal) -> bool:
        """Is the sign-in session still live (not revoked or expired, user still active)?"""
        ...


class History(Protocol):
    """Committed events, read back from the outbox; seqs are gap-free per channel.

    Old events may have been trimmed: a replay that finds its first event missing answers
    `resync`, so no separate "oldest retained" query is needed.
    """

    async def since(self, channel: str, seq: int, limit: int) -> Sequence[Envelope]:
        """Events of `channel` with seq > `seq`, oldest first, at most `limit`."""
        ...

    async def heads(self, channels: Sequence[str]) -> dict[str, int]:
        """The last committed seq of each channel (0 when it never had an event)."""
        ...


class TransportClosed(Exception):
    """The socket is gone; nothing more can be sent on it."""


class Transport(Protocol):
    """One accepted websocket, as the node sees it.

    Writing is synchronous: `write` hands a complete websocket message (`Frame.wire`) to the
    socket's own buffer, so fanning an event out to a thousand sockets is a thousand buffer
    appends, with no task and no await per recipient. The buffer is bounded by the socket's
    flow control: past its high-water mark the transport stops being `writable` until the
    client has read enough, and the node queues (boundedly) meanwhile.
    """

    async def receive(self) -> bytes | str | None:
        """The next message from the client; None once the client has gone."""
        ...

    @property
    def writable(self) -> bool:
        """True while the socket's buffer is below its high-water mark."""
        ...

    def write(self, message: bytes) -> None:
        """Buffer one complete websocket message; TransportClosed if the socket has gone."""
        ...

    async def wait_writable(self) -> None:
        """Until the socket is writable again, or gone (then TransportClosed)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with the websocket closing handshake (after what is buffered)."""
        ...

    def abort(self) -> None:
        """Drop the connection at once, buffered data and all."""
        ...
