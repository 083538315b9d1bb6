"""bot/conversation.py: the conversation without any transport, on real knowledge bases."""

from __future__ import annotations

import re

import pytest

from bot import texts
from bot.conversation import Conversation
from bot.render import MAX_CALLBACK_BYTES, Reply, esc, to_plain_text, to_script
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


ON_TOPIC_UNMATCHED = "借呗的电子合同去哪里找"


def test_no_match_is_honest_lists_the_causes_and_stores_the_question(conv, kb):
    [reply] = conv.on_text(1, ON_TOPIC_UNMATCHED)
    assert reply.intent is None
    assert reply.text_html == texts.NO_MATCH
    assert "u:ds" in datas(reply) and len(datas(reply)) == 12
    assert [q["text"] for q in kb.store.unmatched()] == [ON_TOPIC_UNMATCHED]


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


FOLLOW_UPS = ["那怎么办", "还能开通吗", "怎么解决"]


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
    lead = texts.DIAG_LEADING.split("{")[0]
    assert lead not in reply.text_html  # 不确定 pointed at no cause
    leading = texts.DIAG_LEADING.format(title=kb.entry("id_expired").title)
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


def test_a_typed_answer_does_not_revive_an_expired_diagnosis(kb):
    now = [1000.0]
    conv = Conversation(kb, diagnosis_ttl=60, clock=lambda: now[0])
    conv.diagnose(1)
    now[0] += 61
    [answer] = conv.on_text(1, "身份证过期了借呗就用不了了")
    assert answer.intent == "id_expired"
    [reply] = conv.on_text(1, "不是")  # "not my case", not 否 to a diagnosis over long ago
    assert reply.text_html.startswith((texts.NOT_MINE, texts.NOT_MINE_NONE))
    assert "问题 2" not in reply.text_html


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


# -- follow-ups about the cause just discussed ----------------------------------------------


def follow_up(conv, chat, cause_question: str, question: str) -> Reply:
    conv.on_text(chat, cause_question)
    [reply] = conv.on_text(chat, question)
    return reply


def test_how_long_gets_what_decides_not_the_steps_again(conv, kb):
    reply = follow_up(conv, 21, CAUSE_QUESTION, "大概要等多长时间呀")
    text = to_plain_text(reply.text_html)
    assert reply.intent == "huabei_overdue"
    assert conv.followups.causes["huabei_overdue"]["wait"] in text
    assert "没有具体的说法" in text and "重新评估" in text  # no figure, and what decides
    assert kb.entry("huabei_overdue").solution not in text  # the steps are not repeated
    assert texts.BTN_NOT_MINE in [b.label for b in reply.button_list()]
    assert ("大概要等多长时间呀", "huabei_overdue") in questions_logged(kb)


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("还清了是不是就能用了", "repay"),
        ("那我先把欠款还掉一部分能好吗", "repay"),
        ("打客服电话有没有用", "call"),
        ("我去申诉行不行", "call"),
        ("然后呢", "next"),
        ("再等等会不会自己好", "wait"),
    ],
)
def test_follow_ups_about_paying_waiting_calling_and_what_next(conv, kb, question, topic):
    reply = follow_up(conv, 22, CAUSE_QUESTION, question)
    assert reply.intent == "huabei_overdue"
    expected, general = conv.followups.answer("huabei_overdue", topic)
    if general:
        expected = expected.format(title=kb.entry("huabei_overdue").title)
    assert esc(expected) in reply.text_html


def test_a_follow_up_answer_depends_on_the_cause(conv):
    debt = follow_up(conv, 23, "网贷和信用卡欠太多了，借呗就被关了", "先还一部分能恢复吗")
    assert debt.intent == "high_debt"
    assert esc(conv.followups.causes["high_debt"]["repay"]) in debt.text_html
    risk = follow_up(conv, 24, "换了手机号以后借呗就不能用了", "打客服电话有用吗")
    assert risk.intent == "account_risk"
    assert "客服热线" in risk.text_html
    record = follow_up(conv, 25, "征信上有逾期记录，借呗被关了", "要等多久")
    assert record.intent == "credit_record" and "5年" in record.text_html


def test_follow_up_texts_state_no_figure_the_knowledge_does_not_have(conv, kb):
    """Every number in a follow-up text is in the knowledge entries too (nothing invented:
    no waiting times, no phone numbers)."""
    known = " ".join(e.explanation + e.solution for e in kb.entries())
    f = conv.followups
    texts_ = [*f.general.values(), *(t for by in f.causes.values() for t in by.values())]
    for text in texts_:
        for number in re.findall(r"\d+", text):
            assert number in known, text
    assert all("没有具体" in f.answer(c, "wait")[0] for c in f.causes if "wait" in f.causes[c])


