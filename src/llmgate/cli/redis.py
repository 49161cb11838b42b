"""``llmgate redis``: the embedded Redis used when LLMGATE_REDIS_URL is unset."""
from __future__ import annotations

import os
from pathlib import Path

import click

from .. import embedded_redis


def _instance_path() -> Path:
    # The same default as create_app; building an app would start the server we want to stop.
    return Path(os.environ.get("LLMGATE_INSTANCE_PATH") or "instance").resolve()


@click.group("redis")
def redis_group() -> None:
    """The embedded Redis server (under the instance folder)."""


@redis_group.command("stop")
def stop() -> None:
    """Stop the embedded Redis (queued jobs and usage events are kept on disk)."""
    if os.environ.get("LLMGATE_REDIS_URL"):
        click.echo("LLMGATE_REDIS_URL is set: there is no embedded Redis to stop.", err=True)
    if embedded_redis.stop(_instance_path()):
        click.echo(f"stopped the embedded Redis in {_instance_path() / 'redis'}")
    else:
        click.echo("the embedded Redis is not running")
