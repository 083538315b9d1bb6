"""The conversation state in SQLite (bot/plaindata.py, Conversation(persist=True)): written
through in batches, read back by a new Conversation on the same file as after a restart."""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Literal

import pytest

from bot import texts
from bot.conversation import Conversation, _ChatState
from bot.plaindata import PlainDataError, from_plain, to_plain
from knowledge.base import KnowledgeBase
from knowledge.store import Store

CAUSE_QUESTION = "花呗晚还了几天，借呗就用不了了"


@dataclasses.dataclass
class Inner:
    slug: str
    others: tuple[str, ...] = ()


@dataclasses.dataclass
class Outer:
    seen: float
    name: str | None = None
    refs: OrderedDict[int, Inner] = dataclasses.field(default_factory=OrderedDict)
    tags: set[str] = dataclasses.field(default_factory=set)
    pairs: list[tuple[str, Literal["yes", "no"]]] = dataclasses.field(default_factory=list)
    inner: Inner | None = None


def test_plain_data_round_trips_through_json():
    value = Outer(
        1.5,
        "x",
        OrderedDict([(3, Inner("a", ("b", "c"))), (1, Inner("d"))]),
        {"z", "y"},
        [("q1", "yes")],
        Inner("e"),
    )
    back = from_plain(Outer, json.loads(json.dumps(to_plain(value))))
    assert back == value and list(back.refs) == [3, 1]


def test_plain_data_reads_old_and_new_shapes_and_refuses_nonsense():
    assert from_plain(Outer, {"seen": 2, "gone_field": 1}) == Outer(2.0)  # fields come and go
    for bad in ({"seen": "x"}, {"seen": 1, "pairs": [["q", "maybe"]]}, [], {"seen": 1, "tags": 3}):
        with pytest.raises((PlainDataError, TypeError)):
            from_plain(Outer, bad)


def _conversation(path, pipeline, clock=None) -> tuple[KnowledgeBase, Conversation]:
    kb = KnowledgeBase(Store(path), pipeline)
    kwargs = {"clock": clock} if clock else {}
    return kb, Conversation(kb, persist=True, **kwargs)


def _restart(kb: KnowledgeBase, conv: Conversation, path, pipeline, clock=None):
    conv.flush_states()
    kb.store.close()
    return _conversation(path, pipeline, clock)


def test_a_diagnosis_and_the_answer_buttons_survive_a_restart(tmp_path, pipeline):
    path = tmp_path / "kb.db"
    kb, conv = _conversation(path, pipeline)
    [answer] = conv.on_text(1, CAUSE_QUESTION)
    [not_mine] = [b.data for b in answer.button_list() if b.label == texts.BTN_NOT_MINE]
    [helpful] = [b.data for b in answer.button_list() if b.label == texts.BTN_HELPFUL]
    before_not_mine = conv.on_button(1, not_mine)
    [question] = conv.diagnose(2)
    [yes] = [b.data for b in question.button_list() if b.label == texts.BTN_YES]
    [second] = conv.on_button(2, yes)
    expected_third = conv.on_button(2, second.button_list()[1].data)  # 否, in memory only
    # the same again in a fresh run, but restarted between the answers
    kb.store.close()
    path2 = tmp_path / "kb2.db"
    kb, conv = _conversation(path2, pipeline)
    [answer] = conv.on_text(1, CAUSE_QUESTION)
    [question] = conv.diagnose(2)
    token = question.button_list()[0].data.split(":")[2]
    conv.on_button(2, f"u:d:{token}:0:y")
    kb, conv = _restart(kb, conv, path2, pipeline)

    [third] = conv.on_button(2, f"u:d:{token}:1:n")
    assert third.text_html == expected_third[0].text_html
    assert [b.label for b in third.button_list()] == [
        b.label for b in expected_third[0].button_list()
    ]
    assert conv.on_text(1, "那怎么办")[0].intent == "huabei_overdue"  # the last cause
    assert conv.on_button(1, not_mine) == before_not_mine
    conv.on_button(1, helpful)
    assert kb.store.stats()["feedback"] == {"huabei_overdue": (1, 0)}
    # what the user rejected, and the script they write in, survive a restart too
    conv.on_text(3, "身份證過期了，借唄就不能用了")
    conv.on_text(3, "這不是我的情況")
    kb, conv = _restart(kb, conv, path2, pipeline)
    assert "u:e:huabei_overdue" not in [b.data for b in conv.on_button(1, "u:c")[0].button_list()]
    [listing] = conv.on_button(3, "u:c")
    assert "u:e:id_expired" not in [b.data for b in listing.button_list()]
    assert "🔍 幫我排查原因" in [b.label for b in listing.button_list()]  # still Traditional
    kb.store.close()


