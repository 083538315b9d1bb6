"""Users' data: knowledge/privacy.py (the mask), and what the store and the conversation keep,
for how long, and how it is deleted. Real SQLite files, real jieba."""

from __future__ import annotations

import json
import logging
import re
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import texts
from bot.config import Masking, Settings
from bot.conversation import Conversation
from knowledge.base import KnowledgeBase
from knowledge.privacy import CARD, EMAIL, ID_NUMBER, LANDLINE, MOBILE, mask, matchable
from knowledge.store import DAY, Store

# Made-up numbers of every kind (the ID has a valid shape; none belongs to anybody we know).
ID18 = "44030419851023361X"
ID18_DIGITS = "440304198510233617"
ID15 = "440304851023361"
MOBILE_NO = "15912345678"
LANDLINE_NO = "0755-26661234"
CARD_NO = "6217001234567890123"
MAIL = "xiaoli.zhang88@example.cn"
RAW = [ID18[:-1], ID18_DIGITS, ID15, MOBILE_NO, "26661234", CARD_NO, MAIL, "zhang88"]

PERSONAL_QUESTION = (
    f"我身份证{ID18}，老证{ID15}，手机{MOBILE_NO}，座机{LANDLINE_NO}，"
    f"银行卡{CARD_NO}，邮箱{MAIL}，支付宝账号也是这个手机号，你们帮我查一下借呗为啥没了"
)


# -- the mask ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"身份证{ID18}过期了", f"身份证{ID_NUMBER}过期了"),
        (f"身份证号{ID18_DIGITS}", f"身份证号{ID_NUMBER}"),
        (f"老身份证{ID15}还能用吗", f"老身份证{ID_NUMBER}还能用吗"),
        ("身份证 440304 19851023 361x", f"身份证 {ID_NUMBER}"),
        (f"我手机{MOBILE_NO}收不到验证码", f"我手机{MOBILE}收不到验证码"),
        ("手机 159 1234 5678", f"手机 {MOBILE}"),
        ("+86 159-1234-5678", MOBILE),
        ("８６１５９１２３４５６７８", MOBILE),  # full-width, with the country code
        ("支付宝账号159****5678", f"支付宝账号{MOBILE}"),
        (f"打{LANDLINE_NO}没人接", f"打{LANDLINE}没人接"),
        ("（0755）26661234", LANDLINE),
        ("家里座机26661234", f"家里座机{LANDLINE}"),
        (f"卡号{CARD_NO}被冻结", f"卡号{CARD}被冻结"),
        ("6217 0012 3456 7890 123", CARD),
        (f"邮箱{MAIL}，回复我", f"邮箱{EMAIL}，回复我"),
        ("账号是zh***@example.cn", f"账号是{EMAIL}"),
        (f"{MOBILE_NO} {ID18}", f"{MOBILE} {ID_NUMBER}"),
    ],
)
def test_each_kind_of_personal_number_is_masked_and_the_sentence_kept(text, masked):
    assert mask(text) == masked
    assert mask(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        "借呗额度从50000降到了0",
        "逾期了3天，还了2000",
        "打95188问过了",
        "2024年3月15号开始用不了",
        "借了12个月，每月还1500",
        "订单尾号1234",
        "花呗晚还了几天，借呗就用不了了",
        "12345678",  # eight digits with nothing saying it is a phone number
    ],
)
def test_amounts_days_dates_and_hotlines_are_left_alone(text):
    assert mask(text) == text


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(alphabet="借呗用不了身份证手机号是的 ，。a", max_size=12),
    number=st.sampled_from([ID18, ID18_DIGITS, ID15, MOBILE_NO, CARD_NO, MAIL]),
    after=st.text(alphabet="借呗用不了过期了吗 ，。", max_size=12),
)
def test_a_number_anywhere_in_a_sentence_is_masked(before, number, after):
    masked = mask(before + number + after)
    assert number not in masked
    assert mask(masked) == masked


def test_the_matcher_sees_no_evidence_in_a_masked_number(kb):
    """A masked number, and the word that only names it, are no hint at any entry (an ID
    number given "so you can check" is no ID card problem); the rest of the message decides."""
    pipeline = kb.pipeline
    for plain in ("借呗突然用不了了", "借呗被关了怎么回事", "花呗晚还了几天借呗就用不了了"):
        for number in (ID18, MOBILE_NO, CARD_NO, MAIL):
            with_number = f"{plain}，我的号码{number}"
            assert pipeline.tokens(with_number) == pipeline.tokens(f"{plain}，我的")
            assert kb.match(with_number).intent == kb.match(f"{plain}，我的").intent
        # the placeholders typed or stored as text are no evidence either
        assert pipeline.tokens(f"{plain}{ID_NUMBER}") == pipeline.tokens(plain)
    for label, number in (("身份证号", ID18), ("手机号是", MOBILE_NO), ("卡号：", CARD_NO)):
        question = f"{label}{number}，帮我查下借呗为什么用不了"
        assert pipeline.tokens(question) == pipeline.tokens("，帮我查下借呗为什么用不了")
        assert kb.match(question).intent not in ("id_expired", "account_risk")
    # a number that is the subject of the sentence keeps its word
    assert kb.match(f"身份证{ID18}过期了，借呗用不了").intent == "id_expired"
    assert matchable(f"身份证{ID18}过期了") == "身份证过期了"


