"""The ``llmgate`` command: a Flask CLI group over ``create_app``.

Flask supplies ``run``, ``routes``, ``shell`` and Flask-Migrate supplies ``db``; each feature
adds its own group (``user``, ``key``, ``models``, ``batch``, ``usage``) from a module here.
Errors are one clear line on stderr and a non-zero exit.
"""
from __future__ import annotations

import click
from flask.cli import FlaskGroup


def _create_app():
    from .. import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False, load_dotenv=True,
             set_debug_flag=False, help="llmgate: an LLM gateway and batch service.")
@click.version_option(package_name="llmgate", message="%(prog)s %(version)s")
def cli() -> None:
    pass


def _register_commands() -> None:
    from . import commands

    for command in commands.all_commands():
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="llmgate")
