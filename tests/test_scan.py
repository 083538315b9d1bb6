"""The compiled top-N search (knowledge/_scan.c) against the numpy and exhaustive scorers.

The compiled kernel must give the exhaustive scorer's answer to the bit: the same entries,
the same scores, the same order (ties: the lower entry first). Hypothesis builds small random
knowledge bases from domain words and asks them random questions; every engine must agree.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import knowledge.matcher as matcher_module
from knowledge.entries import Entry, shipped_entries
from knowledge.matcher import COMPILED_AVAILABLE, TOP_N, WEIGHTS, Matcher

# Words the lexicon maps to concepts, plain content words, negators, and a few words that no
# example will have: enough overlap between entries for ties and close calls.
WORDS = [
    "借呗", "花呗", "逾期", "关闭", "用不了", "额度", "身份证", "过期", "没有", "不",
    "手机号", "换了", "网商贷", "信用卡", "征信", "查询", "频繁", "wifi", "公共", "账户",
    "冻结", "实名", "芝麻分", "下降", "套现", "还款", "利息", "想", "关掉", "为什么",
    "突然", "怎么办", "上个月", "朋友", "工作", "收入", "外卖", "天气", "电影", "了",
]  # fmt: skip

phrase = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map("".join)
entry_examples = st.lists(phrase, min_size=1, max_size=6)
kinds = st.sampled_from(["cause", "cause", "overview", "redirect", "smalltalk"])


def build(
    pipeline, examples: list[list[str]], entry_kinds: list[str], compiled, keywords: bool = True
) -> Matcher:
    entries = [
        Entry(
            slug=f"e{i}",
            title=f"条目{i}",
            kind=kind,
            examples=tuple(phrases),
            keywords=(phrases[0][:2],) if keywords and i % 3 == 0 else (),
        )
        for i, (phrases, kind) in enumerate(zip(examples, entry_kinds, strict=True))
    ]
    if compiled is None:
        return Matcher(entries, pipeline, use_index=False)
    return Matcher(entries, pipeline, compiled=compiled)


def top(matcher: Matcher, text: str) -> list[tuple[int, float]]:
    found, _ = matcher.scores(matcher.pipeline.tokens(text))
    return [(int(i), float(s)) for i, s in found]


def test_the_compiled_kernel_is_built_and_used_by_default(pipeline):
    """The install builds it (setup.py); a silent fallback to numpy would show here."""
    assert COMPILED_AVAILABLE
    assert Matcher(shipped_entries(), pipeline).engine == "compiled"
    assert Matcher(shipped_entries(), pipeline, compiled=False).engine == "numpy"
    assert Matcher(shipped_entries(), pipeline, use_index=False).engine == "exhaustive"


@pytest.fixture
def skip_common_always(monkeypatch):
    """The compiled search skips common tokens and hopeless entries on any base, not only
    on large ones."""
    monkeypatch.setattr(matcher_module, "SKIP_COMMON_FROM", 0)
    monkeypatch.setattr(matcher_module, "FLOOR_FROM", 0)


@pytest.mark.parametrize("skipping", [False, True], ids=["plain", "skipping"])
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.data(),
    examples=st.lists(entry_examples, min_size=1, max_size=12),
)
def test_every_engine_gives_the_same_top_entries_and_scores(
    pipeline, monkeypatch, skipping, data, examples
):
    monkeypatch.setattr(matcher_module, "SKIP_COMMON_FROM", 0 if skipping else 10**9)
    monkeypatch.setattr(matcher_module, "FLOOR_FROM", 0 if skipping else 10**9)
    # Both ways for the first guess of the fifth score: mostly right, or far too high.
    monkeypatch.setattr(matcher_module, "COMMON_FIRST_BAR", data.draw(st.sampled_from([40, 95])))
    entry_kinds = data.draw(st.lists(kinds, min_size=len(examples), max_size=len(examples)))
    queries = data.draw(st.lists(phrase, min_size=1, max_size=8))
    compiled = build(pipeline, examples, entry_kinds, True)
    # Skipping gives common tokens dense arrays, but only tokens that some example has: a
    # base whose examples are all stop words (了) has no token to choose.
    any_token = any(len(p) for p in compiled._post_ex)
    assert (compiled._scan.dense_tokens > 0) == (skipping and any_token)
    numpy_path = build(pipeline, examples, entry_kinds, False)
    exhaustive = build(pipeline, examples, entry_kinds, None)
    for text in [*queries, examples[0][0]]:
        expected = top(exhaustive, text)
        assert top(compiled, text) == expected, text
        assert top(numpy_path, text) == expected, text
        assert len(expected) <= TOP_N


def test_a_base_of_stop_words_only_has_no_common_token(pipeline, skip_common_always):
    """Found by hypothesis: every example is a stop word, so no token has postings and
    nothing can be made dense; the engines still agree (nothing matches)."""
    examples = [["了"], ["了了"]]
    compiled = build(pipeline, examples, ["cause", "overview"], True)
    exhaustive = build(pipeline, examples, ["cause", "overview"], None)
    assert compiled._scan.dense_tokens == 0
    for text in ["了", "借呗用不了了", "花呗逾期"]:
        assert top(compiled, text) == top(exhaustive, text)


def test_ties_go_to_the_lower_entry(pipeline):
    """Identical entries score identically; the first ones fill the top, in order."""
    same = [["花呗逾期借呗关闭"]] * (TOP_N + 3)
    compiled = build(pipeline, same, ["cause"] * len(same), True, keywords=False)
    exhaustive = build(pipeline, same, ["cause"] * len(same), None, keywords=False)
    found = top(compiled, "花呗逾期了借呗关闭")
    assert [i for i, _ in found] == list(range(TOP_N))
    assert len({s for _, s in found}) == 1
    assert found == top(exhaustive, "花呗逾期了借呗关闭")


def test_common_tokens_are_skipped_when_they_cannot_matter(pipeline, skip_common_always):
    """Entries about one rare thing each, every example saying 借呗 stopped: a question about
    one of them is answered without reading 借呗's postings (one search)..."""
    topics = ["身份证过期", "手机号换了", "征信查询频繁", "芝麻分下降", "网商贷", "信用卡逾期"]
    examples = [[f"{topic}借呗用不了", f"借呗关闭因为{topic}"] for topic in topics]
    examples += [[f"{topic}怎么办"] for topic in topics]
    # Enough entries close to the question that the fifth best is far above what 借呗 and
    # 用不了 alone could score.
    examples += [[f"身份证过期借呗用不了{w}"] for w in ["工作", "朋友", "电影", "外卖", "天气"]]
    compiled = build(pipeline, examples, ["cause"] * len(examples), True, keywords=False)
    exhaustive = build(pipeline, examples, ["cause"] * len(examples), None, keywords=False)
    assert compiled._scan.dense_tokens > 0
    question = "身份证过期了借呗用不了"
    assert top(compiled, question) == top(exhaustive, question)
    assert compiled._scan.last_rounds == 1
    assert compiled._scan.last_skipped >= 1  # 借呗's postings were never read
    # ... and when examples of common tokens alone could enter the top, it reads them too.
    plain = [["借呗用不了"], ["借呗关闭了"], ["借呗用不了了"], *examples[:12]]
    compiled = build(pipeline, plain, ["cause"] * len(plain), True, keywords=False)
    exhaustive = build(pipeline, plain, ["cause"] * len(plain), None, keywords=False)
    found = top(compiled, question)
    assert found == top(exhaustive, question)
    assert compiled._scan.last_rounds > 1
    assert compiled._scan.last_skipped == 0
    assert {0, 2} <= {i for i, _ in found}  # the common-only examples did enter the top


