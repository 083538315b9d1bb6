"""Load: a burst of 2,000 questions from 200 users, through the fake Bot API server over HTTP,
to the bot running as a process (``python -m bot run``). Every question gets exactly one
answer, the right one (its title is checked against the matcher run in this process), and
nothing is dropped or sent twice. The time it took is printed, not asserted.
"""

from __future__ import annotations

import time

import pytest

from knowledge.base import KnowledgeBase
from knowledge.store import Store
from tests.botapi import FakeBotAPI
from tests.botprocess import TOKEN, TOKEN_SECRET, BotProcess, known_questions, title_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

USERS = 200
PER_USER = 10
FIRST_USER = 70_001


def test_a_burst_of_2000_questions_from_200_users_is_answered_completely(
    tmp_path, pipeline, capsys
):
    store = Store(tmp_path / "expected.db")
    known = known_questions(KnowledgeBase(store, pipeline))
    store.close()
    asked = {
        FIRST_USER + u: [known[(u + i) % len(known)] for i in range(PER_USER)] for u in range(USERS)
    }
    with FakeBotAPI(TOKEN) as api:
        workdir = tmp_path / "bot"
        workdir.mkdir()
        bot = BotProcess(api, workdir)
        try:
            api.wait_until_polling(timeout=60)
            started = time.monotonic()
            for i in range(PER_USER):  # interleaved, as a crowd would send them
                for user, questions in asked.items():
                    api.send_text(user, questions[i][0])
            for user, questions in asked.items():
                replies = api.wait_for_messages(user, PER_USER, timeout=120)
                titles = [title_of(m) for m in replies]
                assert titles == [title for _, title in questions], user
            elapsed = time.monotonic() - started
            api.wait_for_updates_consumed(timeout=30)
            # a last question, answered after everything before it: no reply still on its way
            api.send_text(FIRST_USER, known[0][0])
            api.wait_for_messages(FIRST_USER, 1, timeout=30)
            per_user = {u: len(api.bot_messages(u)) for u in asked}
            assert per_user[FIRST_USER] == PER_USER + 1
            assert all(n == PER_USER for u, n in per_user.items() if u != FIRST_USER)
            assert len(api.bot_messages()) == USERS * PER_USER + 1
            assert bot.alive()
            failed = api.calls(ok=False)
            assert failed == [], failed[:3]
        finally:
            code = bot.stop()
        assert code == 0, bot.tail()
        assert TOKEN_SECRET not in bot.output
    with capsys.disabled():
        total = USERS * PER_USER
        print(
            f"\nload: {total} questions from {USERS} users answered in {elapsed:.1f}s "
            f"({total / elapsed:.0f}/s, {1000 * elapsed / total:.1f} ms each on average)"
        )
