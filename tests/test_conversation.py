"""bot/conversation.py: the conversation without any transport, on real knowledge bases."""

from __future__ import annotations

import pytest

from bot import texts
from bot.conversation import Conversation
from bot.render import MAX_CALLBACK_BYTES, Reply, esc, to_plain_text
from knowledge.diagnosis import MAX_QUESTIONS
from tests.conftest import make_kb

CAUSE_QUESTION = "花呗逾期了，借呗也用不了了"


@pytest.fixture
def conv(kb) -> Conversation:
    return Conversation(kb)


def datas(reply: Reply) -> list[str]:
    return [b.data for b in reply.button_list()]


def press(conv: Conversation, chat, reply: Reply, label: str) -> list[Reply]:
    [button] = [b for b in reply.button_list() if b.label == label]
    return conv.on_button(chat, button.data)


def questions_logged(kb) -> list[tuple[str, str | None]]:
    kb.store.flush_questions()  # questions are queued and written in batches
    return [
        (r["text"], r["intent"])
        for r in kb.store.db.query("SELECT text, intent FROM questions ORDER BY id")
    ]


def feedback_rows(kb) -> list[tuple[str, int, str]]:
    return [
        (r["slug"], r["helpful"], r["chat"])
        for r in kb.store.db.query("SELECT slug, helpful, chat FROM feedback ORDER BY id")
    ]


def assert_buttons_are_sane(replies: list[Reply]) -> None:
    for reply in replies:
        for data in datas(reply):
            assert data.startswith("u:")
            assert len(data.encode()) <= MAX_CALLBACK_BYTES


# -- commands -------------------------------------------------------------------------------


def test_start_greets_and_offers_every_cause_and_the_diagnosis(conv, kb):
    [reply] = conv.start()
    assert "借呗助手" in reply.text_html
    assert datas(reply) == [f"u:e:{e.slug}" for e in kb.causes()] + ["u:ds"]
    assert len(kb.causes()) == 11
    assert conv.command(1, "/start@jiebei_bot") == conv.start()
    assert conv.on_text(1, "/causes")[0].text_html == texts.CAUSES
    assert conv.on_text(1, "/nope")[0].text_html == texts.UNKNOWN_COMMAND
    assert questions_logged(kb) == []  # commands are not questions


# -- free text ------------------------------------------------------------------------------


def test_a_cause_question_gets_title_explanation_solution_and_follow_up_buttons(conv, kb):
    [reply] = conv.on_text(7, CAUSE_QUESTION)
    entry = kb.entry("huabei_overdue")
    assert reply.intent == "huabei_overdue" and reply.score >= 55
    assert reply.text_html.startswith(f"<b>{esc(entry.title)}</b>")
    assert esc(entry.explanation) in reply.text_html
    assert esc(entry.solution) in reply.text_html
    data = datas(reply)
    assert any(d.startswith("u:o:") and d.endswith(":huabei_overdue") for d in data)
    assert "u:ds" in data
    assert [d.split(":")[3] for d in data if d.startswith("u:f:")] == ["y", "n"]
    others = [d for d in data if d.startswith("u:e:")]
    assert others and "u:e:huabei_overdue" not in others
    assert_buttons_are_sane([reply])
    assert questions_logged(kb) == [(CAUSE_QUESTION, "huabei_overdue")]


def test_entry_text_is_html_escaped(conv, kb):
    kb.write(lambda s: s.set_field("misuse", "explanation", "<b>买房</b> & 炒股", actor="t"))
    [reply] = conv.on_button(1, "u:e:misuse")
    assert "&lt;b&gt;买房&lt;/b&gt; &amp; 炒股" in reply.text_html
    assert "<b>买房</b>" not in reply.text_html


def test_a_close_call_between_causes_asks_which_one(tmp_path, pipeline):
    doc = {
        "version": 1,
        "entries": [
            {
                "slug": "one",
                "title": "一号原因",
                "explanation": "一",
                "solution": "办法一",
                "examples": ["借呗 额度 没了 逾期"],
            },
            {
                "slug": "two",
                "title": "二号原因",
                "explanation": "二",
                "solution": "办法二",
                "examples": ["借呗 额度 没了 逾期"],
            },
        ],
    }
    kb = make_kb(tmp_path / "small.db", pipeline, doc)
    conv = Conversation(kb, questions=[])
    [reply] = conv.on_text(1, "借呗额度没了逾期")
    assert reply.text_html == texts.AMBIGUOUS
    assert datas(reply)[:2] == ["u:e:one", "u:e:two"]
    [answer] = conv.on_button(1, "u:e:two")
    assert answer.intent == "two" and "办法二" in answer.text_html