@pytest.mark.parametrize("first_bar", [20.0, 60.0, 95.0])
def test_a_generated_base_every_way_of_skipping(
    pipeline, skip_common_always, monkeypatch, first_bar
):
    """Every shortcut forced on a base of a few hundred generated entries, with a first guess
    of the fifth score that is too low, about right, or too high: the exhaustive scorer's
    top entries and scores, exactly, for a few hundred phrasings."""
    from bot.bench import generated_document
    from knowledge.entries import parse_document
    from tests.test_bench import phrasings

    monkeypatch.setattr(matcher_module, "COMMON_FIRST_BAR", first_bar)
    doc = generated_document(len(shipped_entries()) + 300, pipeline.lexicon.concepts)
    entries = parse_document(json.dumps(doc, ensure_ascii=False))
    compiled = Matcher(entries, pipeline, compiled=True)
    exhaustive = Matcher(entries, pipeline, use_index=False)
    assert compiled._scan.dense_tokens > 0
    rounds = set()
    texts = phrasings()[::2]
    for text in texts:
        assert top(compiled, text) == top(exhaustive, text), text
        rounds.add(compiled._scan.last_rounds)
    assert len(texts) >= 150
    assert 1 in rounds  # common tokens skipped at once
    if first_bar >= 60:  # ... and, guessing high, sometimes had to read more
        assert max(rounds) > 1


def test_matching_from_many_threads_gives_the_sequential_answers(pipeline):
    matcher = Matcher(shipped_entries(), pipeline)
    texts = [p for e in shipped_entries() for p in e.examples[:12]]
    expected = [matcher.match(t) for t in texts]
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = [matcher.match(t) for t in texts]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(4):
        assert results[k] == expected


# -- the extension's own argument checks: bad input is refused, never a crash --------------


