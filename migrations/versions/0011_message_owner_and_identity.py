"""Reserved for the one-writer job message and the install's identity (issues 13, 14).

PLACEHOLDER: no schema change yet. Keeps the revision chain linear while this work is built.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
