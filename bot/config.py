"""Configuration: the process environment first, a ``.env`` file in the working directory
second, defaults last. Every problem is collected and reported at once in a ConfigError."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from knowledge.privacy import mask
from knowledge.store import RETENTION_DAYS

DEFAULT_DB = "data/knowledge.db"
TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# A healthy bot completes a getUpdates at least every 10 s (the long poll's timeout) and its
# heartbeat is written within 2 s, so a limit under 20 s would fail healthy bots.
HEALTH_MAX_POLL_AGE_DEFAULT = 120
HEALTH_MAX_POLL_AGE_RANGE = (20, 86400)
MAX_RETENTION_DAYS = 36_500


class ConfigError(Exception):
    """One or more settings are missing or invalid; the message lists them all."""


@dataclass(frozen=True)
class Settings:
    token: str | None = None
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    knowledge_db: Path = Path(DEFAULT_DB)
    api_base_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = False
    log_user_ids: bool = False
    webhook_secret: str | None = None
    health_max_poll_age: int = HEALTH_MAX_POLL_AGE_DEFAULT
    retention_days: int = RETENTION_DAYS

    @property
    def file_base_url(self) -> str | None:
        """The file URL that goes with ``api_base_url`` (``.../bot`` -> ``.../file/bot``)."""
        if not self.api_base_url:
            return None
        base = self.api_base_url.rstrip("/")
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base + "/file/bot"

    def __repr__(self) -> str:  # never show the token
        token = "set" if self.token else "unset"
        return (
            f"Settings(token={token}, admin_ids={sorted(self.admin_ids)}, "
            f"knowledge_db={str(self.knowledge_db)!r}, api_base_url={self.api_base_url!r})"
        )


def _merged(environ: Mapping[str, str] | None, env_file: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    path = env_file if env_file is not None else Path(".env")
    if path.is_file():
        try:
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    *,
    require_token: bool = False,
) -> Settings:
    """Read the settings; raises ConfigError naming every problem found."""
    values = _merged(environ, env_file)
    problems: list[str] = []

    token = values.get("TELEGRAM_BOT_TOKEN", "").strip() or None
    if token is None and require_token:
        problems.append("TELEGRAM_BOT_TOKEN is not set (get one from @BotFather)")
    elif token is not None and not TOKEN_RE.match(token):
        problems.append("TELEGRAM_BOT_TOKEN does not look like a bot token (<digits>:<letters>)")

    admin_ids: set[int] = set()
    for part in values.get("ADMIN_IDS", "").replace(" ", "").split(","):
        if not part:
            continue
        if part.isdigit():
            admin_ids.add(int(part))
        else:
            problems.append(f"ADMIN_IDS: {part!r} is not a numeric Telegram user id")

    base_url = values.get("TELEGRAM_API_BASE_URL", "").strip() or None
    if base_url and not re.match(r"^https?://[^/\s]+", base_url):
        problems.append(
            "TELEGRAM_API_BASE_URL must be an http(s) URL such as http://127.0.0.1:8081/bot"
        )

    level = values.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    secret = values.get("WEBHOOK_SECRET", "").strip() or None
    if secret and not re.match(r"^[A-Za-z0-9_-]{1,256}$", secret):
        problems.append("WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1-256 characters)")

    max_age_text = values.get("HEALTH_MAX_POLL_AGE", "").strip()
    max_age = HEALTH_MAX_POLL_AGE_DEFAULT
    low, high = HEALTH_MAX_POLL_AGE_RANGE
    if max_age_text:
        if max_age_text.isdigit() and low <= int(max_age_text) <= high:
            max_age = int(max_age_text)
        else:
            problems.append(f"HEALTH_MAX_POLL_AGE must be a whole number of seconds, {low}-{high}")
    retention = values.get("QUESTION_RETENTION_DAYS", "").strip() or str(RETENTION_DAYS)
    if not retention.isdigit() or not 1 <= int(retention) <= MAX_RETENTION_DAYS:
        problems.append(
            f"QUESTION_RETENTION_DAYS must be a whole number of days from 1 to {MAX_RETENTION_DAYS}"
        )
        retention = str(RETENTION_DAYS)

    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return Settings(
        token=token,
        admin_ids=frozenset(admin_ids),
        knowledge_db=Path(values.get("KNOWLEDGE_DB", "").strip() or DEFAULT_DB),
        api_base_url=base_url,
        log_level=level,
        log_json=values.get("LOG_FORMAT", "").strip().lower() == "json",
        log_user_ids=values.get("LOG_USER_IDS", "").strip().lower() in ("1", "true", "yes"),
        webhook_secret=secret,
        health_max_poll_age=max_age,
        retention_days=int(retention),
    )


class _Redacting(logging.Formatter):
    """Wraps a formatter and removes the token from the finished line, tracebacks included."""

    def __init__(self, inner: logging.Formatter, token: str) -> None:
        super().__init__()
        self.inner = inner
        self.token = token

    def format(self, record: logging.LogRecord) -> str:
        return self.inner.format(record).replace(self.token, "<token>")


class Masking(logging.Formatter):
    """Wraps a formatter and masks personal numbers in the finished line (tracebacks and
    library debug output included): :func:`knowledge.privacy.mask`."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask(self.inner.format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(settings: Settings) -> None:
    """Log to stderr; the token is redacted from every record and personal numbers are
    masked; httpx's URL logs are muted."""
    handler = logging.StreamHandler()
    formatter: logging.Formatter = (
        _JsonFormatter()
        if settings.log_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    if settings.token:
        formatter = _Redacting(formatter, settings.token)
    handler.setFormatter(Masking(formatter))
    # A failing log stream must not print the record (and maybe the token) to stderr raw.
    logging.raiseExceptions = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # httpx logs every request URL, and the URL carries the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