def test_answers_are_unchanged_for_questions_without_numbers(kb):
    """Every example phrase and every labelled question of ours: no number, no change."""
    with open("tests/data/validation.jsonl", encoding="utf-8") as lines:
        rows = [json.loads(line)["text"] for line in lines if line.strip()]
    phrases = rows + [p for e in kb.entries() for p in e.examples]
    checked = 0
    for phrase in phrases:
        if re.search(r"\d{7}|@", phrase):
            continue
        assert mask(phrase) == phrase == matchable(phrase)
        checked += 1
    assert checked > 1000


# -- the store ----------------------------------------------------------------------------------


def _raw_bytes(path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-journal"):
        file = path.with_name(path.name + suffix)
        if file.exists():
            data += file.read_bytes()
    return data


def _assert_no_raw_number(data: str | bytes) -> None:
    for raw in RAW:
        needle = raw.encode() if isinstance(data, bytes) else raw
        assert needle not in data, raw


def test_a_question_with_every_kind_of_number_is_stored_and_logged_masked(kb, caplog):
    handler_lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_lines.append(self.format(record))

    handler = Lines()
    handler.setFormatter(Masking(logging.Formatter("%(levelname)s %(message)s")))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        conv = Conversation(kb, persist=True)
        [reply] = conv.on_text(5, PERSONAL_QUESTION)
        logging.getLogger("bot.test").warning("the user wrote %s", PERSONAL_QUESTION)
        kb.store.log_question(f"直接写入的 {MOBILE_NO}", None, 0.0)  # the store masks too
        conv.flush_states()
        kb.store.flush_questions()
    finally:
        root.removeHandler(handler)
    assert reply.intent is None or reply.intent != "id_expired"
    stored = [r["text"] for r in kb.store.db.query("SELECT text FROM questions ORDER BY id")]
    assert stored[0].startswith(f"我身份证{ID_NUMBER}，老证{ID_NUMBER}，手机{MOBILE}")
    assert f"银行卡{CARD}，邮箱{EMAIL}" in stored[0]
    assert stored[1] == f"直接写入的 {MOBILE}"
    # no table, no WAL file, no log line holds the raw numbers
    dump = "\n".join(kb.store.db.conn.iterdump())
    _assert_no_raw_number(dump)
    _assert_no_raw_number(_raw_bytes(kb.store.path))
    assert any("the user wrote" in line for line in handler_lines)
    _assert_no_raw_number("\n".join(handler_lines))
    # what the admins' inbox reads
    assert kb.store.unmatched()[0]["text"] == f"直接写入的 {MOBILE}"


def test_retention_deletes_questions_and_feedback_older_than_the_limit(tmp_path, pipeline):
    store = Store(tmp_path / "kb.db")
    kb = KnowledgeBase(store, pipeline)
    clock = [1_000_000_000.0]
    old, recent = clock[0] - 181 * DAY, clock[0] - 179 * DAY
    for at, text in ((old, "老问题"), (recent, "新问题")):
        qid = store.log_question(text, None, 0.0, chat="7")
        store.db.execute("UPDATE questions SET at = ? WHERE id = ?", [at, qid])
        store.record_feedback("misuse", True, "7")
        store.db.execute(
            "UPDATE feedback SET at = ? WHERE id = (SELECT MAX(id) FROM feedback)", [at]
        )
    assert store.prune(180, now=clock[0]) == {
        "questions": 1,
        "feedback": 1,
        "suggestions": 0,
        "chat_state": 0,
    }
    assert [r["text"] for r in store.db.query("SELECT text FROM questions")] == ["新问题"]
    assert [r["at"] for r in store.db.query("SELECT at FROM feedback")] == [recent]
    assert store.prune(180, now=clock[0]) == {
        "questions": 0,
        "feedback": 0,
        "suggestions": 0,
        "chat_state": 0,
    }
    assert store.prune(1, now=clock[0]) == {
        "questions": 1,
        "feedback": 1,
        "suggestions": 0,
        "chat_state": 0,
    }
    assert b"\xe8\x80\x81\xe9\x97\xae\xe9\xa2\x98" not in _raw_bytes(store.path)  # "老问题"
    kb.store.close()


def test_retention_deletes_conversation_states_a_stopped_bot_left_behind(tmp_path):
    store = Store(tmp_path / "kb.db")
    now = 1_000_000_000.0
    store.save_states(
        [("7", now - 181 * DAY, '{"last_cause":"misuse"}'), ("8", now - DAY, '{"x":1}')]
    )
    assert store.prune(180, now=now)["chat_state"] == 1
    assert [r[0] for r in store.db.execute("SELECT chat FROM chat_state")] == ["8"]
    store.close()


def test_forget_deletes_the_rows_of_that_chat_only(kb):
    conv = Conversation(kb, persist=True)
    group_key = (-1001, 5)
    for chat in (5, 6, group_key):
        conv.on_text(chat, "花呗晚还了几天，借呗就用不了了")
        conv.on_text(chat, f"我手机{MOBILE_NO}，明天天气怎么样")
    [answer] = conv.on_text(5, "花呗晚还了几天，借呗就用不了了")
    [helpful] = [b.data for b in answer.button_list() if b.label == texts.BTN_HELPFUL]
    conv.on_button(5, helpful)
    conv.flush_states()
    kb.store.flush_questions()

    def rows(table: str) -> dict[str, int]:
        return {
            r["chat"]: r["n"]
            for r in kb.store.db.query(f"SELECT chat, COUNT(*) AS n FROM {table} GROUP BY chat")
        }

    assert rows("questions") == {"5": 3, "6": 2, "-1001:5": 2}
    assert rows("feedback") == {"5": 1}
    assert set(rows("chat_state")) == {"5", "6", "-1001:5"}

    [prompt] = conv.on_text(5, "/forget")
    assert "删除" in prompt.text_html and "180" in prompt.text_html
    yes = prompt.button_list()[0]
    assert conv.on_button(6, yes.data)[0].text_html == texts.STALE_BUTTON  # not chat 6's
    assert rows("questions")["5"] == 3
    [done] = conv.on_button(5, yes.data)
    assert done.edit and "提问 5 条" in done.text_html and "“有帮助/没帮助” 1 条" in done.text_html
    # chat 5 and user 5's rows in the group are gone; chat 6 is untouched
    assert rows("questions") == {"6": 2}
    assert rows("feedback") == {}
    assert set(rows("chat_state")) == {"6"}
    assert conv.on_text(5, "那怎么办")[0].intent != "huabei_overdue"  # the state went too
    assert conv.on_button(5, yes.data)[0].text_html == texts.STALE_BUTTON  # used up


def test_a_forget_the_store_cannot_do_says_so_and_can_be_asked_again(kb, monkeypatch):
    conv = Conversation(kb)
    conv.on_text(9, "借呗突然用不了了")
    [prompt] = conv.command(9, "/forget")

    def locked(*args, **kw):
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as m:
        m.setattr(kb.store, "forget", locked)
        [failed] = conv.on_button(9, prompt.button_list()[0].data)
    assert failed.edit and failed.text_html == texts.FORGET_FAILED
    [prompt] = conv.command(9, "/forget")
    [done] = conv.on_button(9, prompt.button_list()[0].data)
    assert "提问 1 条" in done.text_html
    assert kb.store.db.execute("SELECT COUNT(*) FROM questions").fetchone()[0] == 0


def test_forget_can_be_cancelled(kb):
    conv = Conversation(kb)
    conv.on_text(8, "借呗突然用不了了")
    [prompt] = conv.command(8, "/forget")
    no = prompt.button_list()[1]
    assert conv.on_button(8, no.data)[0].text_html == texts.FORGET_CANCELLED
    kb.store.flush_questions()
    assert kb.store.db.execute("SELECT COUNT(*) FROM questions").fetchone()[0] == 1


def test_help_and_the_command_menu_mention_forget(kb):
    assert "/forget" in Conversation(kb).help()[0].text_html
    assert "forget" in [name for name, _ in texts.USER_COMMANDS]


def test_the_retention_setting_is_validated():
    from bot.config import ConfigError, load_settings

    assert load_settings({}).retention_days == 180
    assert load_settings({"QUESTION_RETENTION_DAYS": "30"}).retention_days == 30
    for bad in ("0", "-5", "abc", "1.5", "99999"):
        with pytest.raises(ConfigError, match="QUESTION_RETENTION_DAYS"):
            load_settings({"QUESTION_RETENTION_DAYS": bad})
    assert Settings().retention_days == 180


def test_the_forget_reply_is_in_the_script_the_user_writes(kb):
    conv = Conversation(kb)
    conv.on_text(8, "借唄突然不能用了，怎麼辦")
    [prompt] = conv.command(8, "/forget")
    assert "刪除" in prompt.text_html
    [done] = conv.on_button(8, prompt.button_list()[0].data)
    assert "已刪除" in done.text_html and "提問 1 條" in done.text_html


def test_a_user_who_types_a_number_is_told_it_is_not_needed_once_above_the_answer(kb):
    conv = Conversation(kb)
    note = texts.NUMBERS_NOT_NEEDED
    [reply] = conv.on_text(8, f"我手机号{MOBILE_NO}，花呗逾期了几天借呗就关了")
    assert reply.text_html.startswith(note[:10])
    assert reply.intent == "huabei_overdue"  # the answer is still there, under the note
    [plain] = conv.on_text(9, "花呗逾期了几天借呗就关了")
    assert note[:10] not in plain.text_html and plain.intent == "huabei_overdue"
    # A placeholder typed as such is no number given.
    [typed] = conv.on_text(9, f"花呗逾期了几天借呗就关了{MOBILE}")
    assert note[:10] not in typed.text_html
