"""Bot API faults: the bot as a process (``python -m bot run``) against tests/botapi.FakeBotAPI
on 127.0.0.1, with the server down at start, going away mid-run, answering 500 or 502,
answering slowly or not in time, and answering 429 with ``retry_after``.

Every time the bot logs, waits, recovers and answers every question that was waiting, exactly
once, and keeps running; the token never appears in what it writes. The tests block on the
server's wait helpers and on the bot's log lines, never on sleeps.
"""

from __future__ import annotations

import itertools
import time

import pytest

from bot import texts
from knowledge.base import KnowledgeBase
from knowledge.store import Store
from tests.botapi import FakeBotAPI
from tests.botprocess import TOKEN, TOKEN_SECRET, BotProcess, known_questions, title_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WAIT = 60.0  # generous: the bot backs off between retries
_users = itertools.count(50_001)


@pytest.fixture(scope="module")
def known(tmp_path_factory, pipeline) -> list[tuple[str, str]]:
    """(question, reply title) pairs, matched in this process over the shipped entries."""
    store = Store(tmp_path_factory.mktemp("known") / "kb.db")
    try:
        return known_questions(KnowledgeBase(store, pipeline))
    finally:
        store.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One bot process for the mid-run faults, logging at DEBUG (the most it ever says)."""
    api = FakeBotAPI(TOKEN).start()
    bot = BotProcess(api, tmp_path_factory.mktemp("faults"), log_level="DEBUG")
    try:
        api.wait_until_polling(timeout=WAIT)
        yield api, bot
    finally:
        bot.stop()
        api.stop()


def ask_all(api: FakeBotAPI, questions: list[tuple[int, str, str]]) -> None:
    """Each (user, question, title): the user asks, then every reply is awaited and checked:
    one reply per question, with the expected title, and nothing more (a later question of
    the same user, answered after it, proves no duplicate was still on its way)."""
    for user, text, _ in questions:
        api.send_text(user, text)
    for user, _, title in questions:
        [reply] = api.wait_for_messages(user, 1, timeout=WAIT)
        assert title_of(reply) == title, reply["text"][:200]
    barrier = "/help"
    for user in {u for u, _, _ in questions}:
        api.send_text(user, barrier)
        api.wait_for_messages(user, 1, timeout=WAIT)
        asked = sum(1 for u, _, _ in questions if u == user)
        assert len(api.bot_messages(user)) == asked + 1, [
            m["text"][:60] for m in api.bot_messages(user)
        ]


def fresh(known: list[tuple[str, str]], n: int = 1) -> list[tuple[int, str, str]]:
    """``n`` new users, each with one known question."""
    return [(next(_users), *known[i % len(known)]) for i in range(n)]


# -- down at start --------------------------------------------------------------------------


def test_server_down_at_start_then_up_answers_the_waiting_question(tmp_path, known):
    api = FakeBotAPI(TOKEN).start()
    try:
        waiting = fresh(known, 3)
        for user, text, _ in waiting:  # asked while the bot could not reach Telegram
            api.send_text(user, text)
        api.go_offline()  # connection refused
        bot = BotProcess(api, tmp_path, log_level="DEBUG")
        try:
            bot.wait_for_log("Bootstrap Initialize Application): Failed run number 1", WAIT)
            assert bot.alive()
            api.go_online()
            for user, _, title in waiting:
                [reply] = api.wait_for_messages(user, 1, timeout=WAIT)
                assert title_of(reply) == title
            ask_all(api, fresh(known, 2))  # and it keeps answering
            assert bot.alive()
        finally:
            assert bot.stop() == 0, bot.tail()
        assert api.pending_updates() == []
        assert TOKEN_SECRET not in bot.output
    finally:
        api.stop()


# -- faults while running -------------------------------------------------------------------


def test_server_gone_mid_run_then_back(running, known):
    api, bot = running
    since = bot.mark()
    api.go_offline()  # the long poll is cut, new connections refused
    bot.wait_for_log("Telegram: NetworkError", WAIT, since=since)
    questions = fresh(known, 4)
    for user, text, _ in questions:
        api.send_text(user, text)
    api.go_online()
    for user, _, title in questions:
        [reply] = api.wait_for_messages(user, 1, timeout=WAIT)
        assert title_of(reply) == title
    ask_all(api, fresh(known, 2))


def test_server_restart_cuts_the_long_poll(running, known):
    api, _bot = running
    api.wait_until_polling(timeout=WAIT)
    api.restart()
    ask_all(api, fresh(known, 3))


def test_get_updates_answering_500_and_502(running, known):
    api, bot = running
    since = bot.mark()
    api.fail_next("getUpdates", 1, status=500)
    api.fail_next("getUpdates", 1, status=502)
    ask_all(api, fresh(known, 3))
    bot.wait_for_log("Telegram: NetworkError", WAIT, since=since)


def test_proxy_answering_502_pages_while_down(running, known):
    api, bot = running
    since = bot.mark()
    # Go down under a pending long poll, so that the first failure is the cut poll. The last
    # reply of the previous test can arrive before the bot's next getUpdates does, and a
    # getUpdates that meets the 502 page makes PTB log a traceback (see the last test).
    api.wait_until_polling(timeout=WAIT)
    api.set_down(True, mode="502")
    bot.wait_for_log("Telegram: NetworkError", WAIT, since=since)
    questions = fresh(known, 2)
    for user, text, _ in questions:
        api.send_text(user, text)
    api.set_down(False)
    for user, _, title in questions:
        [reply] = api.wait_for_messages(user, 1, timeout=WAIT)
        assert title_of(reply) == title


def test_send_message_answering_5xx_is_retried(running, known):
    api, bot = running
    since = bot.mark()
    api.fail_next("sendMessage", 1, status=500)
    api.fail_next("sendMessage", 1, status=503)
    ask_all(api, fresh(known, 2))
    bot.wait_for_log("NetworkError on sendMessage", WAIT, since=since)


def test_send_message_429_waits_retry_after_then_sends(running, known):
    api, bot = running
    since = bot.mark()
    [(user, text, title)] = fresh(known)
    api.fail_next("sendMessage", 1, retry_after=2)
    started = time.monotonic()
    api.send_text(user, text)
    [reply] = api.wait_for_messages(user, 1, timeout=WAIT)
    waited = time.monotonic() - started
    assert title_of(reply) == title
    assert waited >= 2.0, f"answered {waited:.2f}s after a 429 that asked for 2s"
    bot.wait_for_log("Rate limit hit", WAIT, since=since)
    ask_all(api, fresh(known, 2))


def test_many_429s_in_a_burst_lose_nothing(running, known):
    api, _bot = running
    api.fail_next("sendMessage", 3, retry_after=1)
    ask_all(api, fresh(known, 6))


def test_slow_send_message_is_waited_for(running, known):
    api, _bot = running
    api.fail_next("sendMessage", 1, status=None, delay=2.0)  # slow, then fine
    ask_all(api, fresh(known, 2))


def test_send_message_timing_out_is_retried(running, known):
    api, bot = running
    since = bot.mark()
    # Longer than the bot's 5 s read timeout; then the server fails the call anyway, so a
    # retried message cannot arrive twice.
    api.fail_next("sendMessage", 1, status=500, delay=8.0)
    ask_all(api, fresh(known, 2))
    bot.wait_for_log("TimedOut", WAIT, since=since)


def test_buttons_survive_faults(running, known):
    api, _bot = running
    [(user, text, title)] = fresh(known)
    api.send_text(user, "/diagnose")
    [question] = api.wait_for_messages(user, 1, timeout=WAIT)
    api.fail_next("answerCallbackQuery", 1, status=500)
    api.fail_next("editMessageText", 1, status=502)
    api.press_button(user, question, text=texts.BTN_YES)
    edited = api.wait_for_edit(user, question["message_id"], timeout=WAIT)
    assert edited["text"] != question["text"]
    api.send_text(user, text)
    [reply] = api.wait_for_messages(user, 1, timeout=WAIT)
    assert title_of(reply) == title


def test_still_running_stops_cleanly_and_never_logged_the_token(running, known):
    api, bot = running
    ask_all(api, fresh(known, 2))
    assert bot.alive()
    assert bot.stop() == 0, bot.tail()
    out = bot.output
    assert "Traceback" not in out or "Exception happened while polling" in out
    assert TOKEN not in out and TOKEN_SECRET not in out
    assert api.server_errors() == []