def test_how_long_without_a_cause_discussed_says_what_decides(conv):
    [reply] = conv.on_text(26, "要等多长时间")
    assert "重新评估" in reply.text_html and "没有具体的说法" in reply.text_html
    assert datas(reply) == ["u:c", "u:ds"]


# -- the diagnosis never overclaims ---------------------------------------------------------


def run_diagnosis(conv, chat, answers: list[str]) -> tuple[Reply, list[tuple[str, str]]]:
    """Answer with ``answers`` in turn until the result; the result and (question id, label)
    of every answer."""
    [reply] = conv.diagnose(chat)
    asked = []
    while not reply.text_html.startswith(texts.DIAG_RESULT):
        question = next(q for q in conv.questions if esc(q.text) in reply.text_html)
        label = answers[len(asked) % len(answers)]
        asked.append((question.id, label))
        [reply] = press(conv, chat, reply, label)
    return reply, asked


def test_all_no_singles_out_no_cause_and_never_advises(conv, kb):
    reply, asked = run_diagnosis(conv, 31, [texts.BTN_NO])
    text = to_plain_text(reply.text_html)
    assert texts.DIAG_NONE_WHY["no"] in text
    assert "最可能" not in text and "建议您先这样处理" not in text
    assert "%" not in text
    assert "没有直接问到" in text and "不代表更可能" in text  # never-asked causes said as such
    assert "支付宝App里联系官方客服" in text
    assert reply.intent is None
    by_id = {q.id: q for q in conv.questions}
    denied = {c for qid, _ in asked for c in by_id[qid].yes}
    offered = set(cause_buttons(reply))
    assert offered and not offered & denied  # only causes no 否 answer spoke against


def test_alternating_no_and_unsure_singles_out_no_cause(conv):
    reply, _ = run_diagnosis(conv, 32, [texts.BTN_NO, texts.BTN_UNSURE])
    text = to_plain_text(reply.text_html)
    assert texts.DIAG_NONE_WHY["mixed"] in text
    assert "您回答“不确定”的原因" in text
    assert "建议您先这样处理" not in text and "最可能" not in text


def test_all_unsure_leaves_every_cause_level(conv):
    reply, _ = run_diagnosis(conv, 33, [texts.BTN_UNSURE])
    text = to_plain_text(reply.text_html)
    assert texts.DIAG_NONE_WHY["unsure"] in text
    assert "建议您先这样处理" not in text


def test_answers_that_fit_several_causes_name_them_without_picking_one(conv):
    reply, _ = run_diagnosis(conv, 34, [texts.BTN_YES])
    text = to_plain_text(reply.text_html)
    assert "还分不出哪一个更可能" in text
    assert "建议您先这样处理" not in text
    assert len([d for d in datas(reply) if d.startswith("u:e:")]) >= 2


def test_a_clear_answer_says_how_sure_in_words_and_advises_on_that_cause(conv, kb):
    [reply] = conv.diagnose(35)
    while not reply.text_html.startswith(texts.DIAG_RESULT):
        question = next(q for q in conv.questions if esc(q.text) in reply.text_html)
        label = texts.BTN_YES if "misuse" in question.yes else texts.BTN_NO
        [reply] = press(conv, 35, reply, label)
    text = to_plain_text(reply.text_html)
    assert reply.intent == "misuse"
    assert texts.DIAG_CONFIDENCE["high"] in text and "%" not in text
    assert kb.entry("misuse").solution in text
    # and it is the context of a follow-up
    [after] = conv.on_text(35, "要等多久")
    assert after.intent == "misuse"


def test_causes_rejected_before_are_never_advised_by_the_diagnosis(conv, kb):
    [answer] = conv.on_text(36, "身份证过期了借呗就用不了了")
    press(conv, 36, answer, texts.BTN_NOT_MINE)
    [reply] = conv.diagnose(36)
    while not reply.text_html.startswith(texts.DIAG_RESULT):
        question = next(q for q in conv.questions if esc(q.text) in reply.text_html)
        label = texts.BTN_YES if "id_expired" in question.yes else texts.BTN_UNSURE
        [reply] = press(conv, 36, reply, label)
    assert reply.intent != "id_expired"
    assert "u:e:id_expired" not in datas(reply)


# -- "这不是我的情况" -----------------------------------------------------------------------


def cause_buttons(reply: Reply) -> list[str]:
    return [d[4:] for d in datas(reply) if d.startswith("u:e:")]


