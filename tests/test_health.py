"""Health means answering: the running bot's heartbeat, ``jiebei-bot health`` reading it, the
"Bot API unreachable" warning, and the operator's log lines (start-up, unmatched, admin reads).

The process test runs ``jiebei-bot run`` against the fake Bot API server (tests/botapi.py),
takes the server down and brings it back, and polls ``jiebei-bot health`` for the expected
answer with a bounded deadline (never a sleep standing in for the condition).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.health import BotApiMonitor, Heartbeat, bot_status, heartbeat_path
from tests.botapi import FakeBotAPI
from tests.botprocess import BotProcess

TOKEN = "864201:TEST-health_token-abcdefghijk"
ADMIN = 4242
USER = 5151
HOST = socket.gethostname()


# -- the monitor: warnings at most once a minute, with the number of tries ---------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_unreachable_bot_api_is_a_warning_once_a_minute_with_the_count(caplog):
    clock = Clock()
    monitor = BotApiMonitor(clock=clock, token=TOKEN)
    caplog.set_level(logging.INFO, logger="bot.health")
    for _ in range(130):  # a failed try every second for 130 s
        monitor.failed("getUpdates", ConnectionError(f"refused by {TOKEN}"))
        clock.now += 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings  # at 0 s, 60 s and 120 s
    assert "1 failed try since" in warnings[0]
    assert "61 failed tries since" in warnings[1]
    assert "121 failed tries since" in warnings[2]
    assert all("ConnectionError on getUpdates" in w for w in warnings)
    assert all(TOKEN not in w and "<token>" in w for w in warnings)
    assert monitor.last_ok is None and monitor.failures == 130

    caplog.clear()
    monitor.heard("getUpdates")
    assert monitor.failures == 0 and monitor.last_ok == clock.now
    [info] = [r.getMessage() for r in caplog.records]
    assert info.startswith("Bot API reachable again (getUpdates) after 130 failed tries")

    caplog.clear()  # a new outage warns at once again
    monitor.failed("getUpdates", ConnectionError("refused"))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_the_heartbeat_file_follows_the_monitor(tmp_path):
    clock = Clock()
    monitor = BotApiMonitor(clock=clock)
    path = heartbeat_path(tmp_path / "kb.db")
    assert path.name == "kb.db-heartbeat"
    beat = Heartbeat(path, monitor)
    beat.write()
    state = json.loads(path.read_text())
    assert state["pid"] == os.getpid() and state["last_ok"] is None and state["mode"] == "polling"
    monitor.heard("getUpdates")
    beat.write()
    assert json.loads(path.read_text())["last_ok"] == clock.now
    beat.stop()
    assert json.loads(path.read_text())["stopped"] is not None


# -- what health makes of a heartbeat --------------------------------------------------------


def write_beat(path: Path, **state: object) -> None:
    base = {
        "pid": os.getpid(),
        "host": HOST,
        "mode": "polling",
        "started": 0.0,
        "last_ok": None,
        "failures": 0,
        "last_error": None,
    }
    path.write_text(json.dumps({**base, **state}))


def test_no_heartbeat_means_no_bot_has_run(tmp_path):
    status = bot_status(tmp_path / "kb.db-heartbeat", 60, now=100.0)
    assert status.ok and status.message == "no bot has run on it"


def test_a_fresh_heartbeat_is_healthy_and_a_stale_one_says_why(tmp_path):
    path = tmp_path / "kb.db-heartbeat"
    write_beat(path, started=0.0, last_ok=950.0)
    ok = bot_status(path, 60, now=1000.0)
    assert ok.ok and ok.message == "bot polling, last completed a getUpdates 50s ago"

    write_beat(
        path,
        started=0.0,
        last_ok=900.0,
        failures=7,
        last_error="NetworkError on getUpdates: connection refused",
    )
    stale = bot_status(path, 60, now=1000.0)
    assert not stale.ok
    assert "last completed a getUpdates 100s ago" in stale.message
    assert "HEALTH_MAX_POLL_AGE is 60s" in stale.message
    assert "7 failed tries, the last: NetworkError on getUpdates" in stale.message


def test_a_bot_that_never_reached_telegram_is_unhealthy_after_the_limit(tmp_path):
    path = tmp_path / "kb.db-heartbeat"
    write_beat(path, started=980.0, failures=2, last_error="NetworkError on getMe: refused")
    assert bot_status(path, 60, now=1000.0).ok  # still starting
    status = bot_status(path, 60, now=1100.0)
    assert not status.ok
    assert "started 120s ago and has not completed a getUpdates yet" in status.message
    assert "getMe" in status.message


def test_a_bot_that_stopped_or_died_is_not_expected_to_poll(tmp_path):
    path = tmp_path / "kb.db-heartbeat"
    write_beat(path, last_ok=10.0, stopped=20.0)
    status = bot_status(path, 60, now=10_000.0)
    assert status.ok and "stopped at" in status.message

    write_beat(path, pid=999_999_999, last_ok=10.0)
    status = bot_status(path, 60, now=10_000.0, pid_alive=lambda pid: False)
    assert status.ok and "ended without a clean stop" in status.message
    # On another host the pid says nothing: a stale heartbeat is unhealthy.
    write_beat(path, pid=999_999_999, host="elsewhere", last_ok=10.0)
    assert not bot_status(path, 60, now=10_000.0, pid_alive=lambda pid: False).ok


def test_a_garbled_heartbeat_is_unhealthy(tmp_path):
    path = tmp_path / "kb.db-heartbeat"
    path.write_text("{not json")
    status = bot_status(path, 60, now=1.0)
    assert not status.ok and "cannot read the bot's heartbeat" in status.message


def test_the_limit_is_configurable_and_validated(tmp_path):
    env_file = tmp_path / "none.env"
    assert load_settings({}, env_file).health_max_poll_age == 120
    assert load_settings({"HEALTH_MAX_POLL_AGE": "45"}, env_file).health_max_poll_age == 45
    for bad in ("abc", "5", "-30", "1.5", "100000"):
        with pytest.raises(ConfigError, match="HEALTH_MAX_POLL_AGE"):
            load_settings({"HEALTH_MAX_POLL_AGE": bad}, env_file)


# -- the whole bot, as a process -------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(TOKEN) as server:
        yield server


def health(workdir: Path, max_age: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KNOWLEDGE_DB": str(workdir / "knowledge.db"),
        "HEALTH_MAX_POLL_AGE": str(max_age),
        "PYTHONIOENCODING": "utf-8",
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "health"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def health_until(
    workdir: Path,
    max_age: int,
    wanted: Callable[[subprocess.CompletedProcess[str]], bool],
    within: float,
) -> subprocess.CompletedProcess[str]:
    """Run health until its answer is the wanted one; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = health(workdir, max_age)
        if wanted(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"health never gave the wanted answer: {result.stdout}{result.stderr}"
            )


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_health_fails_while_the_bot_api_is_down_and_passes_once_it_is_back(api, tmp_path):
    limit = 20
    assert health(tmp_path, limit).returncode == 0  # no bot yet: the knowledge base only
    bot = BotProcess(api, tmp_path, admin_ids=str(ADMIN), HEALTH_MAX_POLL_AGE=str(limit))
    try:
        started = bot.wait_for_log("starting: knowledge base")
        assert str(tmp_path / "knowledge.db") in started
        assert "entries" in started and "examples" in started and "compiled scorer" in started
        assert "segmenter, 1 admin, long polling" in started
        api.wait_until_polling(timeout=60)
        ok = health_until(tmp_path, limit, lambda r: "completed a getUpdates" in r.stdout, 30)
        assert ok.returncode == 0 and ok.stdout.startswith("ok: ")

        # Operator's lines: the best candidate of an unmatched question; an admin's reads.
        api.send_text(USER, "周末的天气会不会下雨呢")
        api.wait_for_messages(USER, timeout=30)
        unmatched = bot.wait_for_log("intent=None")
        assert "best=" in unmatched and "best_score=" in unmatched
        api.send_text(ADMIN, "/entries")
        api.wait_for_messages(ADMIN, timeout=30)
        assert "an admin ran /entries" in bot.wait_for_log("ran /entries")
        assert str(ADMIN) not in bot.wait_for_log("ran /entries")  # no LOG_USER_IDS

        # The server goes away: within the limit (plus the heartbeat's own delay) health fails.
        mark = bot.mark()
        api.go_offline()
        failed = health_until(tmp_path, limit, lambda r: r.returncode != 0, limit + 40)
        assert "unhealthy: the bot (pid" in failed.stderr
        assert "last completed a getUpdates" in failed.stderr
        assert f"HEALTH_MAX_POLL_AGE is {limit}s" in failed.stderr
        assert "failed tr" in failed.stderr  # why: the failed tries and the last error
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
        warning = bot.wait_for_log("WARNING bot.health: Bot API unreachable", since=mark)
        assert "failed try since" in warning or "failed tries since" in warning

        # Back up: health passes again.
        api.go_online()
        health_until(tmp_path, limit, lambda r: r.returncode == 0, 90)
        bot.wait_for_log("Bot API reachable again", since=mark)
        # Warnings at most once a minute, never one per failed try: the recovery line counts
        # the tries, the warnings' own timestamps are a minute apart or more.
        outage = bot.lines[mark:]
        warnings = [ln for ln in outage if "Bot API unreachable" in ln]
        assert warnings and [ln for ln in outage if "NetworkError" in ln and "WARNING" in ln] == (
            warnings
        )
        recovered = bot.wait_for_log("Bot API reachable again", since=mark)
        tries = int(re.search(r"after (\d+) failed tr", recovered).group(1))
        assert tries > len(warnings), (tries, warnings)
        stamps = [datetime.strptime(ln[:23], "%Y-%m-%d %H:%M:%S,%f") for ln in warnings]
        assert all((b - a).total_seconds() >= 59.9 for a, b in pairwise(stamps)), warnings
        assert bot.stop(signal.SIGTERM) == 0
        assert TOKEN not in bot.log and TOKEN.split(":")[1] not in bot.log
    finally:
        if bot.proc.poll() is None:
            bot.proc.kill()
            bot.proc.wait(30)
    stopped = health(tmp_path, limit)
    assert stopped.returncode == 0 and "stopped at" in stopped.stdout, stopped.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_in_webhook_mode_health_follows_the_webhook_check(api, tmp_path):
    """No webhook call for a while is normal; the periodic getWebhookInfo is the heartbeat."""
    limit = 20
    bot = BotProcess(
        api,
        tmp_path,
        args=(
            "--webhook",
            "https://bot.example.test/hook",
            "--listen",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ),
        HEALTH_MAX_POLL_AGE=str(limit),
        WEBHOOK_SECRET="s3cret",
    )
    try:
        assert "webhook at bot.example.test" in bot.wait_for_log("starting: knowledge base")
        api.wait_for_call("setWebhook", timeout=60)
        ok = health_until(tmp_path, limit, lambda r: "last heard from Telegram" in r.stdout, 60)
        assert ok.returncode == 0 and "bot webhook" in ok.stdout, ok.stdout
        api.go_offline()
        failed = health_until(tmp_path, limit, lambda r: r.returncode != 0, limit + 40)
        assert "last heard from Telegram" in failed.stderr, failed.stderr
        assert "getWebhookInfo" in failed.stderr, failed.stderr
        api.go_online()
        health_until(tmp_path, limit, lambda r: r.returncode == 0, 60)
        assert bot.stop() == 0
    finally:
        if bot.proc.poll() is None:
            bot.proc.kill()
            bot.proc.wait(30)
