"""Reserved for job templates and schedules (issue 16).

PLACEHOLDER: no schema change yet. Keeps the revision chain linear while this work is built.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