def test_three_rejections_in_a_row_never_offer_a_rejected_cause_again(conv, kb):
    [reply] = conv.on_text(41, CAUSE_QUESTION)
    rejected: list[str] = []
    for _ in range(3):
        rejected.append(reply.intent)
        [others] = press(conv, 41, reply, texts.BTN_NOT_MINE)
        offered = cause_buttons(others)
        assert offered and not set(offered) & set(rejected)
        [reply] = conv.on_button(41, f"u:e:{offered[0]}")
        assert not set(cause_buttons(reply)) & set(rejected)  # its related causes neither
    [listing] = conv.on_button(41, "u:c")
    assert not set(cause_buttons(listing)) & set(rejected)
    assert len(cause_buttons(listing)) == 11 - 3
    assert listing.text_html == texts.CAUSES_LEFT.format(n=3)


@pytest.mark.parametrize(
    "typed", ["这不是我的情况", "不是这个原因啊", "這不是我的情況", "我不是这种情况"]
)
def test_typed_not_mine_is_understood(conv, typed):
    conv.on_text(42, CAUSE_QUESTION)
    [reply] = conv.on_text(42, typed)
    assert to_plain_text(reply.text_html) in (
        to_plain_text(to_script(Reply(t), "tw").text_html) if "這" in typed else t
        for t in (texts.NOT_MINE, texts.NOT_MINE_NONE)
    )
    offered = cause_buttons(reply)
    assert offered and "huabei_overdue" not in offered


def test_typed_none_of_these_rejects_everything_offered_until_nothing_is_left(conv, kb):
    [answer] = conv.on_text(43, CAUSE_QUESTION)
    shown = {answer.intent, *cause_buttons(answer)}
    [reply] = conv.on_text(43, "都不是啊")
    assert not set(cause_buttons(reply)) & shown
    assert len(cause_buttons(reply)) == 11 - len(shown)
    [last] = conv.on_text(43, "上面这些都不是")
    text = to_plain_text(last.text_html)
    assert last.text_html == texts.NOT_MINE_NOTHING_LEFT
    assert "支付宝App里联系官方客服" in text
    assert not re.search(r"\d{3,}", text)  # no phone number
    assert cause_buttons(last) == []
    [again] = conv.on_text(43, "都不是")
    assert again.text_html == texts.NOT_MINE_NOTHING_LEFT
    # the overview now says so too, instead of an empty list
    [overview] = conv.on_text(43, "借呗被关了")
    assert cause_buttons(overview) == [] and texts.NOT_MINE_NOTHING_LEFT in overview.text_html
    # /start begins again with every cause
    [start] = conv.on_text(43, "/start")
    assert len(cause_buttons(start)) == 11


def test_typed_none_of_these_without_anything_shown_asks_for_the_situation(conv):
    [reply] = conv.on_text(44, "都不是")
    assert reply.text_html == texts.NOT_MINE_NOTHING_SHOWN


# -- scams ----------------------------------------------------------------------------------

SCAM_QUESTIONS = [
    "有人打电话说能帮我恢复借呗额度，要先交手续费，可信吗",
    "有个人说给他转一笔钱就能让我的借呗重新开通",
    "对方说先交点费用能把我的额度解冻，这个靠谱吗",
    "說可以幫我把借唄額度弄回來，要我先轉帳",
]


@pytest.mark.parametrize("question", SCAM_QUESTIONS)
def test_a_fee_to_restore_jiebei_gets_a_clear_safety_warning(conv, question):
    [reply] = conv.on_text(51, question)
    text = to_plain_text(reply.text_html)
    assert reply.intent == "scam_warning"
    traditional = "說" in question
    for words in ("诈骗", "转账", "验证码", "屏幕共享", "官方渠道"):
        assert (to_script(Reply(words), "tw").text_html if traditional else words) in text
    assert datas(reply) == ["u:c", "u:ds"]


@pytest.mark.parametrize(
    "question",
    [
        "有人私聊我说花点钱能把被关的借呗重新打开",
        "有个老乡说他认识蚂蚁的人，给点好处费就能让借呗恢复",
        "我妈接了个电话 对方说她借呗要注销不然影响征信 让她转钱",
        "一个陌生号码打来说他们是官方的，能帮我把借呗的额度找回来，但要先缴纳一笔费用",
    ],
)
def test_more_fee_offers_in_other_words_get_the_warning(conv, question):
    [reply] = conv.on_text(52, question)
    assert reply.intent == "scam_warning"


def test_a_cause_that_mentions_a_transfer_is_still_that_cause(conv):
    [reply] = conv.on_text(53, "借呗借的钱我转账给朋友拿去炒股了，然后借呗就被关了")
    assert reply.intent == "misuse"


