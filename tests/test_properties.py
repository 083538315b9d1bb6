"""Property tests (hypothesis): any Unicode string, up to 100,000 characters, through
normalisation, segmentation, matching and the conversation.

Inputs mix the domain's own words with what breaks text code: control characters, zero-width
and bidi marks, lone surrogates (JSON's "\\ud800" decodes to one), private-use characters,
characters that NFKC expands tenfold, emoji sequences, full-width and Traditional forms, other
scripts. Whatever comes in, nothing raises, the results are well-formed, and the work done is
bounded: the normalised text (all that segmentation and matching ever see) has a length
bounded by a constant, however long the message.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.conversation import Conversation
from bot.render import MAX_CALLBACK_BYTES
from knowledge.base import KnowledgeBase
from knowledge.entries import shipped_entries
from knowledge.matcher import TOP_N, Matcher
from knowledge.store import Store
from knowledge.text import MAX_MATCH_CHARS
from tests.botapi import format_text

MAX_CHARS = 100_000
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DOMAIN = [
    "借呗", "花呗", "逾期", "额度", "关闭", "停用", "被关了", "没有", "不", "怎么办", "吗",
    "身份证", "过期", "风控", "网贷", "信用", "征信", "提前还款", "维护", "借唄", "額度",
    "ｊｂ", "JB", "jiebei", "huabei", "？", "！", "，", "。", "...", " ", "\n", "\t",
]  # fmt: skip
NASTY = (
    "\x00\x01\x07\x08\x1b\x7f\x85\u2028\u2029"  # control characters, separators
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"  # zero-width, soft hyphen
    "\u202a\u202e\u2066\u2069\u061c"  # bidi overrides and isolates
    "\ud800\udbff\udc00\udfff"  # lone surrogates
    "\ue000\uf8ff\U000f0000\U0010fffd"  # private use
    "\ufdfa\ufdfb\u3300\u33ff\u1e9b\u0345\u2474"  # NFKC expands these (up to 18 characters)
    "😀👍🇨🇳🏽\u20e3\ufe0f"  # emoji, flag halves, skin tone, keycap, variation selector
    "\u0301\u0302\u0303\u0489"  # combining marks
    "ＡＢＣ１２３ﾃｽﾄ㈱"  # full-width, half-width, compatibility
    "ءمرحبا שלום привет ก่ 𠀀𪚥"  # other scripts, supplementary CJK
    "<>&\"';/\\@#*_`[]{}()"  # markup and command characters
)  # fmt: skip

any_char = st.one_of(
    st.characters(),  # every code point except surrogates
    st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Mn", "So"]),
    st.sampled_from(NASTY),
    st.sampled_from("".join(DOMAIN)),
)
# Lists of characters, not st.text: st.text folds a one_of of character strategies into one
# that leaves out surrogates.
short_text = st.lists(any_char, max_size=60).map("".join)
mixed = st.lists(st.one_of(st.sampled_from(DOMAIN), short_text), max_size=30).map("".join)
long_text = st.builds(
    lambda piece, n: (piece * n)[:MAX_CHARS],
    st.one_of(short_text.filter(bool), mixed.filter(bool)),
    st.integers(1, MAX_CHARS),
)
messages = st.one_of(short_text, mixed, long_text)


@pytest.fixture(scope="module")
def matcher(pipeline) -> Matcher:
    return Matcher(shipped_entries(), pipeline)


@pytest.fixture(scope="module")
def exhaustive(pipeline) -> Matcher:
    return Matcher(shipped_entries(), pipeline, use_index=False)


def normalised_bound(pipeline) -> int:
    """The longest a normalised message can be: the cut, grown by the longest rewrite of the
    lexicon's aliases and replacements (applied one after the other)."""
    lexicon = pipeline.lexicon
    grow = 1.0
    for table in (lexicon.aliases, lexicon.replace):
        grow *= max([1.0, *(len(v) / len(k) for k, v in table.items() if k)])
    return int(MAX_MATCH_CHARS * grow) + 1


# -- normalisation and segmentation ---------------------------------------------------------


@PROPERTY
@given(text=messages)
def test_normalise_is_plain_words_and_single_spaces_of_bounded_length(pipeline, text):
    out = pipeline.normalise(text)
    assert isinstance(out, str)
    assert len(out) <= normalised_bound(pipeline)
    assert out == out.strip() and "  " not in out
    assert re.fullmatch(r"[\w ]*", out), ascii(out[:80])
    assert out.isprintable()
    out.encode("utf-8")  # no lone surrogate survives


@PROPERTY
@given(text=messages)
def test_tokens_are_non_empty_words_bounded_by_the_normalised_text(pipeline, text):
    tokens = pipeline.tokens(text)
    normalised = pipeline.normalise(text)
    assert isinstance(tokens, list)
    assert all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in tokens)
    # every token is a word of the normalised text or one concept token for it
    assert len(tokens) <= len(normalised) + 1


