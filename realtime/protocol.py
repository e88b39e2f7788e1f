"""The live protocol's frames (SPEC section 5): decoding and validating what clients send,
building what the server sends, and encoding each outgoing frame once per encoding.

Subprotocol `msgpack` carries binary frames, `json` text frames; each frame is one map.
Everything a client sends is validated here: a bad frame becomes a `FrameError`, never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

MSGPACK = "msgpack"
JSON = "json"
SUBPROTOCOLS = (MSGPACK, JSON)

# Close codes.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_SLOW = 4008

RESUME_HINT = "resume with since"

# A channel is `kind:id`, e.g. `inbox:12`; which kinds exist, and who may see them, is the
# policy's business.
_CHANNEL = re.compile(r"[a-z][a-z_]{0,30}:[1-9][0-9]{0,17}")
CONVERSATION_PREFIX = "conversation:"
MAX_ID = 2**62


def choose_subprotocol(offered: Sequence[str]) -> tuple[str, str | None] | None:
    """(encoding, subprotocol to accept) for the client's offer; None when nothing fits.

    A client that offers no subprotocol gets msgpack, the default.
    """
    names = [name for name in offered if name]
    if not names:
        return MSGPACK, None
    for name in names:
        if name in SUBPROTOCOLS:
            return name, name
    return None


class FrameError(Exception):
    """A client frame the server cannot act on; answered with an `error` frame."""

    def __init__(self, detail: str, code: str = "bad_request", channel: str | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.channel = channel


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    since: int | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class Typing:
    conversation: int


@dataclass(frozen=True, slots=True)
class Viewing:
    """Which thread this socket shows; None when it shows none."""

    conversation: int | None


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientOp = Subscribe | Unsubscribe | Typing | Viewing | Ping


def decode(data: bytes | str, encoding: str) -> dict[str, Any]:
    """One client frame as a map, or FrameError."""
    try:
        if encoding == MSGPACK:
            if not isinstance(data, bytes):
                raise FrameError("the msgpack subprotocol takes binary frames")
            frame = msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=0)
        else:
            if not isinstance(data, str):
                raise FrameError("the json subprotocol takes text frames")
            frame = json.loads(data)
    except FrameError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types on garbage; all mean the same
        raise FrameError(f"not a valid {encoding} frame") from exc
    if not isinstance(frame, dict):
        raise FrameError("a frame must be a map")
    return frame


def parse(frame: dict[str, Any]) -> ClientOp:
    """The operation a decoded frame asks for, with every field checked."""
    op = frame.get("op")
    if op == "subscribe":
        channel = _channel(frame)
        since = frame.get("since")
        if since is not None and not _is_int(since, minimum=0):
            raise FrameError("since must be a non-negative integer", channel=channel)
        return Subscribe(channel, since)
    if op == "unsubscribe":
        return Unsubscribe(_channel(frame))
    if op == "typing":
        return Typing(_conversation(frame))
    if op == "viewing":
        return Viewing(None if frame.get("conversation") is None else _conversation(frame))
    if op == "ping":
        return Ping()
    if not isinstance(op, str):
        raise FrameError("a frame needs an op")
    raise FrameError(f"unknown op {op[:40]!r}")


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value < MAX_ID


def _channel(frame: dict[str, Any]) -> str:
    channel = frame.get("channel")
    if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
        raise FrameError("channel must look like inbox:12")
    return channel


def _conversation(frame: dict[str, Any]) -> int:
    value = frame.get("conversation")
    if not isinstance(value, int) or not _is_int(value, minimum=1):
        raise FrameError("conversation must be a conversation id")
    return value


def conversation_channel(conversation_id: int) -> str:
    return f"{CONVERSATION_PREFIX}{conversation_id}"


def conversation_id(channel: str) -> int | None:
    if channel.startswith(CONVERSATION_PREFIX):
        return int(channel[len(CONVERSATION_PREFIX) :])
    return None


class Frame:
    """A server frame, encoded at most once per encoding however many sockets it goes to: as
    the complete websocket message (header and payload) that is written to every socket."""

    __slots__ = ("message", "_msgpack", "_json")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._msgpack: bytes | None = None
        self._json: bytes | None = None

    def wire(self, encoding: str) -> bytes:
        """The websocket message: a binary frame of msgpack, or a text frame of JSON (no
        compression, no mask: a server's frame as RFC 6455 sends it)."""
        if encoding == MSGPACK:
            if self._msgpack is None:
                payload = msgpack.packb(self.message, use_bin_type=True)
                self._msgpack = WireFrame(Opcode.BINARY, payload).serialize(mask=False)
            return self._msgpack
        if self._json is None:
            text = json.dumps(self.message, separators=(",", ":"), ensure_ascii=False)
            self._json = WireFrame(Opcode.TEXT, text.encode()).serialize(mask=False)
        return self._json


def event(channel: str, type: str, data: Any, seq: int | None = None) -> Frame:
    message: dict[str, Any] = {"op": "event", "channel": channel}
    if seq is not None:
        message["seq"] = seq
    message["type"] = type
    message["data"] = data
    return Frame(message)


def subscribed(channel: str, seq: int) -> Frame:
    return Frame({"op": "subscribed", "channel": channel, "seq": seq})


def resync(channel: str) -> Frame:
    return Frame({"op": "resync", "channel": channel})


def error(code: str, detail: str, channel: str | None = None) -> Frame:
    message: dict[str, Any] = {"op": "error"}
    if channel is not None:
        message["channel"] = channel
    message["code"] = code
    message["detail"] = detail
    return Frame(message)


PONG = Frame({"op": "pong"})
