"""Users' data through the whole bot: ``python -m bot run`` as a process against the fake Bot
API server. Personal numbers never reach the database, its WAL file or the log; a diagnosis
and the buttons of earlier answers keep working across a SIGTERM and a new start; /forget
deletes the chat's rows."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator

import pytest

from bot import texts
from tests.botapi import FakeBotAPI
from tests.botprocess import BotProcess

pytestmark = pytest.mark.slow

TOKEN = "564738:TEST-restart-token_qwertyuiopasdf"
ADMIN, ASKER, READER, PATIENT = 4343, 6001, 6002, 6003
REPLY_TIMEOUT = 15.0
ID_NO, MOBILE_NO, CARD_NO, MAIL = (
    "44030419851023361X",
    "15912345678",
    "6217001234567890123",
    "xiaoli.zhang88@example.cn",
)
RAW = [ID_NO[:-1], MOBILE_NO, CARD_NO, MAIL, "zhang88"]


@pytest.fixture
def api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(TOKEN) as server:
        yield server
        assert server.server_errors() == []


def start(api: FakeBotAPI, workdir) -> BotProcess:
    process = BotProcess(api, workdir, log_level="DEBUG", admin_ids=str(ADMIN))
    api.wait_until_polling(timeout=60)
    return process


def say(api: FakeBotAPI, user: int, text: str) -> dict:
    api.mark(user)
    api.send_text(user, text)
    [reply] = api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    return reply


def press(api: FakeBotAPI, user: int, message: dict, **button) -> None:
    query = api.press_button(user, message, **button)
    deadline = time.monotonic() + REPLY_TIMEOUT
    while query["id"] not in {a["callback_query_id"] for a in api.callback_answers()}:
        api.wait_for_call("answerCallbackQuery", max(deadline - time.monotonic(), 0.1))


def press_for_message(api: FakeBotAPI, user: int, message: dict, **button) -> dict:
    api.mark(user)
    press(api, user, message, **button)
    [reply] = api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    return reply


def files(workdir) -> bytes:
    data = b""
    for name in ("knowledge.db", "knowledge.db-wal", "knowledge.db-journal"):
        if (workdir / name).exists():
            data += (workdir / name).read_bytes()
    return data


def rows(workdir, sql: str) -> list[tuple]:
    conn = sqlite3.connect(workdir / "knowledge.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_numbers_are_masked_and_a_diagnosis_survives_a_restart(api, tmp_path):
    bot = start(api, tmp_path)
    # A question full of personal numbers that the bot cannot answer: stored, masked.
    personal = f"请帮我查查 身份证{ID_NO} 手机{MOBILE_NO} 卡号{CARD_NO} 邮箱{MAIL}"
    say(api, ASKER, personal)
    # An answer with its buttons, and a diagnosis one answer in.
    answer = say(api, READER, "花呗晚还了几天，借呗就用不了了")
    not_mine = press_for_message(api, READER, answer, text=texts.BTN_NOT_MINE)
    question = say(api, PATIENT, "/diagnose")
    press(api, PATIENT, question, text=texts.BTN_YES)
    second = api.wait_for_edit(PATIENT, question["message_id"], REPLY_TIMEOUT)
    assert "问题 2" in second["text"]

    assert bot.stop(signal.SIGTERM) == 0
    first_output = bot.output
    bot = start(api, tmp_path)
    try:
        press(api, PATIENT, second, text=texts.BTN_NO)
        third = api.wait_for_edit(PATIENT, question["message_id"], REPLY_TIMEOUT)
        assert "问题 3" in third["text"] or texts.DIAG_RESULT in third["text"], third["text"]
        assert texts.DIAG_ENDED not in third["text"]

        again = press_for_message(api, READER, answer, text=texts.BTN_NOT_MINE)
        assert again["text"] == not_mine["text"] == texts.NOT_MINE
        assert again["reply_markup"] == not_mine["reply_markup"]
        thanks = press_for_message(api, READER, answer, text=texts.BTN_HELPFUL)
        assert thanks["text"] == texts.FEEDBACK_THANKS

        # the admins' inbox shows the question masked
        inbox = say(api, ADMIN, "/unmatched")
        assert "[身份证号]" in inbox["text"] and "[手机号]" in inbox["text"], inbox["text"]
        assert "[银行卡号]" in inbox["text"] and "[邮箱]" in inbox["text"]

        # /forget: the asker's rows go, after the confirmation
        prompt = say(api, ASKER, "/forget")
        press(api, ASKER, prompt, text=texts.BTN_FORGET_YES)
        done = api.wait_for_edit(ASKER, prompt["message_id"], REPLY_TIMEOUT)
        assert "提问 1 条" in done["text"], done["text"]
        assert rows(tmp_path, f"SELECT COUNT(*) FROM questions WHERE chat = '{ASKER}'") == [(0,)]
        assert rows(tmp_path, f"SELECT COUNT(*) FROM questions WHERE chat = '{READER}'") == [(1,)]
        assert rows(tmp_path, f"SELECT slug FROM feedback WHERE chat = '{READER}'") == [
            ("huabei_overdue",)
        ]
    finally:
        assert bot.stop(signal.SIGTERM) == 0
    output = first_output + "\n" + bot.output
    assert "handled text" in output and "DEBUG" in output  # the log really was captured
    assert "Traceback" not in output
    for raw in RAW:
        assert raw not in output, raw
        assert raw.encode() not in files(tmp_path), raw