def test_saved_state_is_bounded_and_expires(tmp_path, pipeline):
    path = tmp_path / "kb.db"
    now = [1_000_000.0]
    kb = KnowledgeBase(Store(path), pipeline)
    conv = Conversation(kb, persist=True, max_chats=3, chat_ttl=100, clock=lambda: now[0])
    for chat in range(1, 6):
        conv.on_text(chat, CAUSE_QUESTION)
        now[0] += 1
    conv.flush_states()
    saved = [r[0] for r in kb.store.db.execute("SELECT chat FROM chat_state ORDER BY seen")]
    assert saved == ["3", "4", "5"]
    conv.on_text(6, "你好")  # pushes chat 3 out; chat 6 has nothing worth remembering
    conv.flush_states()
    saved = [r[0] for r in kb.store.db.execute("SELECT chat FROM chat_state ORDER BY seen")]
    assert saved == ["4", "5"]

    now[0] += 98.5  # chat 4 was seen 100.5 s ago, chat 5 99.5 s ago
    kb.store.close()
    kb = KnowledgeBase(Store(path), pipeline)
    conv = Conversation(kb, persist=True, chat_ttl=100, clock=lambda: now[0])
    assert conv.chats() == 1
    assert conv.on_text(5, "那怎么办")[0].intent == "huabei_overdue"
    assert conv.on_text(4, "那怎么办")[0].intent != "huabei_overdue"
    kb.store.close()


def test_a_damaged_saved_state_starts_that_chat_afresh(tmp_path, pipeline, caplog):
    path = tmp_path / "kb.db"
    kb, conv = _conversation(path, pipeline)
    conv.on_text(1, CAUSE_QUESTION)
    conv.on_text(2, CAUSE_QUESTION)
    conv.flush_states()
    kb.store.db.execute("UPDATE chat_state SET state = '{\"answers\": 5}' WHERE chat = '1'")
    kb, conv = _restart(kb, conv, path, pipeline)
    assert conv.chats() == 1
    assert "could not read a saved conversation state" in caplog.text
    assert conv.on_text(2, "那怎么办")[0].intent == "huabei_overdue"
    kb.store.close()


def test_every_field_of_the_chat_state_is_persisted():
    """A field added to _ChatState is stored with no more work: every field is plain data."""
    names = {f.name for f in dataclasses.fields(_ChatState)}
    assert set(to_plain(_ChatState(seen=0.0))) == names


def test_a_state_that_cannot_be_stored_does_not_stop_the_others(tmp_path, pipeline, caplog):
    path = tmp_path / "kb.db"
    kb, conv = _conversation(path, pipeline)
    conv.on_text(1, CAUSE_QUESTION)
    conv.on_text(2, CAUSE_QUESTION)
    conv._chats[1].last_cause = object()  # what a careless new field could hold
    assert conv.flush_states() == 1
    assert "could not save a conversation state" in caplog.text
    assert [r[0] for r in kb.store.db.execute("SELECT chat FROM chat_state")] == ["2"]
    kb.store.close()


def test_a_resumed_diagnosis_is_the_one_saved():
    from knowledge.diagnosis import Diagnosis

    d = Diagnosis.start()
    d.answer("yes")
    d.answer("no")
    same = Diagnosis.resume(d.questions, d.posterior, d.asked, d.current.id)
    assert (same.current, same.posterior, same.asked) == (d.current, d.posterior, d.asked)
    same.answer("unsure")
    d.answer("unsure")
    assert same.current == d.current
    # a question removed from the file since: the next one is picked afresh
    renamed = Diagnosis.resume(d.questions, d.posterior, d.asked, "no-such-question")
    assert renamed.current == d.current
