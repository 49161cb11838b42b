"""The embedded Redis: started on demand, shared, stopped by ``llmgate redis stop``."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from llmgate import embedded_redis
from llmgate.cli import cli


@pytest.mark.once
def test_redis_stop_command_stops_the_embedded_server(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMGATE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("LLMGATE_REDIS_URL", raising=False)
    url = embedded_redis.ensure_running(tmp_path)
    assert url == f"unix://{tmp_path / 'redis' / 'redis.sock'}"
    assert embedded_redis.ensure_running(tmp_path) == url  # a second caller shares it
    result = CliRunner().invoke(cli, ["redis", "stop"])
    assert result.exit_code == 0 and "stopped" in result.output
    assert not embedded_redis.stop(tmp_path)
    again = CliRunner().invoke(cli, ["redis", "stop"])
    assert again.exit_code == 0 and "not running" in again.output
