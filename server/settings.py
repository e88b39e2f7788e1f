"""Configuration read from the environment (SPEC section 3), with the embedded defaults."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/switchboard.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
DEFAULT_TWILIO_API_BASE = "https://api.twilio.com"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base: str = DEFAULT_TWILIO_API_BASE
    public_url: str = DEFAULT_PUBLIC_URL
    secret_key: str = field(default="", repr=False)
    smtp_url: str | None = None
    data_dir: Path = Path("./data")
    # Run the campaign and notification loops inside `serve` (the embedded default).
    run_worker_in_process: bool = True
    # Outbox retention: how far back `since` can replay before the answer is `resync`.
    event_retention_count: int = 10_000
    event_retention_seconds: int = 7 * 24 * 3600
    # Redis channel/key prefix, so several deployments (or test runs) can share one Redis.
    redis_prefix: str = "switchboard:"
    # How often live channels are compared with the outbox to recover lost publishes (0: never).
    live_poll_seconds: float = 1.0
    # Reverse proxies (IPs or networks, comma-separated) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; empty: none, the peer's address is the client's.
    trusted_proxies: str = ""

    @property
    def simulator(self) -> bool:
        """No Twilio credentials: outbound SMS go to the built-in simulator."""
        return not (self.twilio_account_sid and self.twilio_auth_token)

    @property
    def webhook_auth_token(self) -> str:
        """The token that signs webhooks: Twilio's, or the simulator's own (the secret key)."""
        return self.twilio_auth_token or self.secret_key

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(
        cls,
        environ: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> Settings:
        """`host` and `port`: where `serve` listens (`port` None: `$PORT`, else 8000). Without
        `PUBLIC_URL` that is the public URL, so that a browser on this machine passes the
        websocket's `Origin` check and the simulator's webhooks reach the server."""
        env = dict(os.environ if environ is None else environ)
        listening = local_url(host, port if port is not None else int(env.get("PORT") or 8000))
        data_dir = Path(env.get("SWITCHBOARD_DATA_DIR", "./data"))
        redis_url = env.get("REDIS_URL") or None
        return cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=redis_url,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            twilio_api_base=(env.get("TWILIO_API_BASE") or DEFAULT_TWILIO_API_BASE).rstrip("/"),
            public_url=env.get("PUBLIC_URL") or listening,
            secret_key=env.get("SECRET_KEY") or _stored_secret(data_dir),
            smtp_url=env.get("SMTP_URL") or None,
            data_dir=data_dir,
            run_worker_in_process=_flag(env.get("SWITCHBOARD_IN_PROCESS_WORKER"), default=True),
            event_retention_count=int(env.get("SWITCHBOARD_EVENT_RETENTION_COUNT", "10000")),
            event_retention_seconds=int(
                env.get("SWITCHBOARD_EVENT_RETENTION_SECONDS", str(7 * 24 * 3600))
            ),
            redis_prefix=env.get("SWITCHBOARD_REDIS_PREFIX", "switchboard:"),
            live_poll_seconds=float(env.get("SWITCHBOARD_LIVE_POLL_SECONDS", "1.0")),
            trusted_proxies=env.get("SWITCHBOARD_TRUSTED_PROXIES", "").strip(),
        )


def local_url(host: str, port: int) -> str:
    """The URL of a server listening on `host`:`port`, as a browser on this machine opens it."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _stored_secret(data_dir: Path) -> str:
    """The secret key generated on first run and kept in the data directory."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        with open(path, "x") as handle:
            handle.write(key)
        path.chmod(0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_text().strip()
    return key
