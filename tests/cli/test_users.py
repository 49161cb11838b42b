"""``llmgate user ...`` through click's runner."""
from __future__ import annotations

from llmgate.auth import users
from llmgate.cli import cli
from llmgate.extensions import db


def invoke(runner, app, args, **kwargs):
    return runner.invoke(cli, args, obj=_script_info(app), **kwargs)


def _script_info(app):
    from flask.cli import ScriptInfo

    return ScriptInfo(create_app=lambda: app)


def test_create_with_password_from_env(app, runner):
    result = invoke(runner, app, ["user", "create", "Eve@Example.com", "--admin"], env={"LLMGATE_PASSWORD": "pw-Secret-123"})
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = users.get_user_by_email(email="eve@example.com")
        assert user.role == "admin"
        assert "pw-Secret-123" not in user.password_hash


def test_create_prompts_for_password_with_confirmation(app, runner):
    result = invoke(runner, app, ["user", "create", "frank@example.com"], input="pw-Secret-123\npw-Secret-123\n",
                    env={"LLMGATE_PASSWORD": ""})
    assert result.exit_code == 0, result.output
    assert "pw-Secret-123" not in result.output
    with app.app_context():
        assert users.get_user_by_email(email="frank@example.com").role == "member"


def test_errors_are_one_line_and_non_zero(app, runner, member):
    duplicate = invoke(runner, app, ["user", "create", member.email], env={"LLMGATE_PASSWORD": "pw-Secret-123"})
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = invoke(runner, app, ["user", "create", "g@example.com"], env={"LLMGATE_PASSWORD": "short"})
    assert short.exit_code != 0 and "too short" in short.output
    bad_email = invoke(runner, app, ["user", "create", "nope"], env={"LLMGATE_PASSWORD": "pw-Secret-123"})
    assert bad_email.exit_code != 0 and "Invalid email" in bad_email.output
    unknown = invoke(runner, app, ["user", "deactivate", "ghost@example.com"])
    assert unknown.exit_code != 0 and "No user" in unknown.output
    bad_role = invoke(runner, app, ["user", "set-role", member.email, "owner"])
    assert bad_role.exit_code == 2


def test_list_set_role_deactivate(app, runner, admin, member):
    listed = invoke(runner, app, ["user", "list"])
    assert admin.email in listed.output and member.email in listed.output
    assert invoke(runner, app, ["user", "set-role", member.email, "admin"]).exit_code == 0
    assert invoke(runner, app, ["user", "deactivate", "MEMBER@example.com"]).exit_code == 0
    with app.app_context():
        row = users.get_user_by_email(email=member.email)
        assert row.role == "admin" and row.active is False
        db.session.remove()
