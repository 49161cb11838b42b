"""``llmgate setup``: first admin and key on an empty database; nothing when users exist."""
from __future__ import annotations

import re

from flask import request
from flask.cli import ScriptInfo

from llmgate.auth import users, v1
from llmgate.cli import cli


def invoke(runner, app, args):
    return runner.invoke(cli, args, obj=ScriptInfo(create_app=lambda: app))


def test_setup_creates_admin_and_key_once(app, runner, login):
    result = invoke(runner, app, ["setup"])
    assert result.exit_code == 0, result.output
    password = re.search(r"password:\s+(\S+)", result.output).group(1)
    key = re.search(r"API key:\s+(sk-lg-\S+)", result.output).group(1)
    assert "curl" in result.output and "OpenAI(" in result.output
    assert login("admin@localhost", password=password)["access_token"]
    with app.test_request_context(headers={"x-api-key": key}):
        assert v1.authenticate(request).is_admin

    again = invoke(runner, app, ["setup"])
    assert again.exit_code == 0 and "already has users" in again.output and "sk-lg-" not in again.output
    with app.app_context():
        assert users.count_users() == 1


def test_setup_with_custom_email(app, runner):
    assert invoke(runner, app, ["setup", "--email", "root@example.com"]).exit_code == 0
    with app.app_context():
        assert users.get_user_by_email(email="root@example.com").role == "admin"


def test_setup_does_nothing_when_users_exist(app, runner, member):
    result = invoke(runner, app, ["setup"])
    assert result.exit_code == 0 and "already has users" in result.output
