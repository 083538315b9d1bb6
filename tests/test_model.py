"""The learned entry model (knowledge/model.py) and how the matcher blends it in.

Real jieba and rapidfuzz; the phrasings are written for these tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge import _scan
from knowledge import matcher as matcher_module
from knowledge.entries import Entry, shipped_entries
from knowledge.matcher import Matcher
from knowledge.model import EntryModel, FeatureMemo, features


def test_features_are_character_ngrams_tokens_and_token_pairs():
    f = features(["借呗", " ", "清零了"], ["JIEBEI", "STOPPED"])
    assert {"借", "借呗", "清零", "清", "清零了"} <= f
    assert "呗清" not in f and " " not in f  # n-grams stay within a word
    assert "\x01JIEBEI" in f and "\x02JIEBEI\x00STOPPED" in f


def model_of(pipeline, entries, memo=None):
    memo = memo or FeatureMemo()
    rows = []
    for i, e in enumerate(entries):
        for p in e.examples:
            words = pipeline.segment(pipeline.normalise(p))
            rows.append(
                (
                    i,
                    memo.get(p)
                    if memo.get(p) is not None
                    else memo.add(p, words, pipeline.concepts(words)),
                )
            )
    return EntryModel(rows, len(entries), memo)


def belief(pipeline, model, text):
    """The model's belief in every entry (None when it has no say)."""
    words = pipeline.segment(pipeline.normalise(text))
    found = model.scores(words, pipeline.concepts(words))
    if found is None:
        return None
    beliefs, rest, best = found
    out = np.full(model.n_entries, rest)
    out[list(beliefs)] = list(beliefs.values())
    assert out[best] == out.max()
    return out


def test_the_model_pools_the_words_of_all_examples(pipeline):
    """Each word of the question is in a different example of entry 0; entry 1 has one
    example sharing two words. Best-single-example scoring prefers entry 1, the model entry 0."""
    entries = [
        Entry("a", "a", examples=["网商贷开了", "额度作废", "店里进货", "借呗就没了"]),
        Entry("b", "b", examples=["网商贷开了借呗还在吗"]),
        Entry("c", "c", examples=["今天天气不错"]),
    ]
    model = model_of(pipeline, entries)
    p = belief(pipeline, model, "店里进货额度作废")
    assert p.argmax() == 0 and abs(p.sum() - 1) < 1e-9
    assert belief(pipeline, model, "") is None  # nothing known: the model has no say


def test_training_is_deterministic(pipeline):
    a = model_of(pipeline, shipped_entries())
    b = model_of(pipeline, shipped_entries())
    text = "支付宝换了新手机号之后借呗不让借了"
    assert np.array_equal(belief(pipeline, a, text), belief(pipeline, b, text))


def test_an_entry_the_model_ranks_high_is_a_candidate_though_no_token_is_shared(
    pipeline, monkeypatch
):
    """The question shares no token with entry x's examples, only characters (作废 / 废掉):
    rapidfuzz's index cannot retrieve x, the model brings it in, in every engine alike."""
    entries = [
        Entry("x", "作废", examples=["资格作废", "资格作废了", "作废"]),
        *[Entry(f"y{i}", "y", examples=[f"借呗用不了{w}"]) for i, w in enumerate("一二三")],
    ]
    question = "借呗废掉"
    monkeypatch.setattr(matcher_module, "MODEL_RETRIEVE", 0.3)  # its belief here: about 0.37
    found = []
    for use_index in (True, False):
        m = Matcher(entries, pipeline, use_index=use_index)
        tokens = pipeline.tokens(question)
        assert not set(tokens) & set(pipeline.tokens("资格作废了")), tokens
        fuzzy, _ = m.scores(tokens)
        assert 0 not in [i for i, _ in fuzzy]
        found.append(m.match(question).candidates)
        assert "x" in [c.slug for c in found[-1]]
    assert found[0] == found[1]


def test_the_model_changes_the_answer_where_examples_pool(pipeline, monkeypatch):
    """With the model's weight at 0 the blend is the rapidfuzz matcher; with it, a cause whose
    examples between them say everything the question says wins."""
    q = "手机丢了补办了新卡，又是换号又是换设备，借呗就停了"
    with_model = Matcher(shipped_entries(), pipeline).match(q)
    monkeypatch.setattr(matcher_module, "MODEL_WEIGHT", 0.0)
    monkeypatch.setattr(matcher_module, "MODEL_EVIDENCE", 2.0)
    without = Matcher(shipped_entries(), pipeline).match(q)
    assert with_model.intent == "account_risk"
    assert with_model.candidates[0].score > without.candidates[0].score


