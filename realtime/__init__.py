"""Live delivery: broker, connection hub, channel permissions, presence, replay, framing."""