def test_overview_lists_the_causes_and_the_diagnosis(conv, kb):
    [reply] = conv.on_text(1, "借呗被关了")
    assert reply.intent == "overview"
    assert esc(kb.entry("overview").explanation) in reply.text_html
    assert datas(reply) == [f"u:e:{e.slug}" for e in kb.causes()] + ["u:ds"]


def test_a_redirect_gives_its_text_and_the_way_back_to_the_causes(conv, kb):
    [reply] = conv.on_text(1, "借呗怎么还款")
    assert reply.intent == "repayment"
    assert esc(kb.entry("repayment").explanation) in reply.text_html
    assert datas(reply) == ["u:c", "u:ds"]
    [listing] = conv.on_button(1, "u:c")
    assert listing.text_html == texts.CAUSES


def test_no_match_is_honest_lists_the_causes_and_stores_the_question(conv, kb):
    [reply] = conv.on_text(1, "明天天气如何")
    assert reply.intent is None
    assert reply.text_html == texts.NO_MATCH
    assert "u:ds" in datas(reply) and len(datas(reply)) == 12
    assert [q["text"] for q in kb.store.unmatched()] == ["明天天气如何"]


def test_store_writes_off_logs_nothing(kb):
    conv = Conversation(kb, store_writes=False)
    [reply] = conv.on_text(1, CAUSE_QUESTION)
    conv.on_button(1, datas(reply)[-2])
    assert questions_logged(kb) == [] and feedback_rows(kb) == []


def test_a_full_batch_of_questions_is_handed_to_on_full_batch(kb, monkeypatch):
    import knowledge.store as module

    monkeypatch.setattr(module, "QUESTION_BATCH", 2)
    calls: list[int] = []
    conv = Conversation(kb, on_full_batch=lambda: calls.append(kb.store.flush_questions()))
    conv.on_text(1, CAUSE_QUESTION)
    assert calls == []
    conv.on_text(1, "明天天气如何")
    assert calls == [2]  # the callback wrote the batch; the conversation did not
    conv.on_text(1, "/start")  # commands are not questions
    assert calls == [2]
    assert questions_logged(kb) == [(CAUSE_QUESTION, "huabei_overdue"), ("明天天气如何", None)]


def test_without_on_full_batch_a_full_batch_is_written_at_once(kb, monkeypatch):
    import knowledge.store as module

    monkeypatch.setattr(module, "QUESTION_BATCH", 2)
    conv = Conversation(kb)
    conv.on_text(1, CAUSE_QUESTION)
    conv.on_text(1, "明天天气如何")
    assert kb.store.db.execute("SELECT COUNT(*) FROM questions").fetchone()[0] == 2


# -- context --------------------------------------------------------------------------------


FOLLOW_UPS = ["那怎么办", "多久能恢复", "还能开通吗", "怎么解决", "然后呢"]


@pytest.mark.parametrize("follow_up", FOLLOW_UPS)
def test_a_short_follow_up_refers_to_the_last_cause(conv, kb, follow_up):
    conv.on_text(5, "身份证过期了借呗就用不了了")
    [reply] = conv.on_text(5, follow_up)
    entry = kb.entry("id_expired")
    assert reply.intent == "id_expired"
    assert esc(entry.solution) in reply.text_html
    # The closing note comes from the overview entry, not from the bot's own texts.
    note = "借呗关停后，必须等系统重新评估"
    assert note in kb.entry("overview").explanation
    assert note in reply.text_html
    assert (follow_up, "id_expired") in questions_logged(kb)


def test_a_follow_up_without_context_is_not_answered_from_another_chat(conv):
    conv.on_text(5, "身份证过期了借呗就用不了了")
    [reply] = conv.on_text(6, "那怎么办")
    assert reply.intent != "id_expired"


def test_a_new_cause_question_is_not_taken_as_a_follow_up(conv):
    conv.on_text(5, "身份证过期了借呗就用不了了")
    [reply] = conv.on_text(5, CAUSE_QUESTION)
    assert reply.intent == "huabei_overdue"


# -- buttons --------------------------------------------------------------------------------


def test_not_my_case_offers_the_next_candidates(conv):
    [reply] = conv.on_text(1, CAUSE_QUESTION)
    [answer] = press(conv, 1, reply, texts.BTN_NOT_MINE)
    assert answer.text_html == texts.NOT_MINE
    offered = [d for d in datas(answer) if d.startswith("u:e:")]
    assert offered and "u:e:huabei_overdue" not in offered
    assert len(offered) < 10  # the question's candidates, not the whole list


