"""``jiebei-bot run`` as a separate process against the fake Bot API server on 127.0.0.1:
long polling, a server that is down at start, network errors while running, clean stops."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from bot import texts
from tests.botapi import FakeBotAPI
from tests.botprocess import BotProcess

pytestmark = pytest.mark.slow

TOKEN = "987654:TEST-run-token_abcdefghijklmnop"
USER = 5005
CAUSE_QUESTION = "花呗逾期了，借呗也用不了了"


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(TOKEN) as server:
        yield server


@pytest.fixture
def bot(api, tmp_path) -> Iterator[BotProcess]:
    process = BotProcess(api, tmp_path, admin_ids="42")
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(30)


def test_polling_answers_and_sigterm_stops_with_exit_0(api, bot):
    api.wait_until_polling(timeout=60)
    api.send_text(USER, "/start")
    [start] = api.wait_for_messages(USER)
    assert start["text"].startswith("您好！")
    assert len(start["reply_markup"]["inline_keyboard"]) == 12

    api.send_text(USER, CAUSE_QUESTION)
    [answer] = api.wait_for_messages(USER)
    assert answer["text"].startswith("花呗或备用金逾期")
    assert {"type": "bold", "offset": 0, "length": 8} in answer["entities"]

    api.send_text(USER, "/diagnose")
    [question] = api.wait_for_messages(USER)
    api.press_button(USER, question, text=texts.BTN_NO)
    edited = api.wait_for_edit(USER, question["message_id"])
    assert "问题 2" in edited["text"]

    assert [c["command"] for c in api.commands()] == [n for n, _ in texts.USER_COMMANDS]
    assert api.server_errors() == []
    assert bot.stop(signal.SIGTERM) == 0
    assert "handled text intent=huabei_overdue" in bot.log
    assert TOKEN not in bot.log and TOKEN.split(":")[1] not in bot.log


def test_sigint_stops_with_exit_0(api, bot):
    api.wait_until_polling(timeout=60)
    assert bot.stop(signal.SIGINT) == 0


def test_network_errors_while_running_are_warnings_and_the_bot_carries_on(api, bot):
    api.wait_until_polling(timeout=60)
    api.fail_next("sendMessage", status=502)
    api.send_text(USER, "你好")
    bot.wait_for_count("WARNING bot.app: Telegram: NetworkError", 1)
    [first] = api.wait_for_messages(USER, 1, timeout=30)  # sent again: nothing is lost
    assert first["text"]
    api.fail_next("sendMessage", retry_after=1)
    api.send_text(USER, "你好")
    # The flood wait is honoured and the same reply sent again: nothing is lost.
    bot.wait_for_count("Rate limit hit", 1)
    [retried] = api.wait_for_messages(USER, 1, timeout=30)
    assert retried["text"]
    # The next two polls fail (the one in flight ends with this message's update): one
    # warning with the count of failed tries, not one per try.
    api.fail_next("getUpdates", 2, status=502)
    api.send_text(USER, "你好")
    bot.wait_for_log("WARNING bot.health: Bot API unreachable: NetworkError on getUpdates")
    api.send_text(USER, CAUSE_QUESTION)
    replies = api.wait_for_messages(USER, 2, timeout=60)
    assert replies[-1]["text"].startswith("花呗或备用金逾期")
    bot.wait_for_log("Bot API reachable again (getUpdates) after 2 failed tries")
    assert bot.log.count("Bot API unreachable") == 1
    assert bot.stop() == 0
    assert "Traceback" not in bot.log and " ERROR " not in bot.log


def test_a_bot_api_server_down_at_start_is_retried(api, tmp_path):
    api.go_offline()
    process = BotProcess(api, tmp_path, log_level="DEBUG")
    try:
        process.wait_for_log("Failed run number")  # a start-up attempt was refused
        api.go_online()
        api.wait_until_polling(timeout=60)
        api.send_text(USER, "/help")
        [reply] = api.wait_for_messages(USER, timeout=30)
        assert reply["text"].startswith("怎么使用借呗助手")
        assert process.stop() == 0
        assert TOKEN not in process.log  # not even in debug logs
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_mode_checks_the_secret_token(api, tmp_path):
    port = free_port()
    secret = "s3cret_webhook-token"
    process = BotProcess(
        api,
        tmp_path,
        args=(
            "--webhook",
            "https://bot.example.test/tg/hook",
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
        ),
        WEBHOOK_SECRET=secret,
    )
    try:
        registered = api.wait_for_call("setWebhook", timeout=60)
        assert registered["url"] == "https://bot.example.test/tg/hook"
        assert registered["secret_token"] == secret
        process.wait_for_log("Application started")
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "U"},
                "text": CAUSE_QUESTION,
            },
        }
        api.add_chat(USER)

        def post(token: str) -> int:
            request = Request(
                f"http://127.0.0.1:{port}/tg/hook",
                data=json.dumps(update).encode(),
                headers={
                    "Content-Type": "application/json",
                    "X-Telegram-Bot-Api-Secret-Token": token,
                },
            )
            try:
                with urlopen(request, timeout=30) as response:
                    return response.status
            except HTTPError as exc:
                return exc.code

        assert post("wrong") == 403
        assert post(secret) == 200
        [answer] = api.wait_for_messages(USER, timeout=30)
        assert answer["text"].startswith("花呗或备用金逾期")
        assert process.stop() == 0
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(30)