# -- matching ---------------------------------------------------------------------------------


def check_match(m, text: str, slugs: set[str]) -> None:
    assert m.text == text
    assert len(m.candidates) <= TOP_N
    seen = [c.slug for c in m.candidates]
    assert len(seen) == len(set(seen)) and set(seen) <= slugs
    for c in m.candidates:
        assert 0.0 <= c.score <= 100.0, c
    assert 0.0 <= m.score <= 100.0
    # best first; when the answer is not the best-scoring entry it is moved to the front
    rest = [c.score for c in m.candidates[1:]]
    assert rest == sorted(rest, reverse=True)
    if m.intent is None:
        assert [c.score for c in m.candidates] == sorted(
            (c.score for c in m.candidates), reverse=True
        )
        assert not m.ambiguous
    else:
        assert m.intent in slugs and m.candidates[0].slug == m.intent


KNOWN_NASTY = [
    "借呗\ud800关了",
    "\ufdfa" * 5000,
    "\u200b" * MAX_CHARS,
    "没" * 1000 + "逾期",
    "借呗被关了" + "\u0301" * 3000,
    "<b>借呗</b>被<a href='x'>关</a>了 &amp; &#0; &",
]


@PROPERTY
@given(text=messages)
@example(text=KNOWN_NASTY[0])
@example(text=KNOWN_NASTY[1])
@example(text=KNOWN_NASTY[2])
@example(text=KNOWN_NASTY[3])
@example(text=KNOWN_NASTY[4])
@example(text=KNOWN_NASTY[5])
def test_match_never_raises_and_is_well_formed(matcher, exhaustive, text):
    slugs = set(matcher.slugs())
    started = time.perf_counter()
    m = matcher.match(text)
    elapsed = time.perf_counter() - started
    check_match(m, text, slugs)
    assert len(m.tokens) <= normalised_bound(matcher.pipeline) + 1
    assert elapsed < 5.0, f"{elapsed:.2f}s for {len(text)} characters"  # a safety net only
    again = matcher.match(text)
    assert again == m  # no hidden state
    full = exhaustive.match(text)  # the index gives the exhaustive scorer's answer
    assert (full.intent, full.candidates) == (m.intent, m.candidates)


def test_the_longest_messages_cost_what_a_short_one_costs(matcher):
    """Work per message is bounded: 100,000 characters are cut before any real work."""
    for piece in ("借呗被关了", "a", "😀\u200b", "\ufdfa", "\ud800借"):
        text = (piece * MAX_CHARS)[:MAX_CHARS]
        m = matcher.match(text)
        check_match(m, text, set(matcher.slugs()))
        assert len(matcher.pipeline.normalise(text)) <= normalised_bound(matcher.pipeline)


# -- the conversation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conversation(tmp_path_factory, pipeline):
    store = Store(tmp_path_factory.mktemp("props") / "kb.db")
    yield Conversation(KnowledgeBase(store, pipeline))
    store.close()


@PROPERTY
@given(text=messages, chat=st.integers(-(10**13), 10**13))
@example(text=KNOWN_NASTY[0], chat=1)
@example(text=KNOWN_NASTY[3], chat=1)
@example(text=KNOWN_NASTY[5], chat=1)
@example(text="/start\x00\ud800", chat=1)
def test_any_message_gets_well_formed_replies(conversation, text, chat):
    """Text, commands and typed diagnosis answers alike: replies, never an exception; every
    reply parses as Telegram HTML, every button's data fits in 64 bytes; the question is
    logged (lone surrogates and all)."""
    conversation.kb.store.flush_questions()
    conversation.kb.store.flush_questions()
    before = conversation.kb.store.db.execute("SELECT COUNT(*) FROM questions").fetchone()[0]
    replies = conversation.on_text(chat, text)
    assert replies
    for reply in replies:
        assert reply.text_html.strip()
        format_text(reply.text_html, "HTML", None)  # raises on broken markup
        for button in reply.button_list():
            assert button.label and 0 < len(button.data.encode()) <= MAX_CALLBACK_BYTES
    conversation.kb.store.flush_questions()
    conversation.kb.store.flush_questions()  # questions are written in batches
    after = conversation.kb.store.db.execute("SELECT COUNT(*) FROM questions").fetchone()[0]
    assert after - before <= 1


@PROPERTY
@given(
    data=st.one_of(
        st.lists(any_char, max_size=80).map("".join),
        st.from_regex(r"u:[a-z]{0,2}(:[\w:]{0,20})?", fullmatch=True),
    ),
    chat=st.integers(1, 10**6),
)
def test_any_button_data_gets_an_answer(conversation, data, chat):
    """Forged or garbled callback data: an answer (a stale-button note at worst), never an
    exception."""
    replies = conversation.on_button(chat, data)
    assert replies
    for reply in replies:
        format_text(reply.text_html, "HTML", None)