def test_not_my_case_on_an_old_answer_lists_the_other_causes(conv, kb):
    [answer] = conv.on_button(1, "u:o:99:misuse")  # e.g. after a restart
    assert answer.text_html == texts.NOT_MINE_NONE
    assert "u:e:misuse" not in datas(answer)
    assert len([d for d in datas(answer) if d.startswith("u:e:")]) == 10


def test_feedback_is_stored_once(conv, kb):
    [reply] = conv.on_text(3, CAUSE_QUESTION)
    [thanks] = press(conv, 3, reply, texts.BTN_HELPFUL)
    assert thanks.text_html == texts.FEEDBACK_THANKS
    [again] = press(conv, 3, reply, texts.BTN_UNHELPFUL)
    assert again.text_html == texts.FEEDBACK_DONE
    assert feedback_rows(kb) == [("huabei_overdue", 1, "3")]


def test_unhelpful_feedback_offers_the_diagnosis(conv, kb):
    [reply] = conv.on_text(3, CAUSE_QUESTION)
    [sorry] = press(conv, 3, reply, texts.BTN_UNHELPFUL)
    assert "u:ds" in datas(sorry)
    assert feedback_rows(kb) == [("huabei_overdue", 0, "3")]


@pytest.mark.parametrize(
    "data",
    [
        "u:e:no_such_entry",
        "u:zz",
        "u:e",
        "u:f:1:maybe:misuse",
        "u:f:1:y:../../x",
        "garbage",
        "",
        "u:d:",
        "u:" + "x" * 80,
        "a:delete:misuse",
    ],
)
def test_stale_or_unknown_buttons_get_a_clear_answer(conv, kb, data):
    [reply] = conv.on_button(1, data)
    assert reply.text_html in (texts.STALE_BUTTON, texts.ENTRY_GONE, texts.DIAG_ENDED)
    assert feedback_rows(kb) == []


def test_a_button_for_a_deleted_entry(conv, kb):
    [reply] = conv.on_text(1, CAUSE_QUESTION)
    assert reply.intent == "huabei_overdue"
    kb.write(lambda s: s.delete("huabei_overdue", actor="t"))
    [gone] = conv.on_button(1, "u:e:huabei_overdue")
    assert gone.text_html == texts.ENTRY_GONE
    assert "u:c" in datas(gone)
    [follow] = conv.on_text(1, "那怎么办")  # the remembered cause is gone too
    assert follow.intent != "huabei_overdue"


# -- guided diagnosis -----------------------------------------------------------------------


def test_diagnosis_converges_and_ends_with_the_likely_causes(conv, kb):
    [reply] = conv.diagnose(9)
    assert texts.BTN_YES in [b.label for b in reply.button_list()]
    assert_buttons_are_sane([reply])
    questions = {q.text: q for q in conv.questions}
    for _ in range(MAX_QUESTIONS):
        question = next(q for t, q in questions.items() if esc(t) in reply.text_html)
        label = texts.BTN_YES if "id_expired" in question.yes else texts.BTN_NO
        [reply] = press(conv, 9, reply, label)
        assert reply.edit  # the question message turns into the next one
        if reply.text_html.startswith(texts.DIAG_RESULT):
            break
    assert reply.text_html.startswith(texts.DIAG_RESULT)
    assert reply.intent == "id_expired"
    assert datas(reply)[0] == "u:e:id_expired"
    assert esc(kb.entry("id_expired").solution) in reply.text_html
    assert "u:ds" in datas(reply)
    # the diagnosis remembered its answer as the context of follow-ups
    [follow] = conv.on_text(9, "那怎么办")
    assert follow.intent == "id_expired"


def test_diagnosis_shows_the_leading_cause_once_it_stands_out(conv, kb):
    [reply] = conv.diagnose(9)
    [reply] = press(conv, 9, reply, texts.BTN_UNSURE)
    assert "问题 2" in reply.text_html
    assert "目前看最可能是" not in reply.text_html  # 不确定 left all causes level
    leading = f"目前看最可能是：{kb.entry('id_expired').title}"
    shown = []
    while not reply.text_html.startswith(texts.DIAG_RESULT):
        question = next(q for q in conv.questions if esc(q.text) in reply.text_html)
        yes = "id_expired" in question.yes
        [reply] = press(conv, 9, reply, texts.BTN_YES if yes else texts.BTN_NO)
        shown.append(leading in to_plain_text(reply.text_html))
    assert any(shown)
    assert reply.intent == "id_expired"


