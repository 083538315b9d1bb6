"""knowledge/followups.py: topics of a follow-up question and the shipped answers."""

from __future__ import annotations

import pytest

from knowledge.entries import CAUSE_SLUGS
from knowledge.followups import TOPICS, FollowUpError, load_followups, parse_followups


@pytest.fixture(scope="module")
def followups():
    return load_followups()


@pytest.mark.parametrize(
    ("folded", "topics"),
    [
        ("大概要等多长时间", ["wait"]),
        ("还清了是不是就能用了", ["repay", "next"]),
        ("打客服电话有用吗", ["call"]),
        ("然后呢", ["next"]),
        ("那怎么办", []),
    ],
)
def test_topics(followups, folded, topics):
    assert followups.topics(folded) == topics


def test_every_cause_and_topic_has_an_answer(followups):
    for cause in CAUSE_SLUGS:
        for topic in TOPICS:
            text, general = followups.answer(cause, topic)
            assert text.strip()
            assert general == (topic not in followups.causes.get(cause, {}))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("version: 2", "version 1"),
        ("version: 1\ncues: []", "field 'cues'"),
        ("version: 1\ncues: {soon: [x]}", "unknown topic 'soon'"),
        ("version: 1\ncues: {}\ngeneral: {wait: x}", "topic 'repay' has no text"),
        (
            "version: 1\ncues: {}\ngeneral: {repay: a, wait: b, call: c, next: d}\n"
            "causes: {nope: {wait: x}}",
            "unknown cause 'nope'",
        ),
        (
            "version: 1\ncues: {}\ngeneral: {repay: a, wait: b, call: c, next: d}\n"
            "causes: {misuse: {wait: ''}}",
            "causes.misuse.wait",
        ),
    ],
)
def test_invalid_documents_are_refused_with_the_place(doc, message):
    with pytest.raises(FollowUpError, match=message):
        parse_followups(doc)
