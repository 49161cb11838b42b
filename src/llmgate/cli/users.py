"""``llmgate user ...``: create, list, change role, deactivate, set limits and budgets."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import click
from flask.cli import AppGroup

from ..auth import users as users_service
from ..errors import LLMGateError
from . import limits as limit_options_cli

PASSWORD_ENV = "LLMGATE_PASSWORD"

user = AppGroup("user", help="Manage users.")


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn service errors into one clear line on stderr and a non-zero exit."""
    try:
        yield
    except LLMGateError as error:
        details = "; ".join(f"{field}: {why}" for field, why in error.details.items())
        raise click.ClickException(f"{error.message} ({details})" if details else error.message) from None


def _password_from_env_or_prompt() -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@user.command("create")
@click.argument("email")
@click.option("--admin", "is_admin", is_flag=True, help="Make the user an admin.")
def create(email: str, is_admin: bool) -> None:
    """Create a user. The password comes from $LLMGATE_PASSWORD or a hidden prompt."""
    with domain_errors():
        users_service.normalise_email(email)  # complain before asking for a password
        created = users_service.create_user(email=email, password=_password_from_env_or_prompt(),
                                            role="admin" if is_admin else "member")
    click.echo(f"Created {created.role} {created.email} (id {created.id}).")


@user.command("list")
def list_users() -> None:
    """List every user."""
    rows = users_service.list_users()
    click.echo(f"{'ID':>5}  {'EMAIL':<40} {'ROLE':<7} {'ACTIVE':<6} CREATED")
    for row in rows:
        click.echo(f"{row.id:>5}  {row.email:<40} {row.role:<7} {'yes' if row.active else 'no':<6} {_when(row.created_at)}")


@user.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["admin", "member"]))
def set_role(email: str, role: str) -> None:
    """Make EMAIL an admin or a member."""
    with domain_errors():
        row = users_service.update_user(user=users_service.require_user_by_email(email=email), changes={"role": role})
    click.echo(f"{row.email} is now {row.role}.")


@user.command("deactivate")
@click.argument("email")
def deactivate(email: str) -> None:
    """Deactivate EMAIL: logins, tokens and API keys stop working within a second."""
    with domain_errors():
        row = users_service.deactivate_user(user=users_service.require_user_by_email(email=email))
    click.echo(f"{row.email} is deactivated.")


@user.command("limits")
@click.argument("email")
@limit_options_cli.limit_options
def limits(email: str, **options) -> None:
    """Show or set a user's rate limits and budget (across all their keys and tokens)."""
    with domain_errors():
        limit_options_cli.edit(users_service.require_user_by_email(email=email), options,
                               update=lambda row, changes: users_service.update_user(user=row, changes=changes),
                               title="User {row.email}:")
