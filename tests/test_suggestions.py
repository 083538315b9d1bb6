"""What users tell the bot about its answers becomes suggestions for /review: recorded by the
conversation (bot/conversation.py) in the store (knowledge/store.py), on the shipped base."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlite_utils import Database

from bot import texts
from bot.conversation import CORRECTION_TTL, REPHRASE_WINDOW, Conversation
from bot.render import Reply
from knowledge.store import WEEK, Store, StoreError, migrations
from tests.conftest import make_kb

QUESTION = "信用卡逾期一天借呗就关了"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def conv(kb, clock) -> Conversation:
    return Conversation(kb, clock=clock)


def rows(kb) -> list[dict]:
    return list(kb.store.db.query("SELECT * FROM suggestions ORDER BY id"))


def button(reply: Reply, label: str) -> str:
    [data] = [b.data for b in reply.button_list() if b.label == label]
    return data


def entry_buttons(reply: Reply) -> list[str]:
    return [b.data.removeprefix("u:e:") for b in reply.button_list() if b.data.startswith("u:e:")]


def not_mine(conv: Conversation, chat, question: str = QUESTION) -> tuple[str, list[str]]:
    """Ask, press 这不是我的情况; the entry answered and the entries offered next."""
    [answer] = conv.on_text(chat, question)
    assert answer.intent is not None
    [others] = conv.on_button(chat, button(answer, texts.BTN_NOT_MINE))
    return answer.intent, entry_buttons(others)


# -- the conversation records -----------------------------------------------------------


def test_not_mine_then_the_entry_opened_is_one_suggestion(conv, kb):
    answered, offered = not_mine(conv, 7)
    [row] = rows(kb)
    assert (row["kind"], row["question"], row["answered"], row["went_to"]) == (
        "not_mine", QUESTION, answered, None,
    )  # fmt: skip
    assert row["chat"] == "7" and row["status"] == "open" and abs(row["at"] - time.time()) < 60
    conv.on_button(7, f"u:e:{offered[0]}")
    [row] = rows(kb)
    assert row["went_to"] == offered[0]
    conv.on_button(7, f"u:e:{offered[1]}")  # only the first entry opened counts
    assert [r["went_to"] for r in rows(kb)] == [offered[0]]


def test_pressing_not_mine_twice_records_once(conv, kb):
    [answer] = conv.on_text(7, QUESTION)
    data = button(answer, texts.BTN_NOT_MINE)
    conv.on_button(7, data)
    conv.on_button(7, data)
    assert len(rows(kb)) == 1


def test_typing_not_mine_records_it_as_the_button_does(conv, kb):
    [answer] = conv.on_text(22, QUESTION)
    [others] = conv.on_text(22, "这不是我的情况")
    offered = entry_buttons(others)
    assert offered and answer.intent not in offered
    conv.on_button(22, f"u:e:{offered[0]}")
    [row] = rows(kb)
    assert (row["kind"], row["question"], row["answered"], row["went_to"]) == (
        "not_mine", QUESTION, answer.intent, offered[0],
    )  # fmt: skip
    conv.on_text(22, "这不是我的情况")  # about the entry opened: no question asked for it
    assert len(rows(kb)) == 1


def test_an_entry_opened_too_late_is_not_where_the_user_went(conv, kb, clock):
    _, offered = not_mine(conv, 7)
    clock.now += CORRECTION_TTL + 1
    conv.on_button(7, f"u:e:{offered[0]}")
    assert rows(kb)[0]["went_to"] is None


def test_not_mine_then_the_diagnosis_result_is_where_the_user_went(conv, kb):
    not_mine(conv, 8)
    [question] = conv.on_button(8, "u:ds")
    reply = question
    for _ in range(20):
        if texts.DIAG_RESULT in reply.text_html:
            break
        [reply] = conv.on_text(8, "不确定")
    assert texts.DIAG_RESULT in reply.text_html
    [row] = rows(kb)
    assert row["went_to"] == reply.intent


def test_unhelpful_is_a_suggestion_with_the_question(conv, kb):
    [answer] = conv.on_text(9, QUESTION)
    conv.on_button(9, button(answer, texts.BTN_UNHELPFUL))
    [row] = rows(kb)
    assert (row["kind"], row["question"], row["answered"]) == ("unhelpful", QUESTION, answer.intent)
    helpful = conv.on_text(10, QUESTION)[0]
    conv.on_button(10, button(helpful, texts.BTN_HELPFUL))
    assert len(rows(kb)) == 1  # 有帮助 is no suggestion


def test_a_which_one_pick_is_a_suggestion(tmp_path, pipeline, clock):
    # Two causes with the same example: a question like it is a close call between them.
    twins = [
        {"slug": slug, "title": title, "examples": ["借呗突然被关掉了"]}
        for slug, title in (("cause_a", "原因甲"), ("cause_b", "原因乙"))
    ]
    kb = make_kb(tmp_path / "twins.db", pipeline, {"version": 1, "entries": twins})
    conv = Conversation(kb, clock=clock)
    ambiguous = "借呗突然被关掉了"
    assert kb.match(ambiguous).ambiguous
    [choice] = conv.on_text(11, ambiguous)
    assert choice.text_html == texts.AMBIGUOUS
    picked = entry_buttons(choice)[1]
    conv.on_button(11, f"u:e:{picked}")
    [row] = rows(kb)
    assert (row["kind"], row["question"], row["answered"], row["went_to"]) == (
        "choice", ambiguous, None, picked,
    )  # fmt: skip


def test_a_reworded_question_landing_elsewhere_soon_is_a_suggestion(conv, kb, clock):
    first = conv.on_text(12, QUESTION)[0].intent
    clock.now += REPHRASE_WINDOW / 2
    second = conv.on_text(12, "花呗晚还了几天，借呗就用不了了")[0].intent
    assert first != second and kb.entry(second).is_cause
    [row] = rows(kb)
    assert (row["kind"], row["question"], row["answered"], row["went_to"]) == (
        "rephrase", QUESTION, first, second,
    )  # fmt: skip


def test_a_later_or_same_or_follow_up_question_is_no_rewording(conv, kb, clock):
    conv.on_text(13, QUESTION)
    clock.now += REPHRASE_WINDOW + 1
    conv.on_text(13, "花呗晚还了几天，借呗就用不了了")  # too late
    conv.on_text(14, QUESTION)
    conv.on_text(14, "那怎么办")  # a follow-up about the same cause
    conv.on_text(15, QUESTION)
    conv.on_text(15, "明天天气如何")  # nothing matched
    conv.on_text(15, "花呗晚还了几天，借呗就用不了了")  # after an unrelated message
    assert rows(kb) == []


def test_not_mine_then_asking_again_fills_where_the_user_went(conv, kb, clock):
    answered, _ = not_mine(conv, 16)
    second = conv.on_text(16, "花呗晚还了几天，借呗就用不了了")[0].intent
    [row] = rows(kb)
    assert (row["kind"], row["answered"], row["went_to"]) == ("not_mine", answered, second)


def test_a_group_chat_records_the_chat_and_nothing_without_store_writes(kb, clock):
    conv = Conversation(kb, clock=clock)
    not_mine(conv, (-100, 5))
    assert rows(kb)[0]["chat"] == "-100:5"  # the conversation's key, as /forget deletes it
    quiet = Conversation(kb, store_writes=False, clock=clock)
    not_mine(quiet, 17)
    assert len(rows(kb)) == 1


def test_forget_deletes_the_chats_suggestions_and_retention_prunes_them(conv, kb):
    not_mine(conv, 19)
    not_mine(conv, (-100, 19))
    not_mine(conv, 20)
    conv.forget_now(19)
    assert [r["chat"] for r in rows(kb)] == ["20"]
    kb.store.db.execute("UPDATE suggestions SET at = 0")
    kb.store.prune()
    assert rows(kb) == []


def test_masked_numbers_never_reach_a_suggestion(conv, kb):
    phone = "13812345678"
    not_mine(conv, 21, f"信用卡逾期一天借呗就关了 我电话{phone}")
    assert rows(kb) and phone not in rows(kb)[0]["question"]
    assert rows(kb)[0]["question"].startswith(QUESTION)


def test_a_store_failure_never_costs_the_answer(conv, kb, monkeypatch):
    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(kb.store, "add_suggestion", broken)
    _, offered = not_mine(conv, 18)
    assert offered


# -- the store --------------------------------------------------------------------------


def test_the_question_is_stored_through_the_question_log_text(tmp_path):
    store = Store(tmp_path / "kb.db", seed=False)
    sid = store.add_suggestion("not_mine", "借呗\ud800" + "长" * 600, "a1", None, "1")
    question = store.suggestion(sid)["question"]
    assert question == "借呗?" + "长" * 497  # as stored_text keeps questions: 500, valid UTF-8
    with pytest.raises(StoreError):
        store.add_suggestion("guess", "x", None, None, "1")


def test_the_migration_adds_the_table_to_an_existing_file(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m003_suggestions")
    assert "suggestions" not in db.table_names()
    db.close()
    store = Store(path)
    assert "suggestions" in store.db.table_names()
    assert store.entries()  # seeded as before


def test_accepting_adds_one_recorded_example_and_closes_the_group(kb):
    store = kb.store
    ids = [store.add_suggestion("not_mine", QUESTION, "credit_record", "jiebei_overdue", "1")]
    ids.append(store.add_suggestion("rephrase", QUESTION + "了", "credit_record", None, "2"))
    history = len(store.history(limit=1000))
    phrase, after = kb.write(lambda s: s.accept_suggestions(ids, "jiebei_overdue", actor="t"))
    assert phrase == QUESTION and after is not None and QUESTION in after.examples
    assert len(store.history(limit=1000)) == history + 1
    assert {store.suggestion(i)["status"] for i in ids} == {"accepted"}
    assert store.waiting() == (0, 0)
    with pytest.raises(StoreError):
        store.accept_suggestions(ids, "jiebei_overdue", actor="t")


def test_answer_quality_counts_per_week(kb):
    store = kb.store
    now = time.time()
    for days_ago in (1, 2, 9):
        qid = store.log_question("问题", "credit_record", 90)
        store.db.execute("UPDATE questions SET at = ? WHERE id = ?", [now - days_ago * 86400, qid])
    sid = store.add_suggestion("not_mine", "问题", "credit_record", None, "1")
    store.db.execute("UPDATE suggestions SET at = ? WHERE id = ?", [now - 9 * 86400, sid])
    store.add_suggestion("choice", "问题", None, "credit_record", "1")  # corrects no answer
    store.record_feedback("credit_record", False, "2")
    quality = store.answer_quality(now - 2 * WEEK, now)
    assert quality["credit_record"] == [[2, 0, 1], [1, 1, 0]]


def test_held_back_writes_wait_for_write_pending_and_die_with_forget(kb, clock):
    conv = Conversation(kb, clock=clock, defer_writes=True)
    conv.on_text(31, QUESTION)
    conv.on_text(31, "这不是我的情况")
    conv.on_text(32, QUESTION)
    conv.on_text(32, "这不是我的情况")
    assert rows(kb) == [] and conv.writes_pending()
    conv.forget_now(31)
    assert conv.write_pending() == 1
    assert [r["chat"] for r in rows(kb)] == ["32"]
    assert not conv.writes_pending()
