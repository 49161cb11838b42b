"""``llmgate models check`` and ``llmgate models list``: no server, exit codes that scripts can use."""
from __future__ import annotations

from click.testing import CliRunner

from llmgate.cli.models import models

GOOD = """
models:
  - {name: a, provider: openai, model: up-a, api_key: sk-1, fallbacks: [b]}
  - {name: a, provider: openai, model: up-a2, api_key: sk-2}
  - {name: b, provider: anthropic, model: up-b, api_key: env:LLMGATE_TEST_CLI_KEY}
"""


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(models, list(args), env=env or {})


def test_check_ok(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(GOOD)
    result = run("check", str(path), env={"LLMGATE_TEST_CLI_KEY": "x"})
    assert result.exit_code == 0, result.output
    assert "OK, 2 models, 3 deployments" in result.output


def test_check_reports_every_problem_with_entry_and_field(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: a, provider: nope, model: m}\n  - {name: b, provider: openai}\n")
    result = run("check", str(path))
    assert result.exit_code == 1
    assert "models[0] ('a'): provider: unknown provider 'nope'" in result.output
    assert "models[1] ('b'): 'model' is required" in result.output


def test_check_unset_env_key_fails_unless_allowed(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(GOOD)
    result = run("check", str(path), env={"LLMGATE_TEST_CLI_KEY": ""})
    assert result.exit_code == 1
    assert "models[2] ('b'): api_key: environment variable LLMGATE_TEST_CLI_KEY is not set" in result.output
    assert run("check", "--allow-missing-env", str(path), env={"LLMGATE_TEST_CLI_KEY": ""}).exit_code == 0


def test_check_defaults_to_llmgate_models_file(tmp_path):
    path = tmp_path / "elsewhere.yaml"
    path.write_text(GOOD)
    result = run("check", "--allow-missing-env", env={"LLMGATE_MODELS_FILE": str(path)})
    assert result.exit_code == 0 and str(path) in result.output
    assert run("check", str(tmp_path / "absent.yaml")).exit_code == 1


def test_list(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(GOOD)
    result = run("list", str(path), env={"LLMGATE_TEST_CLI_KEY": ""})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "DEPLOYMENT", "PROVIDER", "UPSTREAM", "MODEL", "KEY", "FALLBACKS"]
    assert lines[1].split() == ["a", "a#0", "openai", "up-a", "set", "b"]
    assert lines[3].split() == ["b", "b#0", "anthropic", "up-b", "missing", "$LLMGATE_TEST_CLI_KEY", "-"]


def test_registered_on_the_llmgate_command():
    from llmgate.cli import cli

    assert "models" in cli.commands


def test_example_file_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "models.example.yaml"
    result = run("check", "--allow-missing-env", str(example))
    assert result.exit_code == 0, result.output
