"""The database schema: every table Switchboard keeps, as SQLAlchemy 2 declarative models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite's INTEGER PRIMARY KEY only autoincrements for plain INTEGER; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite (which drops the zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="staff")  # admin | staff
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AuthSession(Base):
    """One sign-in: the bearer token and the session cookie both carry its secret.

    Only a SHA-256 digest of the secret is stored, so a database leak yields no usable token.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


class LoginAttempt(Base):
    """A sign-in attempt not (yet) known to have succeeded; the login rate limit counts these.

    Kept in the database so every server process sees the same counts.
    """

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.last_name, self.phone)


def display_name(first_name: str, last_name: str, phone: str) -> str:
    """How a contact is called: by name, or by number when it has none."""
    return " ".join(part for part in (first_name, last_name) if part) or phone


class MessagingService(Base):
    __tablename__ = "messaging_services"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)  # MG…
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(16), default="one_to_one")  # one_to_one | blast
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Inbox(Base):
    __tablename__ = "inboxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The built-in inbox for numbers routed nowhere; only admins see it.
    is_unrouted: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_delay_seconds: Mapped[int] = mapped_column(Integer, default=900)
    # "members" or a list of email addresses.
    notify_to: Mapped[Any] = mapped_column(JSON, default="members")
    # When alerts were last turned on: texts from before raise none, so that turning them on
    # does not mail the backlog. None: alerts from before this was kept, for any text.
    notify_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxMember(Base):
    __tablename__ = "inbox_members"

    inbox_id: Mapped[int] = mapped_column(
        ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)  # PN…
    number: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    messaging_service_id: Mapped[int] = mapped_column(
        ForeignKey("messaging_services.id"), index=True
    )
    inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("inboxes.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    messaging_service: Mapped[MessagingService] = relationship(lazy="joined")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("inbox_id", "contact_id"),
        Index("ix_conversations_inbox_recent", "inbox_id", "last_message_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    last_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The newest inbound message; "unread" compares read markers against it.
    last_inbound_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The inbox number the contact last wrote to: quick replies go out from it (sticky sender).
    sticky_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(lazy="joined")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    messaging_service_id: Mapped[int] = mapped_column(ForeignKey("messaging_services.id"))
    body: Mapped[str] = mapped_column(Text)
    # draft | scheduled | sending | paused | done | canceled
    status: Mapped[str] = mapped_column(String(16), default="draft")
    rate_per_second: Mapped[float] = mapped_column(default=10.0)
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The number the blast goes out from (fixed when it starts, so replies find one thread).
    from_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # The throttle: the next free send slot; workers reserve slots by advancing it under lock.
    next_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CampaignRecipient(Base):
    """One contact of a campaign, claimed by exactly one worker and sent at most once."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_campaign_recipients_pending", "campaign_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    # pending | claimed | sending | sent | failed | unknown | skipped_opted_out
    state: Mapped[str] = mapped_column(String(20), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_recent", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    direction: Mapped[str] = mapped_column(String(8))  # inbound | outbound
    tag: Mapped[str] = mapped_column(String(8))  # inbound | quick | campaign
    body: Mapped[str] = mapped_column(Text, default="")
    # inbound: received; outbound: sending → accepted/queued/sent/delivered/… or failed/unknown
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    from_number: Mapped[str] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(20))
    # Unique: Twilio's MessageSid is the idempotency key of inbound webhooks.
    twilio_sid: Mapped[str | None] = mapped_column(String(34), unique=True, nullable=True)
    messaging_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("messaging_services.id"), nullable=True
    )
    segments: Mapped[int] = mapped_column(Integer, default=1)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    sent_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id"), nullable=True, index=True
    )
    # opted_out | opted_in when this inbound message changed the contact's opt-out state.
    opt_change: Mapped[str | None] = mapped_column(String(12), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PendingStatus(Base):
    """A status callback for a sid we do not know yet (it beat Twilio's create response)."""

    __tablename__ = "pending_statuses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    twilio_sid: Mapped[str] = mapped_column(String(34), index=True)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptOut(Base):
    """Whether a phone is opted out of a messaging service (opt-out is per service, not number)."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("messaging_service_id", "phone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    messaging_service_id: Mapped[int] = mapped_column(ForeignKey("messaging_services.id"))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    # keyword | opt_out_type | error_21610 | staff
    source: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OptOutEvent(Base):
    """The history behind OptOut: every change, with what caused it."""

    __tablename__ = "opt_out_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    messaging_service_id: Mapped[int] = mapped_column(ForeignKey("messaging_services.id"))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    action: Mapped[str] = mapped_column(String(8))  # opt_out | opt_in
    source: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReadMarker(Base):
    __tablename__ = "read_markers"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    message_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Notification(Base):
    """An unread-message email owed for a conversation; one per quiet period."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "state", "due_at"),
        # One email per quiet period: the period is named by its first unread inbound message.
        UniqueConstraint("conversation_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int] = mapped_column(BigInteger)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # pending | sent | canceled
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChannelSequence(Base):
    """The last sequence number handed out on a channel; its row lock keeps seqs gap-free."""

    __tablename__ = "channel_sequences"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


class Event(Base):
    """The outbox: a change and the event announcing it commit in one transaction."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("channel", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
