"""Reserved for pinning engine, charset and collations (issue 14, item 11).

PLACEHOLDER: no schema change yet. Keeps the revision chain linear while this work is built.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
