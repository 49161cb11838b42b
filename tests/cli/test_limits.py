"""``llmgate key limits`` and ``llmgate user limits``: show, set, clear, refuse bad values."""
from llmgate.auth.v1 import authenticate
from llmgate.cli import cli


def _run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_key_limits_show_set_and_clear_reach_the_principal(app, runner, make_user, make_key):
    user = make_user("limited@example.com")
    plaintext, row = make_key(user)
    shown = _run(runner, "key", "limits", str(row.id))
    assert shown.exit_code == 0 and "rpm              -" in shown.output

    changed = _run(runner, "key", "limits", row.prefix, "--rpm", "60", "--budget-usd", "2.5",
                   "--budget-period", "day", "--budget-soft-usd", "2")
    assert changed.exit_code == 0, changed.output
    assert "rpm              60" in changed.output and "budget_period    day" in changed.output
    with app.test_request_context(headers={"Authorization": f"Bearer {plaintext}"}):
        from flask import request

        principal = authenticate(request)
    assert principal.key_limits.rpm == 60 and principal.key_budget.limit_usd == 2.5
    assert principal.key_budget.period == "day" and principal.key_budget.soft_limit_usd == 2.0

    cleared = _run(runner, "key", "limits", str(row.id), "--rpm", "none")
    assert "rpm              -" in cleared.output and "budget_usd       2.5" in cleared.output  # others kept


def test_user_limits_and_bad_values(runner, make_user):
    make_user("team@example.com")
    changed = _run(runner, "user", "limits", "team@example.com", "--tpm", "1000", "--max-concurrency", "4")
    assert changed.exit_code == 0 and "tpm              1000" in changed.output
    assert "max_concurrency  4" in changed.output

    bad = runner.invoke(cli, ["user", "limits", "team@example.com", "--rpm", "0"])
    assert bad.exit_code != 0 and "rpm: must be a positive integer" in bad.output
    soft_over_hard = runner.invoke(cli, ["user", "limits", "team@example.com", "--budget-usd", "1",
                                         "--budget-soft-usd", "5"])
    assert soft_over_hard.exit_code != 0 and "budget_soft_usd: must not exceed budget_usd" in soft_over_hard.output
    unknown = runner.invoke(cli, ["user", "limits", "nobody@example.com"])
    assert unknown.exit_code != 0 and "No user with email nobody@example.com" in unknown.output
