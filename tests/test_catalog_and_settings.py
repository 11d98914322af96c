"""The members catalog, settings, and what `python -m bot` says when it cannot start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.catalog import Catalog, CatalogError
from bot.settings import DEFAULT_MEMBERS_FILE, Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent


def member(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": "Sage",
        "provider": "openai",
        "model": "m",
        "base_url": "https://api.example.org/v1",
        "persona": "You are wise.",
    }
    entry.update(overrides)
    return entry


def test_default_catalog_has_the_founding_cast() -> None:
    catalog = Catalog.load(DEFAULT_MEMBERS_FILE)
    names = [m.name for m in catalog]
    assert names == ["Claude", "DeepSeek", "Gemini", "Llama", "Ollama"]
    assert catalog.coordinator is not None and catalog.coordinator.name == "Claude"
    assert catalog.get("deepseek").role == "the Philosopher"  # type: ignore[union-attr]
    assert catalog.get("gemini").base_url.endswith("/v1beta/openai")  # type: ignore[union-attr]
    claude = catalog.get("Claude")
    assert claude is not None and claude.provider == "anthropic" and claude.temperature is None
    ollama = catalog.get("Ollama")
    assert ollama is not None and ollama.api_key_env is None and ollama.is_available({})


def test_availability_follows_the_key_in_the_environment() -> None:
    spec = Catalog.from_mapping({"member": [member(api_key_env="SAGE_KEY")]}).members[0]
    assert not spec.is_available({})
    assert not spec.is_available({"SAGE_KEY": "  "})
    assert spec.is_available({"SAGE_KEY": "k"}) and spec.api_key({"SAGE_KEY": "k"}) == "k"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"provider": "cohere"}, "provider must be one of"),
        ({"name": "Discord Bot"}, "may not contain 'discord'"),
        ({"name": "x" * 40}, "names are 1-32"),
        ({"provider": "anthropic", "temperature": 0.5}, "rejects `temperature`"),
        ({"temperature": 3}, "temperature must be a number from 0 to 2"),
        ({"base_url": "ftp://x"}, "base_url must be an http"),
        ({"avatar_url": "http://insecure.example/a.png"}, "avatar_url must be an https URL"),
        ({"api_key_env": "lower-case"}, "api_key_env must be an environment variable name"),
        ({"max_output_tokens": 0}, "max_output_tokens must be"),
        ({"price_input_per_mtok": -1}, "price_input_per_mtok must be"),
        ({"flavour": "red"}, "unknown field"),
        ({"colour": "red"}, "colour must be a hex colour"),
        ({"persona": ""}, "non-empty string `persona`"),
    ],
)
def test_bad_members_are_refused_with_the_field_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        Catalog.from_mapping({"member": [member(**overrides)]})


def test_duplicate_names_and_two_coordinators_are_refused() -> None:
    with pytest.raises(CatalogError, match="defined twice"):
        Catalog.from_mapping({"member": [member(), member(name="sage")]})
    with pytest.raises(CatalogError, match="only one member may be the coordinator"):
        Catalog.from_mapping({"member": [member(coordinator=True), member(name="Other", coordinator=True)]})


def test_catalog_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[member]\n")
    with pytest.raises(CatalogError, match="not valid TOML"):
        Catalog.load(bad)


def test_settings_defaults_and_overrides() -> None:
    settings = Settings.from_env({"DISCORD_TOKEN": "t"})
    assert settings.database_url == "sqlite:///council.db"
    assert settings.members_file == DEFAULT_MEMBERS_FILE and settings.provider_timeout == 600
    # A generous total for a whole reply; a hung provider is caught by the first-token and silence limits.
    assert (settings.provider_first_token_timeout, settings.provider_idle_timeout) == (120, 30)
    custom = Settings.from_env(
        {
            "DISCORD_TOKEN": "t",
            "DATABASE_URL": "postgresql://x/y",
            "MEMBERS_FILE": "/tmp/m.toml",
            "PROVIDER_TIMEOUT": "30",
        }
    )
    assert (custom.database_url, str(custom.members_file), custom.provider_timeout) == (
        "postgresql://x/y",
        "/tmp/m.toml",
        30.0,
    )
    with pytest.raises(SettingsError, match="PROVIDER_TIMEOUT"):
        Settings.from_env({"DISCORD_TOKEN": "t", "PROVIDER_TIMEOUT": "soon"})
    limits = Settings.from_env(
        {"DISCORD_TOKEN": "t", "PROVIDER_FIRST_TOKEN_TIMEOUT": "45", "PROVIDER_IDLE_TIMEOUT": "7.5"}
    )
    assert (limits.provider_first_token_timeout, limits.provider_idle_timeout) == (45.0, 7.5)
    for name in ("PROVIDER_TIMEOUT", "PROVIDER_FIRST_TOKEN_TIMEOUT", "PROVIDER_IDLE_TIMEOUT"):
        for bad in ("0", "-3", "nan", "inf", "a minute"):
            with pytest.raises(SettingsError, match=name):
                Settings.from_env({"DISCORD_TOKEN": "t", name: bad})


def run_bot(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_", "MEMBERS_"))}
    # An empty DISCORD_TOKEN in the environment also keeps a developer's own .env from filling it in.
    clean.update({"DISCORD_TOKEN": "", "PYTHONPATH": str(ROOT)}, **env)
    return subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60
    )


def test_missing_token_exits_with_code_2_and_says_what_to_set(tmp_path: Path) -> None:
    result = run_bot(tmp_path)
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr and ".env.example" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "council.db").exists()


def test_bad_catalog_and_database_url_exit_with_code_2(tmp_path: Path) -> None:
    result = run_bot(tmp_path, DISCORD_TOKEN="x", MEMBERS_FILE=str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "missing.toml does not exist" in result.stderr
    result = run_bot(tmp_path, DISCORD_TOKEN="x", DATABASE_URL="mysql://u@h/db")
    assert result.returncode == 2 and "DATABASE_URL must be" in result.stderr
    assert "Traceback" not in result.stderr


def test_convene_limits_come_from_the_environment() -> None:
    settings = Settings.from_env({"DISCORD_TOKEN": "t", "MAX_COUNCILS_PER_USER": "3", "MAX_CONVENES_PER_HOUR": "9"})
    assert (settings.max_councils_per_user, settings.max_councils_per_server, settings.max_convenes_per_hour) == (
        3,
        10,
        9,
    )
    with pytest.raises(SettingsError, match="MAX_COUNCILS_PER_SERVER must be a whole number"):
        Settings.from_env({"DISCORD_TOKEN": "t", "MAX_COUNCILS_PER_SERVER": "0"})


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    source = (ROOT / "bot" / "settings.py").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source)) - {"INFO"}  # a default value, not a name
    assert read, "no settings found"
    assert {name for name in read if f"{name}=" not in example} == set()
