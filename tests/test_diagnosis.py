"""knowledge/diagnosis.py with the shipped questions: Bayes updates, question choice, stopping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.diagnosis import (
    ANSWERS,
    MAX_QUESTIONS,
    P_MAYBE,
    P_OTHER,
    P_YES,
    STOP_POSTERIOR,
    Diagnosis,
    DiagnosisError,
    Question,
    entropy,
    information_gain,
    load_questions,
    parse_questions,
    update,
    verdict,
)
from knowledge.entries import CAUSE_SLUGS

UNIFORM = {c: 1 / len(CAUSE_SLUGS) for c in CAUSE_SLUGS}


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions()


def truthful(cause: str):
    """A user whose cause is ``cause`` says 是 where that is at least as likely as not."""
    return lambda q: "yes" if q.p_yes(cause) >= 0.5 else "no"


def run(d: Diagnosis, answer) -> list[str]:
    asked = []
    while not d.done:
        asked.append(d.current.id)
        d.answer(answer(d.current))
    return asked


def test_shipped_questions_are_valid_and_cover_every_cause(questions):
    assert len(questions) >= MAX_QUESTIONS
    assert len({q.id for q in questions}) == len(questions)
    named = set().union(*(q.yes for q in questions))
    assert named == set(CAUSE_SLUGS)
    assert all(q.text.strip() for q in questions)


def test_likelihoods_follow_the_yes_and_maybe_lists():
    q = Question("q", "?", frozenset({"misuse"}), frozenset({"high_debt"}))
    assert q.p_yes("misuse") == P_YES == 0.85
    assert q.p_yes("high_debt") == P_MAYBE == 0.5
    assert q.p_yes("inactive") == P_OTHER == 0.1


def test_bayes_update_by_hand():
    q = Question("q", "?", frozenset({"misuse"}), frozenset())
    after_yes = update(UNIFORM, q, "yes")
    assert after_yes["misuse"] == pytest.approx(0.85 / (0.85 + 10 * 0.1))
    assert after_yes["inactive"] == pytest.approx(0.1 / (0.85 + 10 * 0.1))
    after_no = update(UNIFORM, q, "no")
    assert after_no["misuse"] == pytest.approx(0.15 / (0.15 + 10 * 0.9))
    assert math.fsum(after_yes.values()) == pytest.approx(1.0)
    assert math.fsum(after_no.values()) == pytest.approx(1.0)
    assert update(UNIFORM, q, "unsure") == UNIFORM


def test_first_question_has_the_greatest_expected_information_gain(questions):
    d = Diagnosis.start(questions)
    gains = {q.id: information_gain(UNIFORM, q) for q in questions}
    assert d.current is not None
    assert gains[d.current.id] == pytest.approx(max(gains.values()))
    assert all(g >= -1e-12 for g in gains.values())
    assert entropy(UNIFORM.values()) == pytest.approx(math.log2(len(CAUSE_SLUGS)))


@pytest.mark.parametrize("cause", CAUSE_SLUGS)
def test_a_truthful_user_ends_with_the_cause_among_the_top_two(questions, cause):
    d = Diagnosis.start(questions)
    asked = run(d, truthful(cause))
    assert len(asked) == len(set(asked)) <= MAX_QUESTIONS
    assert cause in [c for c, _ in d.result()[:2]]


def test_most_causes_are_found_first(questions):
    found = 0
    for cause in CAUSE_SLUGS:
        d = Diagnosis.start(questions)
        run(d, truthful(cause))
        found += d.result()[0][0] == cause
    assert found >= len(CAUSE_SLUGS) - 2


def test_stops_as_soon_as_the_top_cause_is_likely_enough(questions):
    d = Diagnosis.start(questions)
    seen_before_stop = []
    while not d.done:
        seen_before_stop.append(d.ranked()[0][1])
        d.answer(truthful("id_expired")(d.current))
    assert d.ranked()[0][1] >= STOP_POSTERIOR or d.step == MAX_QUESTIONS
    assert all(p < STOP_POSTERIOR for p in seen_before_stop)


def test_unsure_answers_change_nothing_and_stop_after_the_maximum(questions):
    d = Diagnosis.start(questions)
    asked = run(d, lambda q: "unsure")
    assert len(asked) == MAX_QUESTIONS == d.step
    assert d.posterior == pytest.approx(UNIFORM)


def test_stops_when_no_question_is_left():
    only = [Question("q", "?", frozenset({"misuse"}), frozenset())]
    d = Diagnosis.start(only)
    assert d.answer("no") is None
    assert d.done and d.step == 1
    with pytest.raises(ValueError):
        d.answer("yes")


def test_result_lists_the_best_first_and_drops_the_unlikely(questions):
    d = Diagnosis.start(questions)
    run(d, truthful("account_risk"))
    result = d.result()
    assert result[0][0] == "account_risk"
    assert [p for _, p in result] == sorted((p for _, p in result), reverse=True)
    assert all(p >= 0.05 for _, p in result[1:])


def test_a_prior_is_normalised_and_used(questions):
    d = Diagnosis.start(
        questions, prior={c: (5.0 if c == "maintenance" else 1.0) for c in CAUSE_SLUGS}
    )
    assert sum(d.posterior.values()) == pytest.approx(1.0)
    assert d.ranked()[0][0] == "maintenance"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nquestions: [{id: a, text: b}]", "version"),
        ("version: 1\nquestions: []", "questions"),
        ("version: 1\nquestions: [{id: a, text: b, 'yes': [nope]}]", "unknown cause 'nope'"),
        ("version: 1\nquestions: [{id: a, text: b}, {id: a, text: c}]", "duplicate"),
        ("version: 1\nquestions: [{id: a, text: ''}]", "'text'"),
        ("version: 1\nquestions: [{id: a, text: b, 'yes': [misuse], maybe: [misuse]}]", "both"),
        ("version: [1", "YAML"),
    ],
)
def test_invalid_questions_are_refused_with_a_reason(text, message):
    with pytest.raises(DiagnosisError, match=message):
        parse_questions(text)


def test_a_bare_yes_key_is_understood():
    # YAML 1.1 reads an unquoted `yes:` key as the boolean True.
    [q] = parse_questions("version: 1\nquestions: [{id: a, text: b, yes: [misuse]}]")
    assert q.yes == {"misuse"}


# -- the verdict: what the answers allow us to say ------------------------------------------


def finish(answers: list[str]) -> Diagnosis:
    d = Diagnosis.start()
    n = 0
    while not d.done:
        d.answer(answers[n % len(answers)])
        n += 1
    return d


def test_all_no_singles_out_nothing_and_says_which_causes_were_never_asked():
    d = finish(["no"])
    v = verdict(d)
    assert v.kind == "none" and v.confidence is None
    assert v.unasked  # the questions left some causes untouched
    assert not set(v.causes) & set(v.denied)
    by_id = {q.id: q for q in d.questions}
    assert set(v.denied) == {c for qid, _ in d.asked for c in by_id[qid].yes}


def test_unsure_and_no_single_out_nothing():
    assert verdict(finish(["no", "unsure"])).kind == "none"
    v = verdict(finish(["unsure"]))
    assert v.kind == "none" and not v.denied and len(v.causes) == len(CAUSE_SLUGS)


def test_yes_to_questions_of_several_causes_names_them_all():
    v = verdict(finish(["yes"]))
    assert v.kind == "several" and len(v.causes) >= 2


def test_a_yes_that_points_at_one_cause_is_clear_and_says_how_sure():
    d = Diagnosis.start()
    while not d.done:
        d.answer("yes" if "misuse" in d.current.yes else "no")
    v = verdict(d)
    assert v.kind == "clear" and v.causes == ("misuse",) and v.confidence == "high"


def test_rejected_causes_count_as_denied():
    d = Diagnosis.start()
    while not d.done:
        d.answer("yes" if "id_expired" in d.current.yes else "unsure")
    assert verdict(d).causes == ("id_expired",)
    v = verdict(d, rejected=["id_expired"])
    assert "id_expired" in v.denied and "id_expired" not in v.causes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(ANSWERS), min_size=MAX_QUESTIONS, max_size=MAX_QUESTIONS))
def test_no_answers_ever_single_out_a_cause_they_denied_or_never_asked(answers):
    d = finish(answers)
    v = verdict(d)
    by_id = {q.id: q for q in d.questions}
    pointed = {c for qid, a in d.asked if a == "yes" for c in by_id[qid].yes}
    spoken_against = {c for qid, a in d.asked if a == "no" for c in by_id[qid].yes}
    assert not set(v.causes) & set(v.denied)
    if v.kind in ("clear", "several"):
        assert set(v.causes) <= pointed  # only causes a 是 answer pointed at ...
        assert not set(v.causes) & spoken_against  # ... and no 否 answer spoke against
    else:
        assert pointed <= spoken_against  # a 是 answer alone always gets its cause named
        assert set(v.mixed) == pointed & spoken_against


def test_a_cause_with_a_yes_and_a_no_is_not_singled_out():
    """是 to "borrowing often" but 否 to "repaying early": not 频繁借还 for certain."""
    d = Diagnosis.start()
    while not d.done:
        d.answer("yes" if d.current.id == "borrow_often" else "no")
    assert {"borrow_often", "quick_repay"} <= {qid for qid, _ in d.asked}
    v = verdict(d)
    assert v.kind == "none" and v.mixed == ("frequent_prepay",)
    assert v.causes[0] == "frequent_prepay"  # still open, first to look at, but not "likely"
