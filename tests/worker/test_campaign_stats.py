"""A campaign's reply and opt-out figures count first answers within 24 h of its message, on
SQLite and PostgreSQL alike (the database does the date arithmetic)."""

from __future__ import annotations

from datetime import timedelta

from server.services import campaign_stats
from server.settings import Settings
from server.state import AppState
from store.models import Campaign, CampaignRecipient, Contact, Conversation, Message, utcnow
from tests.support.messaging import seed_world

SENT_AT = utcnow().replace(microsecond=0) - timedelta(days=3)


async def test_replies_and_opt_outs_count_within_24_hours_of_the_campaign_message(
    settings: Settings,
) -> None:
    state = AppState(settings)
    try:
        world = await seed_world(state)
        # (first answer after the campaign message, its opt-out change), per recipient
        answers: list[list[tuple[timedelta, str | None]]] = [
            [(timedelta(hours=23, minutes=59), None), (timedelta(hours=30), "opted_out")],
            [(timedelta(hours=24, minutes=1), None)],  # too late: not a reply of the campaign
            [(timedelta(minutes=5), "opted_out")],
            [],
        ]
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
                        campaign_id=campaign.id,
                        contact_id=contact.id,
                        state="sent",
                        message_id=sent.id,
                    )
                )
                for after, opt_change in replies:
                    session.add(
                        message(conversation, "inbound", SENT_AT + after, opt_change=opt_change)
                    )
                    await session.flush()  # replies get ids in the order they came
        async with state.reading() as session:
            counts = await campaign_stats.counts(session, campaign.id)
        assert (counts["total"], counts["sent"]) == (4, 4)
        assert counts["replied"] == 2  # the first and the third
        assert counts["opt_outs"] == 1  # the third: the first opted out after 30 hours
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
