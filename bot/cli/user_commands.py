"""`playbot users`: add people, list them, change their role, deactivate and reactivate them.

Every change is audited (user None, details `{"via": "cli", "os_user": ...}`); bad input
is refused on stderr with exit code 2 and nothing written.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.changes import activation_line, change, emit_rows, origin
from core import users

app = typer.Typer(no_args_is_help=True, help="People who may use Playbot, and their roles.")

ROLES = "{viewer|operator|admin}"
ROLE_HELP = "viewer (reads), operator (also runs playbooks, handles tickets) or admin (everything)."


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Playbot username, e.g. alice.")],
    slack_id: Annotated[str, typer.Option("--slack-id", help="Slack member id, e.g. U0123ABCD.")],
    role: Annotated[str, typer.Option("--role", metavar=ROLES, help=ROLE_HELP)],
    email: Annotated[str | None, typer.Option("--email", help="Email address (optional).")] = None,
) -> None:
    """Add a user who can use Playbot from Slack."""
    with change() as session:
        user = users.add_user(session, username, slack_user_id=slack_id, role=role, email=email,
                              origin=origin())
        typer.echo(f"Added {user.username} ({user.role.value}, Slack {user.slack_user_id}).")


@app.command("list")
def list_(
    role: Annotated[str | None, typer.Option("--role", metavar=ROLES, help="Only this role.")] = None,
    active_only: Annotated[bool, typer.Option("--active-only", help="Hide deactivated users.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List users with their role, Slack id and state."""
    with change() as session:
        found = users.list_users(session, role=role, active_only=active_only)
        rows = [{"username": u.username, "role": u.role.value, "slack_user_id": u.slack_user_id,
                 "email": u.email, "active": u.is_active,
                 "last_login": u.last_login.isoformat(timespec="seconds") if u.last_login else None}
                for u in found]
    emit_rows(rows, as_json=as_json,
              empty="No users. Add one: playbot users add USERNAME --slack-id ID --role ROLE",
              headers=["username", "role", "slack id", "email", "active", "last login"],
              cells=[[r["username"], r["role"], r["slack_user_id"] or "-", r["email"] or "-",
                      "yes" if r["active"] else "no", r["last_login"] or "never"]
                     for r in rows])


@app.command("set-role")
def set_role(
    username: Annotated[str, typer.Argument(help="The user.")],
    role: Annotated[str, typer.Argument(metavar="ROLE", help=ROLE_HELP)],
) -> None:
    """Change a user's role."""
    with change() as session:
        before = users.get_user(session, username).role
        user = users.set_role(session, username, role, origin=origin())
        if user.role == before:
            typer.echo(f"{user.username} is already {user.role.value}; nothing changed.")
        else:
            typer.echo(f"{user.username}: {before.value} → {user.role.value}.")


@app.command("deactivate")
def deactivate(username: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Turn a user off: Playbot refuses them from now on (their history stays)."""
    _set_active(username, active=False)


@app.command("activate")
def activate(username: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Turn a deactivated user back on."""
    _set_active(username, active=True)


def _set_active(username: str, *, active: bool) -> None:
    """Turn the user on or off (the core audits a change) and say what changed, if anything."""
    switch = users.activate_user if active else users.deactivate_user
    with change() as session:
        was_active = users.get_user(session, username).is_active
        user = switch(session, username, origin=origin())
        role = f" ({user.role.value})" if active else ""
        typer.echo(activation_line(user.username, was_active=was_active, active=active,
                                   detail=role))
