"""``llmgate key ...`` through click's runner."""
from __future__ import annotations

from flask import request
from flask.cli import ScriptInfo

from llmgate.auth import v1
from llmgate.cli import cli


def invoke(runner, app, args):
    return runner.invoke(cli, args, obj=ScriptInfo(create_app=lambda: app))


def test_create_prints_the_key_alone_on_the_last_line(app, runner, member):
    result = invoke(runner, app, ["key", "create", member.email, "--name", "ci", "--models", "a,b", "--expires-in", "30d"])
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip().splitlines()[-1]
    assert plaintext.startswith("sk-lg-") and " " not in plaintext
    with app.test_request_context(headers={"x-api-key": plaintext}):
        principal = v1.authenticate(request)
    assert principal.user_id == member.id and principal.allowed_models == frozenset({"a", "b"})


def test_list_and_revoke_by_id_and_prefix(app, runner, member, make_key):
    first, key1 = make_key(member, name="one")
    _, key2 = make_key(member, name="two")
    listed = invoke(runner, app, ["key", "list", "--user", member.email])
    assert key1.prefix in listed.output and key2.prefix in listed.output and first not in listed.output
    assert invoke(runner, app, ["key", "revoke", str(key1.id)]).exit_code == 0
    assert invoke(runner, app, ["key", "revoke", key2.prefix]).exit_code == 0
    assert invoke(runner, app, ["key", "list"]).output.count("revoked") == 2


def test_errors(app, runner, member):
    assert "No user" in invoke(runner, app, ["key", "create", "ghost@example.com"]).output
    bad = invoke(runner, app, ["key", "create", member.email, "--expires-in", "soon"])
    assert bad.exit_code != 0 and "expires_in" in bad.output
    missing = invoke(runner, app, ["key", "revoke", "sk-lg-nothing"])
    assert missing.exit_code != 0 and "No API key" in missing.output