# -- the user's script ----------------------------------------------------------------------


def test_a_traditional_writer_gets_traditional_replies_and_buttons_until_simplified(conv):
    [reply] = conv.on_text(61, "身份證過期了，借唄就不能用了")
    assert reply.intent == "id_expired"
    assert "身份證" in reply.text_html and "身份证" not in reply.text_html
    labels = [b.label for b in reply.button_list()]
    assert "🤔 這不是我的情況" in labels and "🔍 幫我排查原因" in labels
    assert "u:ds" in datas(reply)  # callback data is unchanged
    [follow] = conv.on_text(61, "要等多久")  # no telling characters: stays Traditional
    assert "資訊" in follow.text_html or "這裡" in follow.text_html
    [pressed] = conv.on_button(61, "u:ds")
    assert "問題 1" in pressed.text_html
    [cancel] = press(conv, 61, pressed, "取消排查")
    assert "已取消排查" in cancel.text_html
    [back] = conv.on_text(61, "借呗被关了")
    assert "借呗" in back.text_html and "借唄" not in back.text_html


def test_hong_kong_wording_gets_hong_kong_characters(conv):
    [reply] = conv.on_text(62, "我嘅借唄突然用唔到，點算好")
    assert reply.intent == "overview"
    assert reply.text_html == to_script(conv.on_text(63, "借呗突然用不了了")[0], "hk").text_html
    # OpenCC's Hong Kong and Taiwan forms differ (賬户 / 賬戶, 網絡 / 網路)
    [risk] = conv.on_text(62, "換咗手機號碼之後借唄冇咗")
    assert "賬户" in risk.text_html and "賬戶" not in risk.text_html


# -- other products and off-topic chat ------------------------------------------------------


OTHER_PRODUCT_QUESTIONS = [
    ("花呗怎么提额", "花呗"),
    ("微信分付用不了了", "微信分付"),
    ("京东白条被停了咋办", "京东白条"),
]


@pytest.mark.parametrize(("question", "product"), OTHER_PRODUCT_QUESTIONS)
def test_another_product_gets_a_short_reply_naming_it(conv, question, product):
    [reply] = conv.on_text(71, question)
    [(_, name, where)] = [p for p in texts.OTHER_PRODUCTS if p[1] == product]
    assert reply.text_html == texts.OTHER_PRODUCT.format(product=name, where=where)
    assert datas(reply) == ["u:c", "u:ds"]


def test_no_reply_uses_internal_wording(conv, kb):
    for entry in kb.entries():
        assert "资料里" not in entry.explanation + entry.solution, entry.slug
        assert "只提到" not in entry.explanation + entry.solution, entry.slug


def test_off_topic_chat_gets_a_short_friendly_reply(conv, kb):
    [reply] = conv.on_text(72, "明天天气如何")
    assert reply.text_html == texts.OFF_TOPIC
    assert datas(reply) == ["u:c", "u:ds"]
    assert "工作人员" not in reply.text_html


def test_a_longer_follow_up_naming_the_product_of_the_cause_is_still_a_follow_up(conv):
    reply = follow_up(conv, 27, CAUSE_QUESTION, "她说花呗上个月已经还清了，还清了是不是就能用了")
    assert reply.intent == "huabei_overdue"
    assert esc(conv.followups.causes["huabei_overdue"]["repay"]) in reply.text_html


@pytest.mark.parametrize("question", ["借呗逾期了会不会打电话给我家里人", SCAM_QUESTIONS[0]])
def test_a_clear_near_miss_after_a_cause_is_answered_as_itself(conv, question):
    reply = follow_up(conv, 28, CAUSE_QUESTION, question)
    assert reply.intent != "huabei_overdue"


def test_a_second_message_is_read_in_the_light_of_the_first(conv):
    """A dictated fragment that matches nothing alone, after the user said 借呗 stopped."""
    fragment = "就是我上礼拜刚把号码换了"
    assert conv.kb.match(fragment).intent is None  # alone it says nothing about 借呗
    [first] = conv.on_text(29, "嗯 我那个借呗 前两天还好好的 今天打开就没有了")
    assert first.intent == "overview"
    [reply] = conv.on_text(29, fragment)
    assert reply.intent == "account_risk"
    [fresh] = conv.on_text(30, fragment)  # without that first message: the honest fallback
    assert fresh.intent is None


def test_how_long_right_after_the_overview_does_not_repeat_it(conv):
    [overview] = conv.on_text(31, "借呗被关了")
    [reply] = conv.on_text(31, "那要等多久啊")
    assert reply.text_html != overview.text_html
    assert esc(conv.followups.general["wait"]) in reply.text_html
