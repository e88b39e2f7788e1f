"""A campaign's reply and opt-out figures count first answers within 24 h of its message, on
SQLite and PostgreSQL alike (the database does the date arithmetic)."""

from __future__ import annotations

from datetime import timedelta

from server.services import campaign_stats
from server.settings import Settings
from server.state import AppState
from store.models import Campaign, CampaignRecipient, Contact, Conversation, Message, utcnow
from tests.support.messaging import World, commits_of, events, seed_world, statements_of

SENT_AT = utcnow().replace(microsecond=0) - timedelta(days=3)


async def seed_campaign(
    state: AppState, world: World, answers: list[list[tuple[timedelta, str | None]]]
) -> int:
    """A sent campaign with a recipient per entry of `answers`: (how long after the campaign
    message each of their replies came, its opt-out change)."""
    async with state.transaction() as session:
        campaign = Campaign(
            name="Window", messaging_service_id=world.service_a, body="Hi", status="done"
        )
        session.add(campaign)
        await session.flush()
        for index, replies in enumerate(answers):
            contact = Contact(phone=f"+1617555{3000 + index}")
            session.add(contact)
            await session.flush()
            conversation = Conversation(inbox_id=world.admissions, contact_id=contact.id)
            session.add(conversation)
            await session.flush()
            sent = message(conversation, "outbound", SENT_AT, campaign_id=campaign.id)
            session.add(sent)
            await session.flush()
            session.add(
                CampaignRecipient(
                    campaign_id=campaign.id, contact_id=contact.id, state="sent", message_id=sent.id
                )
            )
            for after, change in replies:
                session.add(message(conversation, "inbound", SENT_AT + after, opt_change=change))
                await session.flush()  # replies get ids in the order they came
        return campaign.id


async def test_replies_and_opt_outs_count_within_24_hours_of_the_campaign_message(
    settings: Settings,
) -> None:
    state = AppState(settings)
    try:
        world = await seed_world(state)
        campaign_id = await seed_campaign(
            state,
            world,
            [
                [(timedelta(hours=23, minutes=59), None), (timedelta(hours=30), "opted_out")],
                [(timedelta(hours=24, minutes=1), None)],  # too late: not a reply to it
                [(timedelta(minutes=5), "opted_out")],  # an opt-out, not a reply
                [(timedelta(minutes=1), "opted_out"), (timedelta(hours=2), None)],
                [],
            ],
        )
        async with state.reading() as session:
            counts = await campaign_stats.counts(session, campaign_id)
        assert (counts["total"], counts["sent"]) == (5, 5)
        assert counts["replied"] == 2  # the first and the fourth
        assert counts["opt_outs"] == 2  # the third and the fourth (the first: after 30 hours)
    finally:
        await state.close()


async def test_progress_is_counted_outside_the_write_transaction(settings: Settings) -> None:
    """Once a second per running campaign: counted inside the write transaction, a campaign of
    50,000 recipients held SQLite's write lock, and every webhook, for some 60 ms."""
    state = AppState(settings)
    try:
        world = await seed_world(state)
        campaign_id = await seed_campaign(state, world, [[(timedelta(minutes=5), None)], []])
        with statements_of(state.engine) as statements, commits_of(state) as commits:
            assert await campaign_stats.publish_if_changed(state, campaign_id)
        assert len(commits) == 1
        written = [statement for conn, statement in statements if conn is commits[0]]
        assert any(statement.startswith("INSERT INTO events") for statement in written)
        assert not any("campaign_recipients" in statement for statement in written), written
        assert not await campaign_stats.publish_if_changed(state, campaign_id)  # unchanged
        [progress] = await events(state, campaign_stats.channel(campaign_id))
        assert progress.data["counts"]["replied"] == 1
    finally:
        await state.close()


def message(conversation: Conversation, direction: str, at: object, **fields: object) -> Message:
    return Message(
        conversation_id=conversation.id,
        direction=direction,
        tag="campaign" if direction == "outbound" else "inbound",
        status="delivered" if direction == "outbound" else "received",
        from_number="+16175550100",
        to_number="+16175550101",
        created_at=at,
        **fields,
    )
