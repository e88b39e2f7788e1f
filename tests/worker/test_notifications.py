"""Unread email notifications, sent by the worker to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from server.services import admin, notifications
from server.settings import Settings
from store.migrate import upgrade_async
from store.models import Contact, Conversation, Message, Notification, utcnow
from tests.support.live_server import LiveServer
from tests.support.messaging import World, commits_of, eventually, text_in
from tests.worker.conftest import StartWorker
from tests.worker.support import SmtpSink, mark_read, set_notifications

ANN = "+16175550161"
BEN = "+16175550162"
CAL = "+16175550163"


def with_smtp(server: LiveServer, sink: SmtpSink) -> Settings:
    return replace(server.settings, smtp_url=sink.url)


async def inbound(server: LiveServer, http: httpx.AsyncClient, world: World, who: str, body: str):
    """Text in as `who` through the real webhook; the stored message."""
    response = await text_in(http, server.settings, who, world.n1, body)
    assert response.status_code == 200
    async with server.state.reading() as session:
        stmt = select(Message).where(Message.body == body).order_by(Message.id.desc())
        return (await session.scalars(stmt)).first()


async def notification_rows(server: LiveServer, conversation_id: int) -> list[Notification]:
    async with server.state.reading() as session:
        stmt = select(Notification).where(Notification.conversation_id == conversation_id)
        return list((await session.scalars(stmt)).all())


async def sent_rows(server: LiveServer, conversation_id: int) -> list[Notification]:
    rows = await notification_rows(server, conversation_id)
    return rows if rows and all(row.state == "sent" for row in rows) else []


async def test_unread_message_is_emailed_to_members_after_the_delay(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    async with live_server.state.transaction() as session:
        session.add(Contact(phone=ANN, first_name="Ann", last_name="Lee"))
    await set_notifications(live_server.state, world.admissions, delay=1)
    await start_worker(with_smtp(live_server, smtp))

    message = await inbound(live_server, http, world, ANN, "Is the deadline on Friday?")
    [email] = await smtp.wait()

    # Not before the delay; to the inbox's one member, not to the admin who is no member.
    assert email.at >= message.created_at.timestamp() + 1
    assert email.recipients == ["member@example.edu"]
    assert email.message["To"] == "member@example.edu"
    assert email.message["Subject"] == "Unread message from Ann Lee in Admissions"
    assert "Ann Lee (+16175550161) wrote to Admissions" in email.text
    assert "Is the deadline on Friday?" in email.text
    link = f"{live_server.settings.public_base}/conversations/{message.conversation_id}"
    assert link in email.text
    [row] = await eventually(lambda: sent_rows(live_server, message.conversation_id))
    assert (row.message_id, row.attempts) == (message.id, 1)


async def test_turning_alerts_on_mails_no_backlog_only_what_comes_after(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    await set_notifications(live_server.state, world.admissions, delay=1, enabled=False)
    backlog = await inbound(live_server, http, world, ANN, "Sent before alerts were on")
    async with live_server.state.transaction() as session:  # as the admin page does
        await admin.update_inbox(session, world.admissions, notifications={"enabled": True})
    await start_worker(with_smtp(live_server, smtp))

    fresh = await inbound(live_server, http, world, BEN, "Sent after alerts were on")
    [email] = await smtp.wait(fresh.conversation_id)
    assert "Sent after alerts were on" in email.text
    assert smtp.emails(backlog.conversation_id) == []
    assert await notification_rows(live_server, backlog.conversation_id) == []

    # A new text in a conversation of the backlog is alerted, naming the new text.
    again = await inbound(live_server, http, world, ANN, "Still there?")
    [later] = await smtp.wait(backlog.conversation_id)
    assert "Still there?" in later.text and "Sent before" not in later.text
    [row] = await notification_rows(live_server, backlog.conversation_id)
    assert row.message_id == again.id


async def test_a_member_reading_first_cancels_it_but_an_admin_reading_does_not(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    await set_notifications(live_server.state, world.admissions, delay=2)
    await start_worker(with_smtp(live_server, smtp))

    read_by_member = await inbound(live_server, http, world, ANN, "first")
    read_by_admin = await inbound(live_server, http, world, BEN, "second")
    unread = await inbound(live_server, http, world, CAL, "third")
    await mark_read(
        live_server.state, world.member, read_by_member.conversation_id, read_by_member.id
    )
    await mark_read(live_server.state, world.admin, read_by_admin.conversation_id, read_by_admin.id)

    # The last one's email comes after the others were due: by then they were looked at too.
    await smtp.wait(unread.conversation_id)
    await smtp.wait(read_by_admin.conversation_id)
    assert smtp.emails(read_by_member.conversation_id) == []
    assert await notification_rows(live_server, read_by_member.conversation_id) == []
    assert len(smtp.emails()) == 2


async def test_one_email_per_quiet_period(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    await set_notifications(live_server.state, world.admissions, delay=1)
    await start_worker(with_smtp(live_server, smtp))

    first = await inbound(live_server, http, world, ANN, "hello?")
    conversation_id = first.conversation_id
    await smtp.wait(conversation_id)

    # More messages while still unread: no second email, even well after their delay.
    await inbound(live_server, http, world, ANN, "anyone there?")
    latest = await inbound(live_server, http, world, ANN, "please answer")
    control = await inbound(live_server, http, world, BEN, "control")
    await smtp.wait(control.conversation_id)
    assert len(smtp.emails(conversation_id)) == 1

    # A member reads: the quiet period ends; the next message starts a new one.
    await mark_read(live_server.state, world.member, conversation_id, latest.id)
    again = await inbound(live_server, http, world, ANN, "one more thing")
    second = (await smtp.wait(conversation_id, count=2))[1]
    assert "one more thing" in second.text
    rows = await notification_rows(live_server, conversation_id)
    assert sorted(r.message_id for r in rows) == [first.id, again.id]


async def test_smtp_down_is_retried_with_backoff_until_it_is_up(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    start_worker: StartWorker,
) -> None:
    sink = SmtpSink()  # not started: its port refuses connections
    await set_notifications(live_server.state, world.admissions, delay=0)
    await start_worker(with_smtp(live_server, sink))
    message = await inbound(live_server, http, world, ANN, "are you there?")

    async def failed_twice() -> Notification | None:
        # A third claim is only made once the second attempt has failed.
        rows = await notification_rows(live_server, message.conversation_id)
        return rows[0] if rows and rows[0].attempts >= 3 else None

    row = await eventually(failed_twice, within=20)
    assert row.state == "pending" and "SMTPConnectError" in (row.last_error or "")
    # Meanwhile the inbox goes on: another message is stored and answered as usual.
    assert (await inbound(live_server, http, world, BEN, "still works")) is not None

    sink.start()
    try:
        await sink.wait(message.conversation_id)
        [row] = await eventually(lambda: sent_rows(live_server, message.conversation_id))
        assert row.attempts >= 3
        assert len(sink.emails(message.conversation_id)) == 1
    finally:
        sink.stop()


async def test_an_address_list_gets_it_instead_of_the_members(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    to = ["desk@example.edu", "dean@example.edu"]
    await set_notifications(live_server.state, world.admissions, delay=0, to=to)
    await start_worker(with_smtp(live_server, smtp))
    await inbound(live_server, http, world, ANN, "hi")
    [email] = await smtp.wait()
    assert sorted(email.recipients) == sorted(to)


async def test_two_workers_never_send_the_same_email_twice(
    live_server: LiveServer,
    http: httpx.AsyncClient,
    world: World,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    await set_notifications(live_server.state, world.admissions, delay=1)
    settings = with_smtp(live_server, smtp)
    await start_worker(settings)
    await start_worker(settings)
    phones = [f"+1617555{3000 + i}" for i in range(20)]
    for phone in phones:
        await inbound(live_server, http, world, phone, f"hello from {phone}")
    emails = await smtp.wait(count=20, within=30)
    async with live_server.state.reading() as session:
        ids = (await session.scalars(select(Conversation.id))).all()
    control = await inbound(live_server, http, world, ANN, "control")
    await smtp.wait(control.conversation_id)
    for conversation_id in ids:
        assert len(smtp.emails(conversation_id)) == 1, conversation_id
    assert len(emails) == 20


async def test_the_search_for_due_emails_holds_no_write_lock(
    live_server: LiveServer, http: httpx.AsyncClient, world: World
) -> None:
    """Every pass searches every recent conversation; inside a write transaction the search
    held SQLite's one write lock, and every webhook behind it, for as long as it took."""
    await set_notifications(live_server.state, world.admissions, delay=60)
    message = await inbound(live_server, http, world, ANN, "Anyone there?")
    with commits_of(live_server.state) as commits:
        assert await notifications.schedule_due(live_server.state, now=message.created_at) == 0
    assert commits == []
    later = message.created_at + timedelta(seconds=61)
    with commits_of(live_server.state) as commits:
        assert await notifications.schedule_due(live_server.state, now=later) == 1
    assert len(commits) == 1
    [row] = await notification_rows(live_server, message.conversation_id)
    assert row.message_id == message.id


async def test_the_search_reads_only_conversations_of_inboxes_with_notifications_on(
    tmp_path: Path,
) -> None:
    """By inbox and recency, through the index: without naming the inboxes up front SQLite
    read every conversation there is (165 ms a pass with 50,000, notifications on or off)."""
    path = tmp_path / "plan.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}")
    search = notifications.due_search(utcnow()).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    connection = sqlite3.connect(path)
    try:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {search}")]
    finally:
        connection.close()
    assert "SEARCH conversations USING INDEX ix_conversations_inbox_recent" in "\n".join(plan)
    assert not any(step.startswith("SCAN conversations") for step in plan), plan
