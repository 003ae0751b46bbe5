"""Settings: defaults, the one-line error for each bad value, and the kept secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server.settings import ENV_NAMES, Settings, SettingsError, load_settings
from tests.support import run_cli


def load(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"ROOMCAST_DATA_DIR": str(tmp_path), **env}, env_file=None)


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.embedded
    assert settings.redis_prefix == "roomcast"
    assert (settings.ask_per_minute, settings.vote_per_minute, settings.join_per_minute) == (5, 60, 600)
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.allowed_origins == ()
    assert settings.google_auth_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert settings.microsoft_graph_url == "https://graph.microsoft.com/v1.0"
    assert settings.google_client_id is None
    assert settings.write_delay_ms == 20


def test_values_are_read(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        DATABASE_URL="postgresql://u@db:5432/x",
        REDIS_URL="redis://cache:6379/1",
        ROOMCAST_ALLOWED_ORIGINS="https://a.example, https://b.example/",
        ROOMCAST_ASK_PER_MINUTE="7",
        ROOMCAST_REDIS_PREFIX="rc-staging",
        ROOMCAST_WRITE_DELAY_MS="0",
    )
    assert not settings.embedded
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.ask_per_minute == 7
    assert settings.redis_prefix == "rc-staging"
    assert settings.write_delay_ms == 0, "0 turns write coalescing off"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ROOMCAST_ASK_PER_MINUTE", "lots", "ROOMCAST_ASK_PER_MINUTE=lots: expected a positive integer"),
        ("ROOMCAST_VOTE_PER_MINUTE", "0", "ROOMCAST_VOTE_PER_MINUTE=0: expected a positive integer"),
        ("ROOMCAST_JOIN_PER_MINUTE", "-3", "ROOMCAST_JOIN_PER_MINUTE=-3: expected a positive integer"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL=mysql://x/y: expected a URL starting with postgres://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL=localhost:6379: expected a URL starting with redis://"),
        ("ROOMCAST_PUBLIC_URL", "example.com", "ROOMCAST_PUBLIC_URL=example.com: expected a URL starting with http://"),
        ("ROOMCAST_ALLOWED_ORIGINS", "example.com", "ROOMCAST_ALLOWED_ORIGINS=example.com: expected comma-separated"),
        ("ROOMCAST_REDIS_PREFIX", "a b", "ROOMCAST_REDIS_PREFIX=a b: expected letters"),
        ("ROOMCAST_HEARTBEAT_S", "1.5", "ROOMCAST_HEARTBEAT_S=1.5: expected a positive integer"),
        ("ROOMCAST_WRITE_DELAY_MS", "1001", "ROOMCAST_WRITE_DELAY_MS=1001: expected milliseconds from 0 to 1000"),
        ("ROOMCAST_WRITE_DELAY_MS", "-1", "ROOMCAST_WRITE_DELAY_MS=-1: expected milliseconds from 0 to 1000"),
        ("ROOMCAST_LOG_LEVEL", "loud", "ROOMCAST_LOG_LEVEL=loud: expected one of"),
    ],
)
def test_bad_value_names_the_variable(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load(tmp_path, **{variable: value})
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)


def test_bad_value_stops_the_command_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "migrate", env={"PATH": "/usr/bin:/bin", "ROOMCAST_DATA_DIR": str(tmp_path), "ROOMCAST_ASK_PER_MINUTE": "lots"}
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "roomcast: ROOMCAST_ASK_PER_MINUTE=lots: expected a positive integer"
    assert "Traceback" not in result.stderr


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load(tmp_path).secret_key
    second = load(tmp_path).secret_key
    assert first == second
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert load(tmp_path, ROOMCAST_SECRET_KEY="given").secret_key == "given"


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ROOMCAST_ASK_PER_MINUTE=9\nROOMCAST_VOTE_PER_MINUTE=11\n")
    settings = load_settings({"ROOMCAST_DATA_DIR": str(tmp_path), "ROOMCAST_VOTE_PER_MINUTE": "12"}, env_file=env_file)
    assert settings.ask_per_minute == 9
    assert settings.vote_per_minute == 12


def test_every_spec_variable_is_known() -> None:
    spec = {
        "DATABASE_URL", "REDIS_URL", "ROOMCAST_DATA_DIR", "ROOMCAST_SECRET_KEY", "ROOMCAST_ALLOWED_ORIGINS",
        "ROOMCAST_REDIS_PREFIX", "ROOMCAST_ASK_PER_MINUTE", "ROOMCAST_VOTE_PER_MINUTE", "ROOMCAST_JOIN_PER_MINUTE",
        "ROOMCAST_ROOM_REDIS_URLS",
        "ROOMCAST_PUBLIC_URL", "ROOMCAST_GOOGLE_CLIENT_ID", "ROOMCAST_GOOGLE_CLIENT_SECRET", "ROOMCAST_GOOGLE_AUTH_URL",
        "ROOMCAST_GOOGLE_TOKEN_URL", "ROOMCAST_GOOGLE_API_URL", "ROOMCAST_MICROSOFT_CLIENT_ID",
        "ROOMCAST_MICROSOFT_CLIENT_SECRET", "ROOMCAST_MICROSOFT_AUTHORITY", "ROOMCAST_MICROSOFT_GRAPH_URL",
    }  # fmt: skip
    assert spec <= set(ENV_NAMES.values())


def test_room_shards_are_read_in_order(tmp_path: Path) -> None:
    settings = load(tmp_path, ROOMCAST_ROOM_REDIS_URLS=" redis://a:6379/0, rediss://:pw@b:6380 ,unix:///run/r.sock,")
    assert settings.room_redis_urls == ("redis://a:6379/0", "rediss://:pw@b:6380", "unix:///run/r.sock")
    assert load(tmp_path).room_redis_urls == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "redis://a:1,http://b:2",
            "ROOMCAST_ROOM_REDIS_URLS=redis://a:1,http://b:2: expected comma-separated redis://",
        ),
        (",", "ROOMCAST_ROOM_REDIS_URLS=,: expected comma-separated Redis URLs"),
        ("redis://a:1,redis://a:1", "ROOMCAST_ROOM_REDIS_URLS=redis://a:1,redis://a:1: redis://a:1 is listed twice"),
        ("redis://:hunter2@a:1,b:2", "ROOMCAST_ROOM_REDIS_URLS=redis://a:1,b:2: expected comma-separated redis://"),
    ],
)
def test_bad_room_shards_stop_start_up_with_one_line_and_no_password(tmp_path: Path, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load(tmp_path, ROOMCAST_ROOM_REDIS_URLS=value)
    assert str(error.value).startswith(expected), str(error.value)
    assert "hunter2" not in str(error.value)
    result = run_cli(
        "migrate", env={"PATH": "/usr/bin:/bin", "ROOMCAST_DATA_DIR": str(tmp_path), "ROOMCAST_ROOM_REDIS_URLS": value}
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"roomcast: {error.value}"
