"""Who closed a ticket, and when: `tickets.closed_at`, `tickets.closed_by` (users, SET NULL).

A closed ticket's card says "Closed <when> by <whom>" as a resolved one names its resolver.
Tickets closed before this revision keep both NULL (their `ticket.close` audit rows say it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("closed_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("closed_by", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_tickets_closed_by_users", "users", ["closed_by"], ["id"],
                                 ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_closed_by_users", type_="foreignkey")
        batch.drop_column("closed_by")
        batch.drop_column("closed_at")
