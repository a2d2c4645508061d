"""Reserved for the clocks/housekeeping work (issue 14): e.g. jobs.archived_at keeping the outcome.

PLACEHOLDER: no schema change yet. Keeps the revision chain linear while this work is built.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
