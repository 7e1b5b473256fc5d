"""``dijk admin hash-password``: the password hash for a dashboard user (``admin.users``)."""

from __future__ import annotations

import getpass
import sys

import typer

from dijk.auth.passwords import hash_password

admin_app = typer.Typer(
    help="Helpers for the admin listener and the dashboard.", no_args_is_help=True
)


@admin_app.command("hash-password")
def hash_password_command() -> None:
    """Read a password (without echo on a terminal; one line from a pipe) and print its
    scrypt hash for ``admin.users[].password_hash``. The password is never printed."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Again: ")
        if password != again:
            typer.echo("error: the passwords differ", err=True)
            raise typer.Exit(2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        typer.echo(hash_password(password))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
