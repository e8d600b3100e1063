"""Configuration: YAML + environment overrides, validated with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli import main
from bastion.config import EmbeddedModel, LocalEmbeddingModel, UpstreamModel, load_settings
from bastion.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(text)
    return path


def test_no_config_serves_embedded_models_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert isinstance(settings.model("smollm2"), EmbeddedModel)
    assert isinstance(settings.model("minilm"), LocalEmbeddingModel)


def test_yaml_with_env_interpolation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {port: 9000}
models:
  - name: gpt
    backend: openai
    base_url: ${UPSTREAM:-http://127.0.0.1:1/v1}
    api_key_env: OPENAI_API_KEY
""",
    )
    settings = load_settings(path, env={"UPSTREAM": "http://10.0.0.9:8000/v1"})
    model = settings.model("gpt")
    assert isinstance(model, UpstreamModel)
    assert model.base_url == "http://10.0.0.9:8000/v1"
    assert settings.server.port == 9000
    assert load_settings(path, env={}).model("gpt").base_url == "http://127.0.0.1:1/v1"  # type: ignore[union-attr]


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 9100}\n")
    assert load_settings(env={"BASTION_CONFIG": str(path)}).server.port == 9100


def test_env_overrides_win_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 9000, max_body_bytes: 2048}\n")
    env = {"BASTION_PORT": "9001", "BASTION_SERVER__MAX_BODY_BYTES": "4096", "BASTION_MASTER_KEY": "9081726354657483921"}
    settings = load_settings(path, env=env)
    assert settings.server.port == 9001
    assert settings.server.max_body_bytes == 4096
    assert settings.server.master_key is not None
    assert settings.server.master_key.get_secret_value() == "9081726354657483921"  # a string, not an int


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("server: {port: many}\n", {}, "server.port"),
        ("server: {prot: 80}\n", {}, "server.prot"),
        ("models:\n  - {name: x, backend: openai}\n", {}, "models[0].openai.base_url"),
        ("models:\n  - {name: x}\n", {}, "models[0]"),
        ("models:\n  - {name: x, backend: llama_cpp, sha256: abc}\n", {}, "models[0].llama_cpp.sha256"),
        ("server: {port: 80}\n", {"BASTION_SERVER__PORT": "99999"}, "server.port"),
    ],
)
def test_errors_name_the_bad_key(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=env)
    assert expected in str(info.value)


def test_binding_beyond_loopback_requires_a_key(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {host: 0.0.0.0}\n")
    with pytest.raises(ConfigError, match="requires authentication"):
        load_settings(path, env={})
    assert load_settings(path, env={"BASTION_MASTER_KEY": "sk-" + "k7Qz" * 5}).server.host == "0.0.0.0"


def test_duplicate_model_names_rejected(tmp_path: Path) -> None:
    text = "models:\n  - {name: a, backend: llama_cpp}\n  - {name: a, backend: local_embedding}\n"
    with pytest.raises(ConfigError, match="duplicate model names: a"):
        load_settings(write(tmp_path, text), env={})


def test_missing_interpolated_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {name: a, backend: openai, base_url: '${NOPE}'}\n")
    with pytest.raises(ConfigError, match="NOPE"):
        load_settings(path, env={})


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "server: [unclosed\n"), env={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a list\n"), env={})


def test_cli_config_check(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, "server: {port: 9000}\n")
    result = runner.invoke(main, ["config", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output and "smollm2" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: nope}\n")
    result = runner.invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "server.port" in result.output


def test_cli_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "serve" in result.output and "config" in result.output


def test_configuration_reference_doc_is_current() -> None:
    from bastion.config_reference import render

    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == render(), "run: bastion config reference > docs/configuration.md"


def test_readme_config_examples_are_valid(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        # raises ConfigError naming the key if an example rots (the TLS files an example
        # names need not exist here)
        load_settings(path, env={}, check_files=False)