def index_args(**changes):
    from rapidfuzz import fuzz

    args = {
        "post_start": np.asarray([0, 2, 3], dtype=np.int64),
        "post_example": np.asarray([0, 1, 1], dtype=np.int32),
        "post_weight": np.asarray([1, 1, 2], dtype=np.int32),
        "length": np.asarray([1, 3], dtype=np.int32),
        "distinct": np.asarray([1, 2], dtype=np.int32),
        "owner": np.asarray([0, 1], dtype=np.int32),
        "entry_start": np.asarray([0, 1, 2], dtype=np.int64),
        "ordered": ["a", "abb"],
        "ratio": fuzz.ratio,
        "weights": WEIGHTS,
    }
    args.update(changes)
    return args


def test_a_consistent_index_answers():
    from knowledge import _scan

    index = _scan.Index(**index_args())
    adjust = np.zeros(2)
    found = index.top([0, 1], [1, 2], 3, adjust, "abb", 5, 0.0)
    assert [i for _, i in found] == [1, 0]
    assert found[0][0] == pytest.approx(100.0)
    assert index.top([], [], 0, adjust, "", 5, 0.0) == []
    assert len(index.top([0], [1], 1, adjust, "a", 1, 0.0)) == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"post_start": np.asarray([0, 2, 4], dtype=np.int64)}, ValueError),
        ({"post_start": np.asarray([0, 3, 2, 3], dtype=np.int64)}, ValueError),
        ({"post_example": np.asarray([0, 1, 7], dtype=np.int32)}, ValueError),
        ({"post_weight": np.asarray([1, 0, 2], dtype=np.int32)}, ValueError),
        ({"owner": np.asarray([1, 0], dtype=np.int32)}, ValueError),
        ({"entry_start": np.asarray([0, 2, 1], dtype=np.int64)}, ValueError),
        ({"ordered": ["a"]}, ValueError),
        ({"ordered": ["a", 3]}, TypeError),
        ({"length": np.asarray([1, 3], dtype=np.int64)}, TypeError),
        ({"length": np.asarray([1, 3], dtype=np.float32)}, TypeError),
        ({"ratio": "not callable"}, TypeError),
    ],
)
def test_an_inconsistent_index_is_refused(changes, error):
    from knowledge import _scan

    with pytest.raises(error):
        _scan.Index(**index_args(**changes))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (([5], [1], 1, np.zeros(2), "a", 5, 0.0), IndexError),
        (([-1], [1], 1, np.zeros(2), "a", 5, 0.0), IndexError),
        (([0], [1, 2], 1, np.zeros(2), "a", 5, 0.0), TypeError),
        (([0], [1], 1, np.zeros(3), "a", 5, 0.0), TypeError),
        (([0], [1], 1, np.zeros(2, dtype=np.float32), "a", 5, 0.0), TypeError),
        (([0], [1], 1, np.zeros(2), b"a", 5, 0.0), TypeError),
        (([0], [1], -1, np.zeros(2), "a", 5, 0.0), TypeError),
        (([0], [1], 1, np.zeros(2), "a", 5), TypeError),
        (([0], [1], 1, np.zeros(2), "a", 5, "high"), TypeError),
    ],
)
def test_bad_arguments_to_top_are_refused(args, error):
    from knowledge import _scan

    index = _scan.Index(**index_args())
    with pytest.raises(error):
        index.top(*args)
    assert index.top([0], [1], 1, np.zeros(2), "a", 5, 0.0)  # still answers


def test_an_index_that_failed_to_initialise_refuses_to_search():
    from knowledge import _scan

    blank = _scan.Index.__new__(_scan.Index)
    with pytest.raises(RuntimeError):
        blank.top([0], [1], 1, np.zeros(2), "a", 5, 0.0)
    index = _scan.Index.__new__(_scan.Index)
    with pytest.raises(ValueError):
        index.__init__(**index_args(owner=np.asarray([1, 0], dtype=np.int32)))
    with pytest.raises(RuntimeError):
        index.top([0], [1], 1, np.zeros(2), "a", 5, 0.0)
    good = _scan.Index(**index_args())
    with pytest.raises(RuntimeError):  # once is enough
        good.__init__(**index_args())
    assert good.top([0], [1], 1, np.zeros(2), "a", 5, 0.0)


def test_the_index_keeps_its_own_copy_of_the_examples():
    from knowledge import _scan

    ordered = ["a", "abb"]
    index = _scan.Index(**index_args(ordered=ordered))
    ordered.clear()
    assert [i for _, i in index.top([0, 1], [1, 2], 3, np.zeros(2), "abb", 5, 0.0)] == [1, 0]


def test_an_error_in_the_ratio_callback_propagates():
    from knowledge import _scan

    def broken(a: str, b: str) -> float:
        raise RuntimeError("boom")

    index = _scan.Index(**index_args(ratio=broken))
    with pytest.raises(RuntimeError, match="boom"):
        index.top([0], [1], 1, np.zeros(2), "a", 5, 0.0)