def test_off_topic_the_model_has_no_say(pipeline, monkeypatch):
    m = Matcher(shipped_entries(), pipeline)
    text = "推荐一个靠谱的理财产品"
    a = m.match(text)
    monkeypatch.setattr(matcher_module, "MODEL_WEIGHT", 0.0)
    b = Matcher(shipped_entries(), pipeline).match(text)
    assert a.candidates == b.candidates
    assert a.intent is None or m.entries[a.intent].kind not in ("cause", "overview")


@pytest.mark.parametrize("engine", ["numpy", "compiled search", "exhaustive"])
def test_one_entry_scored_alone_equals_the_exhaustive_scorer_to_the_bit(
    pipeline, monkeypatch, engine
):
    """The entries the model brings in are scored by ``_entry_score``, from their own examples
    (numpy) or by the compiled search with every other entry pushed below 0; its floats are
    those of the exhaustive scorer."""
    reference = Matcher(shipped_entries(), pipeline, use_index=False)
    if engine == "numpy":
        monkeypatch.setattr(matcher_module, "ENTRY_BY_SCAN", 0)
    m = Matcher(shipped_entries(), pipeline, use_index=engine != "exhaustive")
    if engine == "compiled search":
        assert m._scan is not None  # built at install: see tests/test_scan.py
    texts = ["花呗晚还了两天借呗没了", "身份证换新的了借呗还是关着", "你好", "借呗额度清零了"]
    texts += ["借呗的积分没有了", "我想把借呗关掉，怎么弄", "网贷借太多，借呗也停了"]
    for text in texts:
        q = reference._query(pipeline.tokens(text))
        adjust, _, _ = reference._adjustments(q.present)
        multiset, distinct = reference._overlaps(q)
        raw = reference._raw_exhaustive(q, multiset, distinct)
        final = np.where(raw > 0, np.clip(raw + adjust, 0.0, 100.0), 0.0)
        mine = m._query(pipeline.tokens(text))
        mine_adjust, _, _ = m._adjustments(mine.present)
        for i in range(len(m.slugs())):
            assert m._entry_score(mine, i, mine_adjust) == final[i], (text, i)


def test_compiled_dense_and_sparse_beliefs_agree(pipeline, monkeypatch):
    """The compiled sum (knowledge/_scan.c nb_scores) and the numpy fallback, with the weights
    as a matrix (small bases) or as postings: the same beliefs."""
    from knowledge import model as model_module

    compiled = model_of(pipeline, shipped_entries())
    monkeypatch.setattr(model_module, "_scan", None)
    dense = model_of(pipeline, shipped_entries())
    monkeypatch.setattr(model_module, "DENSE_MAX", 0)
    sparse = model_of(pipeline, shipped_entries())
    assert dense._dense is not None and sparse._dense is None and compiled._dense is None
    for text in ["花呗晚还了两天借呗没了", "身份证换新的了借呗还是关着", "jb额度被收回", "作废"]:
        found = [belief(pipeline, m, text) for m in (dense, sparse)]
        monkeypatch.setattr(model_module, "_scan", _scan)
        found.append(belief(pipeline, compiled, text))
        monkeypatch.setattr(model_module, "_scan", None)
        assert len({f is None for f in found}) == 1
        if found[0] is not None:
            for other in found[1:]:
                assert np.allclose(found[0], other, rtol=1e-12, atol=1e-15)
            assert abs(found[0].sum() - 1) < 1e-9


def test_the_compiled_sum_refuses_bad_arguments():
    start = np.array([0, 2, 3], dtype=np.int64)
    entry = np.array([0, 2, 1], dtype=np.int64)
    weight = np.array([1.0, 2.0, 0.5])
    beliefs, rest, best = _scan.nb_scores([0, 1], start, entry, weight, 4, 0.6)
    assert best == 2 and abs(sum(beliefs.values()) + rest - 1) < 1e-12
    assert _scan.nb_scores([], start, entry, weight, 4, 0.6) is None
    with pytest.raises(IndexError):
        _scan.nb_scores([5], start, entry, weight, 4, 0.6)
    with pytest.raises(ValueError):
        _scan.nb_scores([0], start, entry, weight, 2, 0.6)  # entry 2 of 2
    with pytest.raises(TypeError):
        _scan.nb_scores([0], start, entry, weight.astype(np.float32), 4, 0.6)