def test_diagnosis_can_be_cancelled_and_its_buttons_then_say_it_ended(conv):
    [question] = conv.diagnose(9)
    [cancelled] = press(conv, 9, question, texts.BTN_CANCEL)
    assert cancelled.text_html == texts.DIAG_CANCELLED and cancelled.edit
    [ended] = press(conv, 9, question, texts.BTN_YES)
    assert ended.text_html == texts.DIAG_ENDED
    assert not ended.edit


def test_buttons_of_an_earlier_diagnosis_say_it_ended(conv):
    [old] = conv.diagnose(9)
    [new] = conv.diagnose(9)
    [ended] = press(conv, 9, old, texts.BTN_NO)
    assert ended.text_html == texts.DIAG_ENDED
    [next_question] = press(conv, 9, new, texts.BTN_NO)
    assert "问题 2" in next_question.text_html


def test_pressing_an_answered_question_again_repeats_the_current_one(conv):
    [first] = conv.diagnose(9)
    press(conv, 9, first, texts.BTN_NO)
    [again] = press(conv, 9, first, texts.BTN_YES)
    assert again.text_html.startswith(texts.DIAG_ANSWERED)
    assert "问题 2" in again.text_html
    assert not again.edit


def test_typed_answers_work_while_a_diagnosis_runs(conv):
    conv.diagnose(9)
    [second] = conv.on_text(9, "没有")
    assert "问题 2" in second.text_html
    [third] = conv.on_text(9, "不确定")
    assert "问题 3" in third.text_html


def test_one_chat_cannot_reach_another_chats_diagnosis(conv):
    [theirs] = conv.diagnose(1)
    [mine] = press(conv, 2, theirs, texts.BTN_YES)
    assert mine.text_html == texts.DIAG_ENDED
    [cancel] = press(conv, 2, theirs, texts.BTN_CANCEL)
    assert cancel.text_html == texts.DIAG_ENDED
    [still_theirs] = press(conv, 1, theirs, texts.BTN_YES)
    assert "问题 2" in still_theirs.text_html


def test_a_diagnosis_left_alone_expires(kb):
    now = [1000.0]
    conv = Conversation(kb, diagnosis_ttl=60, clock=lambda: now[0])
    [question] = conv.diagnose(1)
    now[0] += 61
    [ended] = press(conv, 1, question, texts.BTN_YES)
    assert ended.text_html == texts.DIAG_ENDED


# -- state bounds ---------------------------------------------------------------------------


def test_chat_state_is_bounded_least_recently_used_first(kb):
    conv = Conversation(kb, max_chats=3)
    for chat in (1, 2, 3):
        conv.on_text(chat, "身份证过期了借呗就用不了了")
    conv.on_text(1, "你好")  # chat 1 is now the most recent
    conv.on_text(4, "你好")  # chat 2 is forgotten
    assert conv.chats() == 3
    assert conv.on_text(1, "那怎么办")[0].intent == "id_expired"
    assert conv.on_text(2, "那怎么办")[0].intent != "id_expired"


def test_chat_state_expires_when_idle(kb):
    now = [0.0]
    conv = Conversation(kb, chat_ttl=100, clock=lambda: now[0])
    conv.on_text(1, "身份证过期了借呗就用不了了")
    now[0] = 101
    assert conv.on_text(1, "那怎么办")[0].intent != "id_expired"


def test_forged_or_replayed_feedback_cannot_stuff_the_statistics(conv, kb):
    """Only an answer the chat really got counts, once; forged references, another chat's
    answer and unknown entries never."""
    for _ in range(3):
        [reply] = conv.on_button(9, "u:f:999:y:misuse")
        assert reply.text_html == texts.STALE_BUTTON
    conv.on_button(9, "u:f:78:n:no_such_entry")
    assert feedback_rows(kb) == []

    [answer] = conv.on_text(9, CAUSE_QUESTION)
    [helpful] = [d for d in datas(answer) if d.startswith("u:f:") and ":y:" in d]
    conv.on_button(10, helpful)  # another chat pressing (or forging) chat 9's button
    assert feedback_rows(kb) == []
    for _ in range(3):
        conv.on_button(9, helpful)
    assert feedback_rows(kb) == [("huabei_overdue", 1, "9")]
    assert kb.store.stats()["feedback"] == {"huabei_overdue": (1, 0)}
