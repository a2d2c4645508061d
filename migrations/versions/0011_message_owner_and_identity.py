"""The one-writer job message and the install's identity (issues 13, 14).

Message owner (issue 14): two counters on `jobs` that order the drawings of a run's one
Slack message (`core.run_messages`):

- `jobs.state_version`: grows by one with every change of the job's status or cancel
  request, in the UPDATE that makes it; existing jobs start at 1;
- `jobs.message_version`: on a run's first job (lowest id), the run's state version last
  drawn on its message (0: none yet).

Check-safe playbooks (issue 13): `playbooks.check_safe`, what the playbook's sidecar declares
with `check_safe: true` — its check-mode runs are read-only, so a check run on production
needs no approval (docs/roles-and-safety.md). Existing playbooks are not check-safe. (The
install's identity needs no column: it is configured or learned from auth.test at start.)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _upgrade_message_owner()
    _upgrade_check_safe()


def downgrade() -> None:
    _downgrade_check_safe()
    _downgrade_message_owner()


# message owner (issue 14) ----------------------------------------------------------------


def _upgrade_message_owner() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("state_version", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("message_version", sa.Integer(), nullable=False,
                                   server_default="0"))


def _downgrade_message_owner() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("message_version")
        batch.drop_column("state_version")


# check-safe playbooks (issue 13) ---------------------------------------------------------


def _upgrade_check_safe() -> None:
    with op.batch_alter_table("playbooks") as batch:
        batch.add_column(sa.Column("check_safe", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def _downgrade_check_safe() -> None:
    with op.batch_alter_table("playbooks") as batch:
        batch.drop_column("check_safe")