words_st = st.lists(
    st.one_of(st.just(" "), st.text(alphabet="借呗关了a b", min_size=1, max_size=4)), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(words=words_st)
def test_character_ngrams_are_those_of_each_run_of_characters(words):
    """The n-grams are those of the runs of characters the words make up: across jieba's
    word boundaries too, never across a space."""
    runs = "".join(words).split()
    expected = {r[i : i + n] for r in runs for n in (1, 2, 3) for i in range(len(r) - n + 1)}
    assert features(words, []) == expected


def test_feature_ids_are_the_ids_of_the_features(pipeline):
    model = model_of(pipeline, shipped_entries())
    for text in ["花呗晚还了两天借呗没了", "借呗 额度 作废", "jb凉了怎么办", "借呗被关了"]:
        words = pipeline.segment(pipeline.normalise(text))
        tokens = pipeline.concepts(words)
        want = sorted(model._ids[f] for f in features(words, tokens) if f in model._ids)
        assert sorted(model.feature_ids(words, tokens)) == want


def test_the_same_entries_give_the_same_model_whatever_the_memo_saw_before(pipeline):
    """The memo's ids follow its history; the model's do not: same beliefs, to the bit."""
    fresh = model_of(pipeline, shipped_entries())
    used = FeatureMemo()
    model_of(pipeline, list(reversed(shipped_entries()))[:5], used)  # another history
    again = model_of(pipeline, shipped_entries(), used)
    for text in ["花呗晚还了两天借呗没了", "借呗额度被收回了怎么办", "jb凉了"]:
        assert np.array_equal(belief(pipeline, fresh, text), belief(pipeline, again, text))


def test_a_rebuild_reads_only_new_phrases(pipeline, monkeypatch):
    """After the first build, building again with one more example reads that one only."""
    entries = shipped_entries()
    Matcher(entries, pipeline)
    read = []
    real = pipeline.normalise
    monkeypatch.setattr(pipeline, "normalise", lambda text: read.append(text) or real(text))
    entries[0].examples.append("一句新写的例句说花呗晚还借呗就停")
    Matcher(entries, pipeline)
    assert (
        read == ["一句新写的例句说花呗晚还借呗就停"] + [k for e in entries for k in e.keywords]
        or read.count("一句新写的例句说花呗晚还借呗就停") == 1
    )


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="借呗关了 a\t\u3000b", max_size=12))
def test_the_compiled_ngram_lookup_finds_what_python_finds(text):
    from knowledge import _scan
    from knowledge.model import _char_grams

    grams = _char_grams([text])
    ids = {g: n for n, g in enumerate(sorted(set(grams))[::2])}  # half of them known
    assert sorted(_scan.gram_ids(text, ids)) == sorted(ids[g] for g in grams if g in ids)


def test_a_message_phrased_exactly_like_an_example_is_that_entrys(pipeline):
    """Whatever the model learned from the other examples: an admin's correction (the
    message added as an example of another entry) takes effect."""
    entries = shipped_entries()
    question = "信用卡逾期一天借呗就关了"  # the learning-loop question of tests/test_e2e.py
    before = Matcher(entries, pipeline).match(question)
    target = "jiebei_overdue"
    assert before.intent == "credit_record"
    next(e for e in entries if e.slug == target).examples.append(question)
    after = Matcher(entries, pipeline).match(question)
    assert after.intent == target and not after.ambiguous, after.candidates


@pytest.mark.parametrize("target", ["credit_record", "jiebei_overdue", "high_debt"])
def test_where_two_entries_examples_make_the_same_tokens_the_one_written_so_wins(pipeline, target):
    """信用卡逾期借呗关闭 (credit_record) and an admin's 信用卡逾期一天借呗就关了 make the same
    tokens; each message goes to the entry with the example written exactly like it, with
    no doubt, whichever entry the admin chose."""
    entries = shipped_entries()
    shipped, taught = "信用卡逾期借呗关闭", "信用卡逾期一天借呗就关了"
    assert any(shipped in e.examples for e in entries if e.slug == "credit_record")
    assert pipeline.tokens(shipped) == pipeline.tokens(taught)
    next(e for e in entries if e.slug == target).examples.append(taught)
    matcher = Matcher(entries, pipeline)
    for text, slug in ((taught, target), (shipped, "credit_record")):
        m = matcher.match(text)
        assert m.intent == slug and not m.ambiguous, (text, m.candidates)


