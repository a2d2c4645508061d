"""`playbot tokens`: make, list and revoke a user's personal API tokens.

A new token is printed once, on stdout, and never again: only its SHA-256 is stored. Every
change is audited (user None, details `{"via": "cli", "os_user": ...}`, the token's name and
prefix, never the token); bad input is refused on stderr with exit code 2, nothing written.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.changes import change, emit_rows, origin
from core import api_tokens, users

app = typer.Typer(no_args_is_help=True,
                  help="Personal API tokens (for /api/ and the live log page).")


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="The user the token acts as.")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="30d, 12h, 2w, a date (2027-01-31) or never (the default).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="What the token is for, e.g. ci-deploy (default token-N).")] = None,
) -> None:
    """Make an API token for USER; it is shown once."""
    with change() as session:
        user = users.get_user(session, username)
        made = api_tokens.create(session, user, name=name,
                                 expires_at=api_tokens.parse_expiry(expires), origin=origin())
        token, secret = made.token, made.secret
        until = token.expires_at.isoformat(timespec="seconds") if token.expires_at else "never"
    typer.echo(secret)
    typer.echo(f"Token {token.name} for {user.username} ({user.role.value}), expires {until}. "
               "It is shown only this once: store it now.", err=True)


@app.command("list")
def list_(
    username: Annotated[str, typer.Argument(help="The user.")],
    all_: Annotated[bool, typer.Option("--all", help="Revoked tokens too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List USER's tokens (names, prefixes, state, last use; never the tokens)."""
    with change() as session:
        user = users.get_user(session, username)
        rows = [api_tokens.describe(t)
                for t in api_tokens.list_tokens(session, user, include_revoked=all_)]
    emit_rows(rows, as_json=as_json,
              empty=f"{username} has no tokens. Make one: playbot tokens add {username}",
              headers=["name", "prefix", "state", "created", "expires", "last used"],
              cells=[[r["name"], f"{r['prefix']}…", r["state"], r["created_at"],
                      r["expires_at"] or "never", r["last_used_at"] or "never"] for r in rows])


@app.command("revoke")
def revoke(
    username: Annotated[str, typer.Argument(help="The user.")],
    token: Annotated[str, typer.Argument(help="The token's name or prefix.")],
) -> None:
    """Revoke one of USER's tokens: it stops working at once."""
    with change() as session:
        user = users.get_user(session, username)
        revoked = api_tokens.revoke(session, user, token, origin=origin())
        typer.echo(f"Revoked {revoked.name} ({revoked.prefix}…) of {user.username}.")
