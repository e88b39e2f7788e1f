"""The `switchboard` command line: serve, worker, migrate, create-user, demo, text-in."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from server.logging import setup_logging
from server.settings import Settings
from store.migrate import upgrade


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then serve HTTP and websockets")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    commands.add_parser("worker", help="run campaigns and notifications")
    commands.add_parser("migrate", help="bring the database schema up to date")

    create_user = commands.add_parser("create-user", help="add a user")
    create_user.add_argument("email")
    create_user.add_argument("--password", required=True)
    create_user.add_argument("--name", default="")
    create_user.add_argument("--admin", action="store_true")

    commands.add_parser("demo", help="seed a demo team, inboxes and threads")

    text_in = commands.add_parser("text-in", help="text the running server as any phone")
    text_in.add_argument("--from", dest="from_", required=True, help="the texting phone")
    text_in.add_argument("--to", required=True, help="one of our numbers")
    text_in.add_argument(
        "--port", type=int, help="the running server's port, when PUBLIC_URL is unset ($PORT)"
    )
    text_in.add_argument("body")

    args = parser.parse_args(argv)
    settings = Settings.from_env(
        host=getattr(args, "host", "127.0.0.1"), port=getattr(args, "port", None)
    )
    setup_logging(settings)

    if args.command == "migrate":
        upgrade(settings.database_url)
        print("database is up to date")
        return 0
    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "worker":
        from server.worker import run_forever

        upgrade(settings.database_url)
        asyncio.run(run_forever(settings))
        return 0
    if args.command == "create-user":
        upgrade(settings.database_url)
        return asyncio.run(_create_user(settings, args.email, args.password, args.name, args.admin))
    if args.command == "demo":
        from server.demo import seed

        upgrade(settings.database_url)
        print(asyncio.run(seed(settings)))
        return 0
    if args.command == "text-in":
        from server.twilio.simulator import run_text_in

        return asyncio.run(run_text_in(settings, args.from_, args.to, args.body))
    parser.error(f"unknown command {args.command}")
    return 2


def _serve(settings: Settings, host: str, port: int) -> int:
    import gc
    import socket

    import uvicorn

    from realtime import NodeOptions
    from server import live
    from server.app import create_app
    from server.state import AppState
    from server.websocket import UVICORN_WS_OPTIONS

    class Server(uvicorn.Server):
        """On shutdown the realtime node closes the sockets first, with its "reconnect and
        resume with since" reason; uvicorn alone would cut them with a bare 1012."""

        def __init__(self, config: uvicorn.Config, state: AppState) -> None:
            super().__init__(config)
            self.state = state

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # What startup built (modules, mappers, the Twilio client) lives as long as the
            # process: left to the collector, each full collection walked all of it, a pause
            # of about 75 ms that every webhook and socket in flight waited out.
            gc.freeze()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()  # no new connections while the sockets drain
            await live.drain(self.state)
            await super().shutdown(sockets)

    upgrade(settings.database_url)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        **UVICORN_WS_OPTIONS,
        # Refuse an oversized frame from its header, before reading it into memory.
        ws_max_size=NodeOptions().max_frame_bytes,
        # The client's address (which the login limit counts by) and scheme come from
        # X-Forwarded-* only when the connection is from a proxy named in the settings.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    Server(config, app.state.switchboard).run()
    return 0


async def _create_user(
    settings: Settings, email: str, password: str, name: str, admin: bool
) -> int:
    from server.services.users import create_user
    from server.state import AppState

    state = AppState(settings)
    try:
        async with state.transaction() as session:
            user = await create_user(
                session,
                email=email,
                password=password,
                name=name,
                role="admin" if admin else "staff",
            )
        print(f"created {'admin' if admin else 'staff'} user {user.email} (id {user.id})")
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await state.close()


if __name__ == "__main__":
    sys.exit(main())
