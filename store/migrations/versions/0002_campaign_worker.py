"""campaign send slots and sender; one notification per quiet period

Revision ID: 0002_campaign_worker
Revises: 0001
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_campaign_worker"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_number", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_notifications_conversation_id"), ["conversation_id", "message_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_notifications_conversation_id"), type_="unique")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("next_slot_at")
        batch_op.drop_column("from_number")
