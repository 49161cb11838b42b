"""``llmgate setup``: the first admin and API key for a new installation (idempotent)."""
from __future__ import annotations

import secrets

import click
from flask import current_app
from flask.cli import with_appcontext

from ..auth import keys as keys_service
from ..auth import users as users_service
from .users import domain_errors

DEFAULT_EMAIL = "admin@localhost"


def _first_model_name() -> str:
    try:
        from ..gateway.catalog import get_catalog

        names = list(get_catalog().names())
        return names[0] if names else "gpt-4o-mini"
    except Exception:  # no models.yaml yet, or the gateway is not installed: any example will do
        return "gpt-4o-mini"


@click.command("setup")
@click.option("--email", default=DEFAULT_EMAIL, show_default=True, help="The first admin's email.")
@with_appcontext
def setup(email: str) -> None:
    """Create the first admin and API key when there are no users yet; otherwise do nothing."""
    if users_service.count_users() > 0:
        click.echo("llmgate already has users; setup has nothing to do.")
        return
    password = secrets.token_urlsafe(18)
    with domain_errors():
        admin = users_service.create_user(email=email, password=password, role="admin")
        plaintext, _ = keys_service.create_key(user=admin, name="first key")
    base_url = f"http://{current_app.config.get('BIND', '127.0.0.1:8000')}"
    model = _first_model_name()
    click.echo(f"""
Created the first admin. These are shown only once — store them now.

  email:     {admin.email}
  password:  {password}
  API key:   {plaintext}

Try it:

  curl {base_url}/v1/chat/completions \\
    -H "Authorization: Bearer {plaintext}" -H "Content-Type: application/json" \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  from openai import OpenAI
  client = OpenAI(base_url="{base_url}/v1", api_key="{plaintext}")
  print(client.chat.completions.create(model="{model}",
        messages=[{{"role": "user", "content": "Hello"}}]).choices[0].message.content)

Log in at {base_url}/docs (POST /api/auth/login) or the dashboard with the email and password.
""")