def test_the_compiled_beliefs_are_those_of_scores_to_the_bit(pipeline, monkeypatch):
    """EntryModel.beliefs (one compiled call: n-gram table, scratch sums, only the entries
    asked for) gives what scores (gram_ids and nb_scores) gives, with no tolerance; and the
    numpy fallback of beliefs reads the same from its own scores."""
    from knowledge import model as model_module

    model = model_of(pipeline, shipped_entries())
    assert model._compiled is not None
    texts = [p for e in shipped_entries() for p in e.examples[::7]]
    texts += ["作废", "jb 凉了 怎么办", "借呗\u3000额度  没了", "", "hello", "借借借借呗呗"]
    want = list(range(0, model.n_entries, 3))
    for text in texts:
        words = pipeline.segment(pipeline.normalise(text))
        tokens = pipeline.concepts(words)
        found = model.beliefs(words, tokens, want)
        old = model.scores(words, tokens)
        assert (found is None) == (old is None), text
        if old is None:
            continue
        beliefs, rest, best = old
        assert found == ([beliefs.get(i, rest) for i in want], rest, best, beliefs[best]), text
    monkeypatch.setattr(model_module, "_scan", None)
    fallback = model_of(pipeline, shipped_entries())
    assert fallback._compiled is None
    words = pipeline.segment(pipeline.normalise("花呗晚还了两天借呗没了"))
    tokens = pipeline.concepts(words)
    beliefs, rest, best = fallback.scores(words, tokens)
    assert fallback.beliefs(words, tokens, [best, 0]) == (
        [beliefs[best], beliefs.get(0, rest)],
        rest,
        best,
        beliefs[best],
    )


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="借呗关了 a\t\u3000b\U00020000", max_size=12),
    extra=st.lists(st.integers(0, 5), max_size=4),
    want=st.lists(st.integers(0, 3), max_size=5),
)
def test_the_compiled_model_sums_what_gram_ids_and_nb_scores_sum(text, extra, want):
    """Model.beliefs against the two functions it fuses, on any text (the n-gram table packs
    code points; astral ones included) and repeated calls (its scratch arrays are cleared)."""
    from knowledge.model import _char_grams

    grams = sorted(set(_char_grams([text])))
    ids = {g: n for n, g in enumerate(grams[::2])}  # half of them known
    n_features = len(ids) + 6
    start = np.arange(0, 2 * n_features + 1, 2, dtype=np.int64)
    entry = np.arange(2 * n_features, dtype=np.int64) * 7 % 4
    weight = np.linspace(0.1, 3.0, 2 * n_features)
    extra = [len(ids) + x for x in extra]
    model = _scan.Model(ids, start, entry, weight, 4, 0.6)
    known = sorted(set(_scan.gram_ids(text, ids)) | set(extra))
    old = _scan.nb_scores(known, start, entry, weight, 4, 0.6) if known else None
    for _ in range(2):
        found = model.beliefs(text, extra, want)
        if old is None:
            assert found is None
        else:
            beliefs, rest, best = old
            assert found == ([beliefs.get(i, rest) for i in want], rest, best, beliefs[best])


def test_the_compiled_model_refuses_bad_arguments():
    start = np.array([0, 2, 3], dtype=np.int64)
    entry = np.array([0, 2, 1], dtype=np.int64)
    weight = np.array([1.0, 2.0, 0.5])
    model = _scan.Model({"借": 0}, start, entry, weight, 4, 0.6)
    assert model.beliefs("借", [1], [2])[2] == 2
    with pytest.raises(IndexError):
        model.beliefs("借", [2], [])  # feature 2 of 2
    with pytest.raises(IndexError):
        model.beliefs("借", [], [4])  # entry 4 of 4
    with pytest.raises(TypeError):
        model.beliefs("借", (1,), [])
    with pytest.raises(ValueError):
        _scan.Model({"借": 0}, start, entry, weight, 2, 0.6)  # entry 2 of 2
    with pytest.raises(ValueError):
        _scan.Model({"借呗关了": 0}, start, entry, weight, 4, 0.6)  # not an n-gram of 1-3
    with pytest.raises(IndexError):
        _scan.Model({"借": 2}, start, entry, weight, 4, 0.6)
    with pytest.raises(TypeError):
        _scan.Model({"借": 0}, start, entry, weight.astype(np.float32), 4, 0.6)
    with pytest.raises(ValueError):
        _scan.Model.__new__(_scan.Model).beliefs("借", [], [])  # never initialised
