"""Live delivery: websocket sockets, channels, brokers, typing and presence (SPEC section 5).

Knows nothing of the database, HTTP routes or Twilio: `server/` injects a `Policy` and a
`History` and hands accepted sockets to `Node.serve`.
"""

from realtime.node import Node, NodeOptions, create_node
from realtime.ports import Envelope, History, Policy, Principal, Transport, TransportClosed

__all__ = [
    "Envelope",
    "History",
    "Node",
    "NodeOptions",
    "Policy",
    "Principal",
    "Transport",
    "TransportClosed",
    "create_node",
]
