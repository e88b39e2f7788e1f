"""`switchboard demo`: a demo team, two inboxes with their numbers, and a dozen threads.

The sign-ins are printed with their (well-known) passwords; running it again changes nothing.
Messages go through the domain's `record_message`, so conversations, unread state and the event
outbox look exactly as if the texts had come in through Twilio.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.passwords import hash_password
from server.services.contacts import find_or_create_contact
from server.services.conversations import get_or_create_conversation, record_message
from server.services.optout import set_opt_out
from server.settings import Settings
from server.state import AppState
from store.models import (
    Inbox,
    InboxMember,
    Message,
    MessagingService,
    PhoneNumber,
    User,
    utcnow,
)

ADMIN = ("admin@demo.switchboard.test", "demo-admin-pass", "Ada Admin")
STAFF = [
    ("sam@demo.switchboard.test", "demo-staff-pass", "Sam Staff", ("Admissions",)),
    ("fran@demo.switchboard.test", "demo-staff-pass", "Fran Finance", ("Financial Aid",)),
]
INBOX_NUMBERS = {"Admissions": "+16175550101", "Financial Aid": "+16175550102"}
BLAST_NUMBER = "+16175550199"

# (first, last, inbox, [(minutes ago, "in"|"out", body), …]); an empty last line = read.
THREADS: list[tuple[str, str, str, list[tuple[int, str, str]]]] = [
    (
        "Maya",
        "Lopez",
        "Admissions",
        [
            (3000, "in", "Hi! Is the application deadline Jan 15?"),
            (2990, "out", "Yes, January 15 at 11:59pm ET."),
            (2980, "in", "Thank you!"),
        ],
    ),
    ("Jordan", "Kim", "Admissions", [(600, "in", "Can I still send my transcript by mail?")]),
    (
        "Priya",
        "Shah",
        "Admissions",
        [
            (1500, "out", "Your interview is confirmed for Tuesday."),
            (1400, "in", "Great, see you then"),
        ],
    ),
    (
        "Diego",
        "Ramos",
        "Admissions",
        [(90, "in", "What time does the campus tour start?"), (80, "in", "And where do we meet?")],
    ),
    ("Alex", "Chen", "Admissions", [(4000, "in", "STOP")]),
    ("Noor", "Haddad", "Admissions", [(45, "in", "Is there an application fee waiver?")]),
    (
        "Sofia",
        "Rossi",
        "Financial Aid",
        [
            (2000, "in", "When will my aid package arrive?"),
            (1990, "out", "Packages go out the first week of April."),
        ],
    ),
    ("Liam", "O'Brien", "Financial Aid", [(300, "in", "I uploaded my FAFSA, did you get it?")]),
    (
        "Emma",
        "Novak",
        "Financial Aid",
        [
            (700, "out", "Reminder: verification documents due Friday."),
            (650, "in", "Which documents exactly?"),
        ],
    ),
    ("Kwame", "Mensah", "Financial Aid", [(20, "in", "Can I appeal my award?")]),
    (
        "Hana",
        "Sato",
        "Admissions",
        [
            (5000, "in", "Do you accept the IB diploma?"),
            (4990, "out", "We do! Send your predicted grades."),
        ],
    ),
    ("Omar", "Farouk", "Financial Aid", [(10, "in", "<b>Urgent</b>: my loan shows twice")]),
]


def _sid(prefix: str, name: str) -> str:
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:32]


async def _user(session: AsyncSession, email: str, password: str, name: str, role: str) -> User:
    user = User(email=email, password_hash=hash_password(password), name=name, role=role)
    session.add(user)
    await session.flush()
    return user


async def _seed(session: AsyncSession) -> None:
    await _user(session, ADMIN[0], ADMIN[1], ADMIN[2], "admin")
    one_to_one = MessagingService(
        name="Office 1:1", sid=_sid("MG", "demo-1to1"), purpose="one_to_one"
    )
    blast = MessagingService(name="Campaigns", sid=_sid("MG", "demo-blast"), purpose="blast")
    session.add_all([one_to_one, blast])
    await session.flush()
    inboxes: dict[str, Inbox] = {}
    for name, number in INBOX_NUMBERS.items():
        inboxes[name] = Inbox(name=name)
        session.add(inboxes[name])
        await session.flush()
        session.add(
            PhoneNumber(
                number=number,
                sid=_sid("PN", number),
                messaging_service_id=one_to_one.id,
                inbox_id=inboxes[name].id,
            )
        )
    session.add(
        PhoneNumber(
            number=BLAST_NUMBER, sid=_sid("PN", BLAST_NUMBER), messaging_service_id=blast.id
        )
    )
    for email, password, name, member_of in STAFF:
        user = await _user(session, email, password, name, "staff")
        for inbox_name in member_of:
            session.add(InboxMember(inbox_id=inboxes[inbox_name].id, user_id=user.id))
    await session.flush()

    now = utcnow()
    for n, (first, last, inbox_name, lines) in enumerate(THREADS):
        contact = await find_or_create_contact(session, f"+1617555{1000 + n:04d}")
        contact.first_name, contact.last_name = first, last
        contact.email = f"{first.lower()}.{last.lower().replace(chr(39), '')}@example.test"
        contact.fields = {"program": "Undergraduate" if n % 2 else "Graduate"}
        inbox = inboxes[inbox_name]
        ours = INBOX_NUMBERS[inbox_name]
        conversation = await get_or_create_conversation(session, inbox.id, contact.id)
        for minutes, direction, body in lines:
            at = now - timedelta(minutes=minutes)
            inbound = direction == "in"
            message = Message(
                direction="inbound" if inbound else "outbound",
                tag="inbound" if inbound else "quick",
                body=body,
                status="received" if inbound else "delivered",
                from_number=contact.phone if inbound else ours,
                to_number=ours if inbound else contact.phone,
                twilio_sid=_sid("SM", f"{contact.phone}{minutes}{body}"),
                messaging_service_id=one_to_one.id,
                created_at=at,
                updated_at=at,
            )
            if inbound and body == "STOP":
                message.opt_change = "opted_out"
            await record_message(session, conversation, message)
            if message.opt_change:
                await set_opt_out(
                    session,
                    messaging_service_id=one_to_one.id,
                    phone=contact.phone,
                    opted_out=True,
                    source="keyword",
                    message_id=message.id,
                )


def _summary(settings: Settings, fresh: bool) -> str:
    head = "Demo data created." if fresh else "Demo data is already there; nothing changed."
    lines = [
        head,
        f"Open {settings.public_base}/ and sign in as:",
        f"  admin  {ADMIN[0]}  password: {ADMIN[1]}",
    ]
    for email, password, _name, member_of in STAFF:
        lines.append(f"  staff  {email}  password: {password}  (inbox: {', '.join(member_of)})")
    lines.append(
        "Inbox numbers: "
        + ", ".join(f"{name} {number}" for name, number in INBOX_NUMBERS.items())
        + f"; blast number {BLAST_NUMBER} (service 'Campaigns')."
    )
    return "\n".join(lines)


async def seed(settings: Settings) -> str:
    """Seed the demo data into the (migrated) database of `settings`; what to tell the user."""
    state = AppState(settings)
    try:
        async with state.transaction() as session:
            exists = await session.scalar(select(User.id).where(User.email == ADMIN[0]))
            if exists is None:
                await _seed(session)
        return _summary(settings, fresh=exists is None)
    finally:
        await state.close()
