"""The application factory: builds the Starlette app and wires the parts together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from server import errors, live, outages, worker
from server.auth import SocketSignIns
from server.logging import RequestIdMiddleware
from server.metrics import Metrics, MetricsMiddleware, observe_publisher
from server.routes import api, campaigns, ops, pages, sending, twilio_webhooks, ws
from server.security_headers import SecurityHeadersMiddleware
from server.services import inbound
from server.settings import Settings
from server.state import AppState
from server.twilio import setup as twilio_setup


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    state = AppState(settings)
    metrics = Metrics(realtime=lambda: state.publisher)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await twilio_setup.start(state)
        await live.start(state)
        observe_publisher(state, metrics)
        if settings.run_worker_in_process:
            await worker.start(state)
        try:
            yield
        finally:
            if settings.run_worker_in_process:
                await worker.stop(state)
            await live.stop(state)
            await twilio_setup.stop(state)
            await state.close()

    middleware: list[Middleware] = [
        Middleware(RequestIdMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(SecurityHeadersMiddleware),
    ]
    app = Starlette(
        # Twilio's webhooks come first: the router tries routes in order, and they are
        # the requests that come in bursts.
        routes=[
            *twilio_webhooks.routes,
            *ops.routes,
            *api.routes,
            *campaigns.routes,
            *sending.routes,
            *ws.routes,
            *pages.routes,
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            **outages.handlers,
            errors.ApiError: errors.api_error_handler,
            HTTPException: errors.http_exception_handler,
            Exception: errors.server_error_handler,
        },
    )
    app.state.switchboard = state
    app.state.metrics = metrics
    app.state.inbound = inbound.Receiver(state)
    app.state.socket_sign_ins = SocketSignIns(state)
    return app
