"""Starts and stops the Twilio gateway (real REST client or simulator) on `state.gateway`."""

from __future__ import annotations

import logging

from server.state import AppState
from server.twilio.gateway import Gateway, TwilioGateway
from server.twilio.simulator import SimulatorGateway

log = logging.getLogger("switchboard.twilio")


async def start(state: AppState) -> None:
    settings = state.settings
    gateway: Gateway
    if settings.simulator:
        log.info("no Twilio credentials: outbound SMS go to the built-in simulator")
        gateway = SimulatorGateway(settings)
    else:
        gateway = TwilioGateway(
            settings.twilio_account_sid or "",
            settings.twilio_auth_token or "",
            settings.twilio_api_base,
        )
    state.gateway = gateway  # type: ignore[attr-defined]


async def stop(state: AppState) -> None:
    gateway: Gateway | None = getattr(state, "gateway", None)
    if gateway is not None:
        await gateway.close()
        state.gateway = None  # type: ignore[attr-defined]


def gateway_of(state: AppState) -> Gateway:
    """The gateway `start` put on `state`; a process that never started one gets an error."""
    gateway: Gateway | None = getattr(state, "gateway", None)
    if gateway is None:
        raise RuntimeError("the Twilio gateway is not started (server.twilio.setup.start)")
    return gateway
