"""Settings: defaults, the .env file, and one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.settings import describe, load_settings


def test_defaults():
    settings = load_settings({})

    assert settings.mode == "onprem"
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("./data")
    assert settings.resolved_database_url.startswith(
        "sqlite:///"
    ) and settings.resolved_database_url.endswith("data/aisopsflow.db")
    assert settings.embedded_redis and settings.resolved_redis_url.endswith("data/redis.sock")
    assert settings.token_ttl_seconds == 12 * 3600


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AISOPSFLOW_API_PORT", "eighty", "TCP port"),
        ("AISOPSFLOW_API_PORT", "70000", "TCP port"),
        ("AISOPSFLOW_MODE", "cloud", "onprem, saas"),
        ("AISOPSFLOW_DATABASE_URL", "oracle://x", "sqlite:///"),
        ("AISOPSFLOW_REDIS_URL", "memcached://x", "redis://"),
        ("AISOPSFLOW_TOKEN_TTL_SECONDS", "-5", "greater than 0"),
        ("AISOPSFLOW_COOKIE_SECURE", "maybe", "true or false"),
        ("AISOPSFLOW_LOG_LEVEL", "LOUD", "DEBUG"),
        ("AISOPSFLOW_BOOTSTRAP_ADMIN_EMAIL", "not-an-email", "email address"),
        ("AISOPSFLOW_DEFAULT_TENANT_SLUG", "Not A Slug", "slug"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(variable, value, expected):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})

    message = str(caught.value)
    assert message.startswith(variable) and expected in message and "\n" not in message


def test_bootstrap_admin_needs_a_real_password():
    with pytest.raises(SettingsError, match="BOOTSTRAP_ADMIN_PASSWORD"):
        load_settings(
            {
                "AISOPSFLOW_BOOTSTRAP_ADMIN_EMAIL": "a@b.io",
                "AISOPSFLOW_BOOTSTRAP_ADMIN_PASSWORD": "short",
            }
        )


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "aisopsflow.env"
    env_file.write_text('# comment\nAISOPSFLOW_MODE=saas\nexport AISOPSFLOW_API_PORT="9000"\n')

    settings = load_settings({"AISOPSFLOW_ENV_FILE": str(env_file), "AISOPSFLOW_API_PORT": "9100"})

    assert settings.mode == "saas" and settings.api_port == 9100


def test_a_missing_env_file_is_named():
    with pytest.raises(SettingsError, match="no such file"):
        load_settings({"AISOPSFLOW_ENV_FILE": "/nonexistent/aisopsflow.env"})


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).parents[2] / "README.md").read_text()

    for variable, _, _ in describe():
        assert variable in readme, f"{variable} is missing from README.md"
