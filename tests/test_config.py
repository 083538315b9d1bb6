"""bot/config.py: precedence, every problem at once, the token kept out of sight."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from bot.config import DEFAULT_DB, ConfigError, Settings, load_settings, setup_logging

TOKEN = "123456789:AAH-secret_token-value"


def write_env(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


# --- precedence: environment over .env over defaults ---------------------------------------


def test_defaults_when_nothing_is_set(tmp_path):
    s = load_settings({}, tmp_path / "absent.env")
    assert s.token is None
    assert s.admin_ids == frozenset()
    assert s.knowledge_db == Path(DEFAULT_DB)
    assert s.api_base_url is None
    assert s.log_level == "INFO"
    assert not s.log_json
    assert not s.log_user_ids
    assert s.webhook_secret is None


def test_env_file_fills_gaps_and_environment_wins(tmp_path):
    env_file = write_env(
        tmp_path / ".env",
        "KNOWLEDGE_DB=from-file.db\nLOG_LEVEL=debug\nADMIN_IDS=1, 2\nLOG_FORMAT=json\n",
    )
    s = load_settings({"KNOWLEDGE_DB": "from-env.db", "ADMIN_IDS": "3"}, env_file)
    assert s.knowledge_db == Path("from-env.db")  # environment over .env
    assert s.admin_ids == frozenset({3})
    assert s.log_level == "DEBUG"  # .env over the default, normalised
    assert s.log_json
    assert s.api_base_url is None  # neither: the default


def test_dotenv_in_working_directory_and_process_environment(tmp_path, monkeypatch):
    for name in ("KNOWLEDGE_DB", "LOG_LEVEL", "ADMIN_IDS", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    write_env(tmp_path / ".env", "KNOWLEDGE_DB=dotenv.db\nLOG_LEVEL=WARNING\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    s = load_settings()
    assert s.knowledge_db == Path("dotenv.db")
    assert s.log_level == "ERROR"


def test_flags_and_secret(tmp_path):
    s = load_settings(
        {"LOG_USER_IDS": "yes", "LOG_FORMAT": "JSON", "WEBHOOK_SECRET": "abc_DEF-123"},
        tmp_path / "absent.env",
    )
    assert s.log_user_ids
    assert s.log_json
    assert s.webhook_secret == "abc_DEF-123"
    assert not load_settings({"LOG_USER_IDS": "0"}, tmp_path / "absent.env").log_user_ids


# --- every problem listed at once -----------------------------------------------------------


def test_every_problem_is_reported_at_once(tmp_path):
    env = {
        "ADMIN_IDS": "12345,alice",
        "LOG_LEVEL": "LOUD",
        "TELEGRAM_API_BASE_URL": "127.0.0.1:8081/bot",
        "WEBHOOK_SECRET": "has spaces!",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(env, tmp_path / "absent.env", require_token=True)
    message = str(info.value)
    assert "TELEGRAM_BOT_TOKEN" in message
    assert "'alice'" in message
    assert "LOG_LEVEL" in message
    assert "TELEGRAM_API_BASE_URL" in message
    assert "WEBHOOK_SECRET" in message
    assert "has spaces!" not in message  # a secret is not echoed back


def test_token_only_required_when_asked(tmp_path):
    assert load_settings({}, tmp_path / "absent.env").token is None
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        load_settings({}, tmp_path / "absent.env", require_token=True)


def test_malformed_token_is_refused_without_echoing_it(tmp_path):
    bad = "not-a-token-but-still-secret"
    with pytest.raises(ConfigError) as info:
        load_settings({"TELEGRAM_BOT_TOKEN": bad}, tmp_path / "absent.env")
    assert "TELEGRAM_BOT_TOKEN" in str(info.value)
    assert bad not in str(info.value)


# --- the token stays out of repr and logs ----------------------------------------------------


def test_repr_never_shows_the_token(tmp_path):
    s = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN, "ADMIN_IDS": "7"}, tmp_path / "absent.env")
    assert s.token == TOKEN
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        assert TOKEN not in text
        assert TOKEN.split(":")[1] not in text
    assert "token=set" in repr(s)
    assert "token=unset" in repr(Settings())


@pytest.fixture
def log_stream():
    """setup_logging's handler, writing to a StringIO; the root logger restored afterwards.

    caplog is no use here: its handler sits beside ours and bypasses our handler's filter.
    """
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    saved_levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    stream = io.StringIO()

    def install(settings: Settings) -> io.StringIO:
        setup_logging(settings)
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        return stream

    yield install
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, lvl in saved_levels.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_token_is_redacted_from_log_output(log_stream, tmp_path, log_format):
    settings = load_settings(
        {"TELEGRAM_BOT_TOKEN": TOKEN, "LOG_FORMAT": log_format}, tmp_path / "absent.env"
    )
    stream = log_stream(settings)
    log = logging.getLogger("jiebei.test")
    log.info("calling https://api.telegram.org/bot%s/getMe", TOKEN)
    log.warning(f"token inline: {TOKEN}")
    log.error("args as a mapping: %(url)s", {"url": f"/bot{TOKEN}/sendMessage"})
    output = stream.getvalue()
    assert TOKEN not in output
    assert output.count("<token>") == 3
    if log_format == "json":
        records = [json.loads(line) for line in output.splitlines()]
        assert [r["level"] for r in records] == ["INFO", "WARNING", "ERROR"]
        assert records[0]["message"] == "calling https://api.telegram.org/bot<token>/getMe"


def test_token_is_redacted_from_logged_exceptions(log_stream, tmp_path):
    """Network errors often carry the request URL, and the Bot API URL carries the token."""
    settings = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, tmp_path / "absent.env")
    stream = log_stream(settings)
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/getUpdates failed")
    except RuntimeError:
        logging.getLogger("jiebei.test").exception("update loop failed")
    output = stream.getvalue()
    assert "update loop failed" in output
    assert "RuntimeError" in output
    assert TOKEN not in output


def test_httpx_request_logs_are_muted(log_stream, tmp_path):
    settings = load_settings(
        {"TELEGRAM_BOT_TOKEN": TOKEN, "LOG_LEVEL": "DEBUG"}, tmp_path / "absent.env"
    )
    stream = log_stream(settings)
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot%s/x", TOKEN)
    logging.getLogger("jiebei.test").debug("debug shows")
    output = stream.getvalue()
    assert "HTTP Request" not in output
    assert "debug shows" in output


def test_log_level_is_applied(log_stream, tmp_path):
    stream = log_stream(load_settings({"LOG_LEVEL": "WARNING"}, tmp_path / "absent.env"))
    log = logging.getLogger("jiebei.test")
    log.info("hidden")
    log.warning("shown")
    assert "hidden" not in stream.getvalue()
    assert "shown" in stream.getvalue()


# --- file_base_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "file_base"),
    [
        (None, None),
        ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot"),
        ("http://127.0.0.1:8081/bot/", "http://127.0.0.1:8081/file/bot"),
        ("https://botapi.example.org/tg/bot", "https://botapi.example.org/tg/file/bot"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081/file/bot"),
    ],
)
def test_file_base_url(base, file_base):
    assert Settings(api_base_url=base).file_base_url == file_base


def test_file_base_url_from_environment(tmp_path):
    s = load_settings({"TELEGRAM_API_BASE_URL": " http://127.0.0.1:8081/bot "}, tmp_path / "x")
    assert s.api_base_url == "http://127.0.0.1:8081/bot"
    assert s.file_base_url == "http://127.0.0.1:8081/file/bot"
