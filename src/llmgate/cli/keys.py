"""``llmgate key ...``: create, list, revoke API keys, set their limits and budgets."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from ..auth import keys as keys_service
from ..auth import users as users_service
from . import limits as limit_options_cli
from .users import domain_errors

key = AppGroup("key", help="Manage API keys.")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@key.command("create")
@click.argument("email")
@click.option("--name", default="", help="A label for the key.")
@click.option("--models", default=None, help="Comma-separated model names the key may use (default: all).")
@click.option("--expires-in", default=None, help="Lifetime such as 30d, 12h, 2w (default: never expires).")
def create(email: str, name: str, models: str | None, expires_in: str | None) -> None:
    """Create a key for EMAIL. The key is printed once, alone on the last line."""
    with domain_errors():
        owner = users_service.require_user_by_email(email=email)
        plaintext, row = keys_service.create_key(user=owner, name=name, models=models, expires_in=expires_in)
    click.echo(f"Created key {row.id} ({row.prefix}…) for {owner.email}. It is shown only now:", err=True)
    click.echo(plaintext)


@key.command("list")
@click.option("--user", "email", default=None, help="Only this user's keys.")
def list_keys(email: str | None) -> None:
    """List keys (prefix only; keys themselves are never stored)."""
    with domain_errors():
        user_id = users_service.require_user_by_email(email=email).id if email else None
        rows = keys_service.list_keys(user_id=user_id)
    click.echo(f"{'ID':>5}  {'PREFIX':<14} {'NAME':<20} {'OWNER':<30} {'CREATED':<16} {'LAST USED':<16} {'EXPIRES':<16} STATUS")
    for row in rows:
        status = "revoked" if row.revoked_at else ("expired" if row.is_expired() else "active")
        click.echo(f"{row.id:>5}  {row.prefix + '…':<14} {row.name[:20]:<20} {row.user.email[:30]:<30} "
                   f"{_when(row.created_at):<16} {_when(row.last_used_at):<16} {_when(row.expires_at):<16} {status}")


@key.command("revoke")
@click.argument("key_id_or_prefix")
def revoke(key_id_or_prefix: str) -> None:
    """Revoke a key by id or shown prefix; refused everywhere within a second."""
    with domain_errors():
        row = keys_service.revoke_key(key=keys_service.find_key(id_or_prefix=key_id_or_prefix))
    click.echo(f"Revoked key {row.id} ({row.prefix}…).")


@key.command("limits")
@click.argument("key_id_or_prefix")
@limit_options_cli.limit_options
def limits(key_id_or_prefix: str, **options) -> None:
    """Show or set a key's rate limits and budget (effective on /v1 within a second)."""
    with domain_errors():
        limit_options_cli.edit(keys_service.find_key(id_or_prefix=key_id_or_prefix), options,
                               update=lambda row, changes: keys_service.update_key(key=row, changes=changes),
                               title="Key {row.id} ({row.prefix}…) of {row.user.email}:")
