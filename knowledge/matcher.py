"""The matcher: which entry a message is about, with a score from 0 to 100.

How a score is made, in order:

1. The message becomes tokens (``TextPipeline.tokens``): concept tokens such as ``OVERDUE``
   or ``NOT_OVERDUE`` plus the remaining content words. Every example phrase of every entry
   was turned into tokens the same way when the matcher was built. Tokens no example has are
   dropped from the query: they cannot match anything and would only dilute long messages.
2. Each token is written as one character, repeated by its weight: a concept token found in
   few entries (``IDCARD``) weighs up to 3, one in most entries (``JIEBEI``) 1, plain words 1.
   rapidfuzz then compares token sequences, not characters.
3. Three views of the query are compared with every example: the sequence in order
   (rapidfuzz's ``fuzz.ratio``: word order matters, 借呗被关 vs 我想关借呗), the sorted tokens
   (multiset overlap) and the distinct tokens (set overlap). The blend, ``WEIGHTS``, is the
   example's score; an entry's raw score is its best example's.
4. Evidence adjusts the raw score (``_adjustments``): an entry whose ``keywords`` (each a
   group of tokens that must all be present) appear gains ``KEYWORD_BONUS`` and may be chosen
   at the lower ``evidence_threshold``; a cause or the overview whose keywords are all absent
   loses ``MISSING_KEYWORD_PENALTY``. Causes also lose points when nothing in the message
   says 借呗 stopped, when the message is off topic, or when it says 借呗 works or the user
   wants to close it.
5. The learned entry model blends in (``blended``; the model is ``knowledge/model.py``,
   fitted from all of each entry's examples when the matcher is built): its belief in each
   entry, 0 to 1, times ``MODEL_WEIGHT`` is added to the score of step 4. Entries it believes
   in at least ``MODEL_RETRIEVE`` are scored (exactly, from their own examples) even when
   rapidfuzz's top ``TOP_N`` did not include them. A belief of ``MODEL_EVIDENCE`` or more lowers
   the bar as keywords do. Off topic (neither 借呗 nor a stop named) the model has no say: it
   knows which entry a message is most like, not whether it is about 借呗 at all. Why: one best
   example generalises poorly; the model pools every example's words (and characters, so
   作废 or 拉黑 count though no lexicon lists them), while rapidfuzz, the keywords and the
   penalties keep deciding *whether* to answer (overview, redirect, nothing).
6. The answer is the best entry if it clears its bar (``_decide``): ``threshold`` (for a cause
   or the overview the lower ``answer_threshold``), or
   ``evidence_threshold`` with keyword evidence or a confident model. The floor
   (``FLOOR_TOKENS``, ``_floor``): a message that names 借呗 and says it stopped, and neither
   says it works nor that the user closes it (nor that it never was opened: 开通不了; asked
   after the stop, 被关了怎么开通 is opening it again), is answered at
   least with the overview, never with nothing or a redirect, unless a redirect won with its
   own keywords and the message asks about money owed, fees or a scam (``FLOOR_YIELDS_TO``:
   借呗没了钱怎么还 is a repayment question that mentions the stop), and the entry model
   believes the redirect more than the overview or the redirect leads it by ``margin``; or,
   with no such words, the model is sure of the redirect (``MODEL_SURE``) and it leads. A
   long story that says 借呗 stopped and reached the overview gets the cause the model
   firmly believes in, when that cause's score is near (``STORY_TOKENS``,
   ``_story_cause``), and so does a long story nothing answered if that cause is its best
   candidate: stories tell the cause in words no keyword has. A message about a thing no
   entry covers (a thing of 借呗's gone, risk asked about, money not arrived: ``UNCOVERED``)
   is answered by a redirect only if it has its keywords, else nothing matched. When the best
   two causes are within ``margin`` the match is *ambiguous*: the bot asks which one. Every
   number of the
   decision is a constant below. Each rule was measured by cross-validation and on the sealed
   sets with it switched off (README, "Rules measured"); two that did not pay (an overview
   yielding to a nearby cause with keywords; a fallback to a lower candidate with evidence)
   were deleted.

Speed: the model's part is a sum of short weight rows (dense on small bases); the multiset
and set overlaps come from an inverted index (token -> examples), so only
examples sharing a token with the query are touched. Because the ordered ratio can never
exceed the multiset overlap, ``0.7 * multiset + 0.3 * set`` bounds an example's score; entries
are scored exactly in order of their bound, and scoring stops once no remaining entry can
reach the top ``TOP_N``. The result is the exhaustive scorer's (``use_index=False``), to the
bit, which tests check. That search runs compiled (``knowledge/_scan.c``, built by setup.py;
on large bases it also skips the postings of the most common tokens while they provably
cannot change the answer), or, where no C compiler was at hand, in numpy
(``_branch_and_bound``): same answers, several times slower. ``Matcher.engine`` says which.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np
from rapidfuzz import fuzz, process

from knowledge.entries import Entry
from knowledge.model import MEMO_MAX, EntryModel, FeatureMemo
from knowledge.text import TextPipeline

try:  # the compiled top-N search (knowledge/_scan.c); optional, see setup.py
    from knowledge import _scan
except ImportError:  # pragma: no cover - only without a C compiler at install time
    _scan = None

COMPILED_AVAILABLE = _scan is not None

THRESHOLD = 55.0
# The bar for a cause or the overview: lower than for a redirect or small talk, because these
# are guarded by the penalties above (nothing says stopped, off topic, against) and by the
# floor, while a redirect's only guard is its bar ("今天天气会怎么样" must not reach the
# overdue-effects redirect). Measured: 55 -> 48 took sealed customers' overview 89.7 -> 91.9,
# every other figure (shared sets, CV, sealed causes and none) unchanged.
ANSWER_THRESHOLD = 48.0
# The bar when the entry's keywords are in the message: the evidence is there, so a long or
# oddly phrased message may be less like any one example.
EVIDENCE_THRESHOLD = 38.0
MARGIN = 6.0
TOP_N = 5
WEIGHTS = (0.4, 0.3, 0.3)  # ordered, multiset, set
KEYWORD_BONUS = 4.0
MISSING_KEYWORD_PENALTY = {"cause": 20.0, "overview": 20.0, "redirect": 8.0}
# Nothing says 借呗 stopped ("借呗逾期会怎样" asks about consequences, not a stop).
NO_STOP_PENALTY = 4.0
# Neither 借呗 nor any stop is named: not a question about why 借呗 stopped.
OFF_TOPIC_PENALTY = 25.0
TOPIC_TOKENS = frozenset({"JIEBEI", "FOLLOWUP"})
# "借呗还能正常用" says it works; "我想关掉借呗" is the user's own doing: neither asks why the
# provider stopped it ...
AGAINST_TOKENS = frozenset({"WORKS", "SELF_CLOSE"})
AGAINST_PENALTY = 15.0
# ... unless what is closed is a product that took 借呗's place ("关掉网商贷能换回借呗吗").
REPLACING = frozenset({"WANGSHANGDAI", "CREDITLOAN"})
# A concept in at most this share of entries is rare (weight 3); up to COMMON_SHARE, 2.
RARE_SHARE = 0.15
COMMON_SHARE = 0.4
# Concepts that say how often something happened, not what happened (好几次, 老是, 经常):
# they weigh as a plain word, whatever their spread, so that "刷脸好几次" is not pulled
# towards the cause whose examples say "借了好几次".
MODIFIERS = frozenset({"FREQUENT"})
# The floor under the core question: a message that names 借呗 and says it stopped (in any of
# the lexicon's words for it: 没了, 冻结, 变灰, 收回, 不给借, 关我...) and does not say it works
# or that the user wants to close it is answered at least with the overview: never with
# nothing and never with a near-miss redirect. Not when the user never had it (开通不了 without
# 开通过): that is not a stop.
FLOOR_TOKENS = frozenset({"JIEBEI", "STOPPED"})
# ... but a stop said in passing is not the question's point when the message asks about the
# money owed (借呗没了钱怎么还, 关了以后还用还吗, 要一次性还清吗), fees or interest
# (提前还要手续费吗), or reports a scam: a redirect that won with its own keywords there
# keeps its answer. (Not for the limit or opening redirects: 有额度借不出来 and 开通过现在开不了
# are stops; measured.)
FLOOR_YIELDS_TO = frozenset({"REPAY", "PREPAY", "INTEREST", "SCAM"})
# A thing of 借呗's that no entry covers (积分, 24期 gone: THING_GONE), risk asked about, or
# money that has not arrived: only a redirect with its own keywords answers; else nothing
# matched.
UNCOVERED = frozenset({"THING_GONE", "RISK_ASKED", "NOT_ARRIVED"})
# ... and without those words, when the model is this sure of such a redirect and it leads.
MODEL_SURE = 0.9
ANSWER_KINDS = ("cause", "overview")
# Added to every bound: where the ordered ratio equals the multiset overlap, the exact score
# and its bound are equal in real numbers but may differ by an ulp in floating point.
BOUND_SLACK = 1e-9
# Below this many examples, one entry's score is read with the compiled search (every other
# entry pushed below 0); from it on, with numpy over the entry's own examples.
ENTRY_BY_SCAN = 5000
# Up to this many examples, per-entry best and runner-up bounds are found in one pass.
PRECOMPUTE_MAX_EXAMPLES = 5000
# From this many examples on, the compiled search skips the postings of the most common query
# tokens while it can prove they cannot change the answer (see knowledge/_scan.c).
SKIP_COMMON_FROM = 4096
# Its first guess of the TOP_N-th score, which decides how many common tokens it skips at first
# (a wrong guess costs time, never exactness).
COMMON_FIRST_BAR = 90.0
# From this many candidate entries on, it first leaves out those whose ceiling is below that
# guess (and goes on with those when the guess was too high).
FLOOR_FROM = 256
# Entries ordered by partition first when visiting a large base (see _visiting_order).
VISIT_BATCH = 64
# Up to this many entries with keyword evidence, their adjustments are set one by one in
# Python; more, in one numpy operation.
EVIDENCE_ONE_BY_ONE = 16
# The learned entry model (knowledge/model.py) adds up to MODEL_WEIGHT points: its 0-1 belief
# in the entry times this. An entry it believes in at least MODEL_RETRIEVE (so at most one) is
# a candidate even when rapidfuzz's index did not rank it in its TOP_N (0.25 gave the same
# figures and scored more entries one by one; none at all cost one point of writers' causes).
MODEL_WEIGHT = 20.0
MODEL_RETRIEVE = 0.5
# A belief this strong counts as evidence, as an entry's keywords do (the lower bar).
MODEL_EVIDENCE = 0.6
# A story (at least STORY_TOKENS tokens besides 借呗, the stop and the question words) that
# says 借呗 stopped and reached the overview is answered with the cause the model believes in
# at least STORY_BELIEF, if that cause's score is within STORY_REACH of the overview's: a
# story tells its cause in its own words, which keywords miss and the model's characters
# catch. Short messages never qualify (the model reads 暂时无法借款 as maintenance). A story
# that nothing answered (no stop word of ours, no keyword) gets the cause the model believes
# in as firmly, when that cause is the best candidate.
STORY_TOKENS = 8
STORY_BELIEF = 0.9
STORY_REACH = 10.0
STORY_IGNORES = frozenset({"JIEBEI", "STOPPED", "WHY", "HOWTO"})


def _is_story(tokens: Sequence[str]) -> bool:
    """At least STORY_TOKENS tokens besides 借呗, the stop and the question words."""
    return len(tokens) >= STORY_TOKENS and (
        sum(t not in STORY_IGNORES for t in tokens) >= STORY_TOKENS
    )


class _Memo(FeatureMemo):
    """Per text pipeline: each example phrase's tokens (and, in the base class, its model
    features), so that a rebuild reads only the phrases it has not seen before."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: dict[str, list[str]] = {}


_memos: weakref.WeakKeyDictionary[TextPipeline, _Memo] = weakref.WeakKeyDictionary()
_memos_lock = threading.Lock()


def _memo(pipeline: TextPipeline) -> _Memo:
    with _memos_lock:
        memo = _memos.get(pipeline)
        if memo is None:
            memo = _memos[pipeline] = _Memo()
        return memo


class Candidate(NamedTuple):
    slug: str
    score: float
    kind: str


# A Candidate from a (slug, score, kind) tuple, without the Python-level __new__ of NamedTuple.
_candidate = partial(tuple.__new__, Candidate)


@dataclass(frozen=True)
class Match:
    """What a message matched: ``intent`` is None when nothing reached the threshold."""

    text: str
    tokens: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    intent: str | None
    ambiguous: bool = False

    @property
    def score(self) -> float:
        return self.candidates[0].score if self.candidates else 0.0

    @property
    def margin(self) -> float:
        if len(self.candidates) < 2:
            return self.score
        return self.candidates[0].score - self.candidates[1].score

    def close_causes(self, margin: float = MARGIN) -> list[Candidate]:
        """Causes within ``margin`` of the best candidate, best first."""
        top = self.score
        return [c for c in self.candidates if c.kind == "cause" and top - c.score < margin]


def is_concept(token: str) -> bool:
    return token.isascii() and token.isupper()


@dataclass
class _Query:
    ordered: str
    ids: list[int]  # distinct token ids
    counts: list[int]  # weighted count of each
    length: int  # len(ordered)
    present: frozenset[str]
    sequence: tuple[int, ...] | None = None  # every token's id, in order; None if one is unknown


class Matcher:
    """Built from entries, answers from memory; build a new one after every write."""

    def __init__(
        self,
        entries: Sequence[Entry],
        pipeline: TextPipeline,
        *,
        threshold: float = THRESHOLD,
        answer_threshold: float = ANSWER_THRESHOLD,
        evidence_threshold: float = EVIDENCE_THRESHOLD,
        margin: float = MARGIN,
        use_index: bool = True,
        compiled: bool | None = None,
    ) -> None:
        """``use_index=False`` scores every example (the reference); otherwise the index is
        searched by the compiled kernel when it is built (``compiled=None``), always
        (``True``: ImportError without it) or never (``False``: the numpy path)."""
        if compiled and _scan is None:
            raise ImportError("knowledge._scan is not built (no C compiler at install time?)")
        self.pipeline = pipeline
        self.threshold = threshold
        self.answer_threshold = min(answer_threshold, threshold)
        self.evidence_threshold = evidence_threshold
        self.margin = margin
        self.use_index = use_index
        self.entries = {e.slug: e for e in entries}
        self._stop_signals = frozenset(pipeline.lexicon.stop_signals)
        self._scan: object | None = None
        self._scan_lock = threading.Lock()  # a compiled Index keeps scratch arrays
        self._compile(list(entries), use_index and compiled is not False and _scan is not None)

    @property
    def engine(self) -> str:
        """How messages are scored: ``compiled``, ``numpy`` (both indexed) or ``exhaustive``."""
        if not self.use_index:
            return "exhaustive"
        return "compiled" if self._scan is not None else "numpy"

    # -- building -------------------------------------------------------------------------

    def _compile(self, entries: list[Entry], compiled: bool) -> None:
        ids: dict[str, int] = {}
        token_lists: list[list[int]] = []
        owner: list[int] = []
        phrases: list[str] = []  # each token list's example
        starts: list[int] = []
        groups: list[tuple[int, frozenset[str]]] = []
        model_examples: list[tuple[int, np.ndarray]] = []
        memo = _memo(self.pipeline)
        with memo.lock:
            memo.start()
            if len(memo.tokens) >= MEMO_MAX:  # bounded like the features
                memo.tokens.clear()
            for i, entry in enumerate(entries):
                starts.append(len(token_lists))
                for word in entry.keywords:
                    group = frozenset(self.pipeline.tokens(word))
                    if group:
                        groups.append((i, group))
                for phrase in entry.examples:
                    tokens = memo.tokens.get(phrase)
                    found = memo.get(phrase)
                    if tokens is None or found is None:
                        words = self.pipeline.segment(self.pipeline.normalise(phrase))
                        tokens = memo.tokens[phrase] = self.pipeline.concepts(words)
                        found = memo.add(phrase, words, tokens)
                    model_examples.append((i, found))
                    if tokens:
                        token_lists.append([ids.setdefault(t, len(ids)) for t in tokens])
                        owner.append(i)
                        phrases.append(phrase)
            self.model = EntryModel(model_examples, len(entries), memo)
        # Token sequence of every example -> the entries that have it: a message phrased
        # exactly like an example is that entry's (an admin's correction takes effect).
        self._exact: dict[tuple[int, ...], list[int]] = {}
        for tokens, i in zip(token_lists, owner, strict=True):
            mine = self._exact.setdefault(tuple(tokens), [])
            if not mine or mine[-1] != i:
                mine.append(i)
        # Where examples of several entries make the same tokens (信用卡逾期借呗关闭 and an
        # admin's 信用卡逾期一天借呗就关了), the example written exactly like the message
        # decides: its normalised text -> its entries, kept for those token sequences only.
        # (A message's words joined are its normalised text: segmenting only cuts it.)
        self._exact_text: dict[tuple[int, ...], dict[str, list[int]]] = {}
        for tokens, i, phrase in zip(token_lists, owner, phrases, strict=True):
            key = tuple(tokens)
            if len(self._exact[key]) > 1:
                text = self.pipeline.normalise(phrase)
                mine = self._exact_text.setdefault(key, {}).setdefault(text, [])
                if i not in mine:
                    mine.append(i)
        self._ids = ids
        self._slugs = [e.slug for e in entries]
        self._kinds = [e.kind for e in entries]
        self._slug_kind = list(zip(self._slugs, self._kinds, strict=True))
        n_entries = len(entries)
        self._owner = np.asarray(owner, dtype=np.intp)
        self._starts = np.asarray([*starts, len(token_lists)], dtype=np.intp)

        # Token weights: rarer concepts across entries weigh more.
        names = list(ids)
        spread: list[set[int]] = [set() for _ in names]
        for tokens, i in zip(token_lists, owner, strict=True):
            for t in tokens:
                spread[t].add(i)
        weights = np.ones(len(names), dtype=np.int64)
        for t, name in enumerate(names):
            if is_concept(name) and name not in MODIFIERS:
                share = len(spread[t]) / max(n_entries, 1)
                weights[t] = 3 if share <= RARE_SHARE else 2 if share <= COMMON_SHARE else 1
        self._weights = weights
        self._weight_of = weights.tolist()  # per message, a list reads faster than numpy
        self._chars = [chr(0x20000 + t) * int(weights[t]) for t in range(len(names))]

        # Per example: the ordered string, its length and distinct-token count; postings.
        self._ordered = ["".join(self._chars[t] for t in tokens) for tokens in token_lists]
        self._length = np.asarray([len(s) for s in self._ordered], dtype=np.float64)
        self._distinct = np.asarray([len(set(t)) for t in token_lists], dtype=np.float64)
        post: list[dict[int, int]] = [{} for _ in names]
        for j, tokens in enumerate(token_lists):
            for t in tokens:
                post[t][j] = post[t].get(j, 0) + int(weights[t])
        # Per example, its distinct tokens and their weighted counts, flat (for scoring the
        # examples of one entry the model brought in: _entry_score).
        tok_id: list[int] = []
        tok_n: list[int] = []
        tok_start = [0]
        for tokens in token_lists:
            mine: dict[int, int] = {}
            for t in tokens:
                mine[t] = mine.get(t, 0) + int(weights[t])
            tok_id.extend(mine)
            tok_n.extend(mine.values())
            tok_start.append(len(tok_id))
        self._tok_id = np.asarray(tok_id, dtype=np.intp)
        self._tok_n = np.asarray(tok_n, dtype=np.float64)
        self._tok_start = np.asarray(tok_start, dtype=np.intp)
        # The example of each of those slots (an entry's examples are contiguous).
        self._tok_example = np.repeat(np.arange(len(token_lists)), np.diff(self._tok_start))
        self._post_ex = [np.fromiter(p.keys(), dtype=np.intp, count=len(p)) for p in post]
        self._post_n = [np.fromiter(p.values(), dtype=np.float64, count=len(p)) for p in post]
        self._post_max = [max(p.values(), default=0) for p in post]
        if compiled:
            sizes = [len(p) for p in post]
            self._scan = _scan.Index(
                post_start=np.cumsum([0, *sizes], dtype=np.int64),
                post_example=np.concatenate([*self._post_ex, np.empty(0, np.intp)]).astype(
                    np.int32
                ),
                post_weight=np.concatenate([*self._post_n, np.empty(0)]).astype(np.int32),
                length=self._length.astype(np.int32),
                distinct=self._distinct.astype(np.int32),
                owner=self._owner.astype(np.int32),
                entry_start=self._starts.astype(np.int64),
                ordered=self._ordered,
                ratio=fuzz.ratio,
                weights=WEIGHTS,
                skip_from=SKIP_COMMON_FROM,
                first_bar=COMMON_FIRST_BAR,
                floor_from=FLOOR_FROM,
            )
        self._has_examples = np.diff(np.asarray([*starts, len(token_lists)])) > 0
        self._all_examples = np.arange(len(token_lists))
        self._full_entries = np.flatnonzero(self._has_examples)
        self._full_bounds = np.append(self._starts[self._full_entries], len(token_lists))

        # Per entry: kind masks and keyword groups.
        kinds = np.asarray(self._kinds)
        self._is_cause = kinds == "cause"
        self._is_answer = np.isin(kinds, ANSWER_KINDS)
        overview = np.flatnonzero(kinds == "overview")
        self._overview = int(overview[0]) if len(overview) else None
        self._has_keywords = np.zeros(n_entries, dtype=bool)
        self._missing = np.asarray([MISSING_KEYWORD_PENALTY.get(k, 0.0) for k in self._kinds])
        self._groups = groups
        # The redirects the floor yields to: those whose keywords speak of repaying, fees or
        # a scam.
        self._money_redirects = frozenset(
            i
            for i, group in groups
            if kinds[i] == "redirect" and not FLOOR_YIELDS_TO.isdisjoint(group)
        )
        # One-token keyword groups (most of them) by token, as entry arrays; the rest by token.
        self._groups_by_token: dict[str, list[int]] = {}
        single: dict[str, list[int]] = {}
        for g, (i, group) in enumerate(groups):
            self._has_keywords[i] = True
            if len(group) == 1:
                single.setdefault(next(iter(group)), []).append(i)
            else:
                for token in group:
                    self._groups_by_token.setdefault(token, []).append(g)
        self._group_tokens = frozenset(self._groups_by_token)
        self._single_keyword = {t: np.asarray(ix, dtype=np.intp) for t, ix in single.items()}
        self._single_keyword_l = single
        self._evidence_gain = KEYWORD_BONUS + self._missing
        # The evidence of a message with no keyword (most): shared, so read-only.
        self._no_evidence = np.zeros(n_entries, dtype=bool)
        self._no_evidence.flags.writeable = False
        self._base_adjust = {}
        for stopped in (False, True):
            for off_topic in (False, True):
                for against in (False, True):
                    base = -np.where(self._has_keywords, self._missing, 0.0)
                    if off_topic:
                        base -= np.where(self._is_answer, OFF_TOPIC_PENALTY, 0.0)
                    elif not stopped:
                        base -= np.where(self._is_cause, NO_STOP_PENALTY, 0.0)
                    if against:
                        base -= np.where(self._is_answer, AGAINST_PENALTY, 0.0)
                    # The same operation as base + evidence * gain where evidence is True:
                    # identical floats either way. As a list: read entry by entry.
                    with_evidence = base + self._evidence_gain
                    base.flags.writeable = with_evidence.flags.writeable = False
                    most = float(base.max(initial=0.0))
                    self._base_adjust[(stopped, off_topic, against)] = (
                        base,
                        with_evidence,
                        with_evidence.tolist(),  # read entry by entry
                        most,
                    )

    # -- scoring --------------------------------------------------------------------------

    def _query(self, tokens: Sequence[str]) -> _Query:
        counts: dict[int, int] = {}
        chars = []
        weight_of, chars_of = self._weight_of, self._chars
        known = list(map(self._ids.get, tokens))
        for t in known:
            if t is None:
                continue
            counts[t] = counts.get(t, 0) + weight_of[t]
            chars.append(chars_of[t])
        ordered = "".join(chars)
        return _Query(
            ordered,
            list(counts),
            list(counts.values()),
            len(ordered),
            frozenset(tokens),
            None if None in known else tuple(known),
        )

    def _overlaps(self, q: _Query) -> tuple[np.ndarray, np.ndarray]:
        """(multiset, set) overlap scores of every example, 0-100, via the postings."""
        n = len(self._ordered)
        examples = [self._post_ex[t] for t in q.ids]
        counts = [
            self._post_n[t] if count >= self._post_max[t] else np.minimum(self._post_n[t], count)
            for t, count in zip(q.ids, q.counts, strict=True)
        ]
        where = np.concatenate(examples)
        inter = np.bincount(where, weights=np.concatenate(counts), minlength=n)
        shared = np.bincount(where, minlength=n)
        multiset = 200.0 * inter / (q.length + self._length)
        distinct = 200.0 * shared / (len(q.ids) + self._distinct)
        return multiset, distinct

    def _adjustments(self, present: frozenset[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """Per entry: points added to the raw score, and whether its keywords are present;
        and an upper bound of the points. Both arrays may be shared between calls: read them,
        never write to them."""
        # Which entries have their keywords, in Python lists first: most messages have none,
        # and one numpy operation per token cost more than the rest of this function.
        single = [s for s in map(self._single_keyword_l.get, present) if s is not None]
        groups = self._groups
        grouped = (
            [
                groups[g][0]
                for token in present
                for g in self._groups_by_token.get(token, ())
                if groups[g][1] <= present
            ]
            if not self._group_tokens.isdisjoint(present)
            else []
        )
        stopped = not self._stop_signals.isdisjoint(present)
        off_topic = not stopped and TOPIC_TOKENS.isdisjoint(present)
        against = not AGAINST_TOKENS.isdisjoint(present) and REPLACING.isdisjoint(present)
        base, with_evidence, with_evidence_l, most = self._base_adjust[
            (stopped, off_topic, against)
        ]
        if not single and not grouped:
            return base, self._no_evidence, most
        # A copy of base with each entry that has evidence set to its with_evidence value
        # (the same floats as np.where(evidence, with_evidence, base)): a message has evidence
        # for a few entries, and a numpy pass over every entry cost more. The bound is the
        # largest value set, not the largest any entry could get: the tighter it is, the more
        # common tokens the compiled search can leave unread.
        evidence = np.zeros(len(self._slugs), dtype=bool)
        adjust = base.copy()
        if sum(map(len, single)) + len(grouped) <= EVIDENCE_ONE_BY_ONE:
            for i in [i for entries in single for i in entries] + grouped:
                value = with_evidence_l[i]
                evidence[i] = True
                adjust[i] = value
                if value > most:
                    most = value
        else:  # a common keyword on a large base: hundreds of entries
            keyword = self._single_keyword
            at = np.concatenate(
                [*(keyword[t] for t in present if t in keyword), np.asarray(grouped, np.intp)]
            )
            values = with_evidence[at]
            evidence[at] = True
            adjust[at] = values
            most = max(most, float(values.max()))
        return adjust, evidence, most

    def _raw_exhaustive(self, q: _Query, multiset: np.ndarray, distinct: np.ndarray) -> np.ndarray:
        """Every entry's raw score, every example scored with rapidfuzz."""
        raw = np.zeros(len(self._slugs))
        if not q.ids:
            return raw
        ordered = process.cdist(
            [q.ordered], self._ordered, scorer=fuzz.ratio, dtype=np.float64, workers=1
        )[0]
        # The same operations, in the same order, as _top_indexed: identical floats.
        blend = (WEIGHTS[1] * multiset + WEIGHTS[2] * distinct) + WEIGHTS[0] * ordered
        np.maximum.at(raw, self._owner, blend)
        return raw

    def _top_indexed(
        self, q: _Query, multiset: np.ndarray, distinct: np.ndarray, adjust: np.ndarray
    ) -> list[tuple[float, int]]:
        """The TOP_N entries' exact scores over every example that shares a token."""
        return self._branch_and_bound(
            q,
            multiset,
            distinct,
            adjust,
            self._all_examples,
            self._full_entries,
            self._full_bounds,
        )

    @staticmethod
    def _visiting_order(ceiling: np.ndarray, entries: np.ndarray) -> Iterator[int]:
        """Positions by ceiling, highest first (ties: lower entry first). Usually only a
        few are visited, so the first VISIT_BATCH are found by partition, not a full sort."""
        if len(ceiling) > 4 * VISIT_BATCH:
            head = np.argpartition(-ceiling, VISIT_BATCH)[:VISIT_BATCH]
            cut = ceiling[head].min()
            head = np.flatnonzero(ceiling >= cut)  # keep ties at the cut together
            yield from head[np.lexsort((entries[head], -ceiling[head]))].tolist()
            tail = np.flatnonzero(ceiling < cut)
            yield from tail[np.lexsort((entries[tail], -ceiling[tail]))].tolist()
        else:
            yield from np.lexsort((entries, -ceiling)).tolist()

    def _branch_and_bound(
        self,
        q: _Query,
        multiset: np.ndarray,
        distinct: np.ndarray,
        adjust: np.ndarray,
        examples: np.ndarray,
        entries: np.ndarray,
        bounds_at: np.ndarray,
    ) -> list[tuple[float, int]]:
        """Exact TOP_N over ``examples`` (grouped by entry: entry ``entries[k]`` owns
        positions ``bounds_at[k]:bounds_at[k + 1]``), as (-score, entry), best first.

        Entries are visited by ceiling (best bound plus adjustment); within an entry,
        examples by bound until the bound cannot beat the entry's best so far. Visiting
        stops when no remaining ceiling reaches the TOP_N-th exact score."""
        if not len(entries) or not len(examples):
            return []
        partial = WEIGHTS[1] * multiset + WEIGHTS[2] * distinct
        bound = partial + WEIGHTS[0] * multiset + BOUND_SLACK
        firsts = bounds_at[:-1]
        entry_bound = np.maximum.reduceat(bound, firsts)
        ceiling = np.clip(entry_bound + adjust[entries], 0.0, 100.0)
        # On a small base, each entry's best-bound example (first, on ties) and the bound of
        # its runner-up, in one vectorised pass: most visits then score one example. On a
        # large base few entries are visited, so that is found per visit instead.
        small = len(bound) <= PRECOMPUTE_MAX_EXAMPLES
        if small:
            sizes = np.diff(bounds_at)
            head = np.flatnonzero(bound == np.repeat(entry_bound, sizes))
            first_max = head[np.searchsorted(head, firsts)]
            rest = bound.copy()
            rest[first_max] = -1.0
            first_max_l = first_max.tolist()
            second_l = np.maximum.reduceat(rest, firsts).tolist()
        top: list[tuple[float, int]] = []  # (-score, entry), kept sorted
        for k in self._visiting_order(ceiling, entries):
            if entry_bound[k] <= BOUND_SLACK:  # no example shares a token
                continue
            if len(top) >= TOP_N and ceiling[k] < -top[-1][0]:
                break
            i = int(entries[k])
            lo, hi = int(bounds_at[k]), int(bounds_at[k + 1])
            if small:
                j, runner_up = first_max_l[k], second_l[k]
            else:
                j, runner_up = lo + int(bound[lo:hi].argmax()), 100.0
            ratio = fuzz.ratio(q.ordered, self._ordered[int(examples[j])])
            best = float(partial[j] + WEIGHTS[0] * ratio)
            if runner_up > best:
                span = bound[lo:hi]
                more = np.flatnonzero(span > best)
                for m in more[np.argsort(-span[more], kind="stable")].tolist():
                    if span[m] <= best:
                        break
                    ratio = fuzz.ratio(q.ordered, self._ordered[int(examples[lo + m])])
                    best = max(best, float(partial[lo + m] + WEIGHTS[0] * ratio))
            score = min(max(best + adjust[i], 0.0), 100.0) if best > 0 else 0.0
            top.append((-score, i))
            top.sort()
            del top[TOP_N:]
        return top

    def scores(self, tokens: Sequence[str]) -> tuple[list[tuple[int, float]], np.ndarray]:
        """The best entries by rapidfuzz and evidence alone, as (entry index, score) best
        first, and the evidence per entry."""
        top, evidence, _, _ = self._scores(tokens)
        return top, evidence

    def _scores(
        self, tokens: Sequence[str]
    ) -> tuple[list[tuple[int, float]], np.ndarray, _Query, np.ndarray]:
        q = self._query(tokens)
        adjust, evidence, most = self._adjustments(q.present)
        if not q.ids:
            return [], evidence, q, adjust
        if self.use_index and self._scan is not None:
            with self._scan_lock:
                found = self._scan.top(q.ids, q.counts, q.length, adjust, q.ordered, TOP_N, most)
            return [(i, s) for s, i in found if s > 0], evidence, q, adjust
        elif self.use_index:
            multiset, distinct = self._overlaps(q)
            found = self._top_indexed(q, multiset, distinct, adjust)
            top = [(i, -neg) for neg, i in found]
        else:
            multiset, distinct = self._overlaps(q)
            raw = self._raw_exhaustive(q, multiset, distinct)
            final = np.where(raw > 0, np.clip(raw + adjust, 0.0, 100.0), 0.0)
            order = np.argsort(-final, kind="stable")[:TOP_N]
            top = [(int(i), float(final[i])) for i in order]
        return [(i, s) for i, s in top if s > 0], evidence, q, adjust

    def _entry_score(self, q: _Query, i: int, adjust: np.ndarray) -> float:
        """Entry ``i``'s score as ``scores`` computes it (the same operations: the same
        floats), from its own examples only. As in the search, an example's ordered ratio is
        read from rapidfuzz only while its bound (the ratio taken as its multiset overlap,
        which it never exceeds) can beat the best so far: an entry may have a hundred
        examples, and a ratio each was most of the cost."""
        lo, hi = int(self._starts[i]), int(self._starts[i + 1])
        if not q.ids or lo == hi:
            return 0.0
        if self._scan is not None and self.use_index and len(self._ordered) < ENTRY_BY_SCAN:
            # The compiled search with every other entry pushed below 0: the same floats,
            # in about a third of the time numpy takes on one entry's few dozen examples.
            alone = np.full(len(self._slugs), -1e9)
            alone[i] = adjust[i]
            with self._scan_lock:
                found = self._scan.top(
                    q.ids, q.counts, q.length, alone, q.ordered, 1, float(adjust[i])
                )
            return next((s for s, j in found if j == i and s > 0), 0.0)
        a, b = int(self._tok_start[lo]), int(self._tok_start[hi])
        qn = np.zeros(len(self._ids))
        qn[q.ids] = q.counts
        mine = qn[self._tok_id[a:b]]
        local = self._tok_example[a:b] - lo
        inter = np.bincount(local, weights=np.minimum(self._tok_n[a:b], mine), minlength=hi - lo)
        shared = np.bincount(local, weights=(mine > 0).astype(np.float64), minlength=hi - lo)
        multiset = 200.0 * inter / (q.length + self._length[lo:hi])
        distinct = 200.0 * shared / (len(q.ids) + self._distinct[lo:hi])
        partial = WEIGHTS[1] * multiset + WEIGHTS[2] * distinct
        bound = partial + WEIGHTS[0] * multiset + BOUND_SLACK
        order = np.argsort(-bound, kind="stable").tolist()
        bound_l, partial_l = bound.tolist(), partial.tolist()
        best = 0.0
        for k in order:
            if bound_l[k] <= best:
                break
            blend = partial_l[k] + WEIGHTS[0] * fuzz.ratio(q.ordered, self._ordered[lo + k])
            if blend > best:
                best = blend
        return min(max(best + adjust[i], 0.0), 100.0) if best > 0 else 0.0

    def blended(
        self, tokens: Sequence[str], words: Sequence[str]
    ) -> tuple[list[tuple[int, float]], np.ndarray, list[float]]:
        """The best entries by the blend (rapidfuzz and evidence, plus the entry model), as
        (entry index, score: up to 100 + MODEL_WEIGHT) best first; the keyword evidence per
        entry; the model's belief in each of the best entries (0 where it has no say)."""
        top, evidence, belief, _ = self._blend(tokens, words)
        return top, evidence, belief

    def _blend(
        self, tokens: Sequence[str], words: Sequence[str]
    ) -> tuple[list[tuple[int, float]], np.ndarray, list[float], _Query]:
        """``blended``, and the query it made."""
        top, evidence, q, adjust = self._scores(tokens)
        # The model says which entry a message is most like, not whether it is about 借呗 at
        # all: off topic, it has no say.
        if self._stop_signals.isdisjoint(q.present) and TOPIC_TOKENS.isdisjoint(q.present):
            return top, evidence, [0.0] * len(top), q
        found = self.model.beliefs(words, tokens, [i for i, _ in top])
        if found is None:
            return top, evidence, [0.0] * len(top), q
        of, _, strongest, strongest_belief = found
        fuzzy = dict(top)
        if strongest not in fuzzy and strongest_belief >= MODEL_RETRIEVE:
            fuzzy[strongest] = self._entry_score(q, strongest, adjust)
            of.append(strongest_belief)
        # An entry with an example phrased exactly like the message gets the model's full
        # points whatever the model learned from its other examples.
        exact = None if q.sequence is None else self._exact.get(q.sequence)
        outdone: list[int] = []
        if exact and len(exact) > 1:
            written = self._exact_text[q.sequence].get("".join(words))
            if written:
                # The entries whose examples only make the same tokens lose the model's vote.
                outdone = [i for i in exact if i not in written]
                exact = written
        if exact:
            of = [
                1.0 if i in exact else 0.0 if i in outdone else b
                for i, b in zip(fuzzy, of, strict=True)
            ]
            # ... and the example is its evidence, as its keywords would be.
            evidence = evidence.copy()
            for i in exact:
                if i in fuzzy and not evidence[i]:
                    fuzzy[i] += float(self._evidence_gain[i])
                    evidence[i] = True
        # Best first, then the lower entry: sorted as (-score, entry) tuples, no key function.
        scored = [
            (-(s + MODEL_WEIGHT * b), i, b) for (i, s), b in zip(fuzzy.items(), of, strict=True)
        ]
        scored.sort()
        best = [x for x in scored[:TOP_N] if x[0] < 0]
        return [(i, -s) for s, i, _ in best], evidence, [b for _, _, b in best], q

    def _floor(self, present: frozenset[str], tokens: Sequence[str]) -> bool:
        """True when the message names 借呗 and says it stopped, and neither says it works nor
        that the user wants to close it (see FLOOR_TOKENS)."""
        # 开通不了: never had it. But opening asked after the stop (借呗被关了怎么开通) is
        # opening it again: the user had it.
        never_had = (
            "OPEN" in present
            and "USED_BEFORE" not in present
            and ("STOPPED" not in present or tokens.index("OPEN") < tokens.index("STOPPED"))
        )
        return present >= FLOOR_TOKENS and AGAINST_TOKENS.isdisjoint(present) and not never_had

    def _asks_about_money_owed(
        self,
        intent: str | None,
        top: list[tuple[int, float]],
        evidence: np.ndarray,
        present: frozenset[str],
        belief: list[float],
    ) -> bool:
        """True when a redirect won with its own keywords in a message that speaks of repaying,
        fees or interest, or a scam (see FLOOR_YIELDS_TO), and the entry model believes it more
        than the overview (or it leads by the margin); or when such a redirect won without
        those words but the model is sure of it and it leads by the margin: the floor leaves it
        that answer."""
        if intent is None or self.entries[intent].kind != "redirect":
            return False
        at = self._top_index(intent, top)
        if at is None:
            return False
        of = dict(zip([i for i, _ in top], belief, strict=True))
        scores = dict(top)
        leads = scores[at] - scores.get(self._overview, 0.0) >= self.margin
        if at in self._money_redirects and of[at] >= MODEL_SURE and leads:
            # 借呗停了剩下几期还按原来的还吗, 收到短信说借呗被冻结要点链接解冻: no keyword,
            # but the model is sure and the redirect leads
            return True
        if FLOOR_YIELDS_TO.isdisjoint(present):
            return False
        # The entry model is the second opinion: it must find the message more like the
        # redirect's examples than the overview's (借呗没了，上个月还款的时候还好好的 is not).
        if not evidence[at]:
            return False
        if of[at] > of.get(self._overview, 0.0):
            return True
        # ... or, where the model is unsure, the redirect leads the overview by the margin
        # (借呗关了之后怎么还款: the model reads both alike).
        return leads

    # -- deciding -------------------------------------------------------------------------

    def match(self, text: str) -> Match:
        """Match a raw message."""
        words = self.pipeline.segment(self.pipeline.normalise(text))
        return self.match_tokens(text, self.pipeline.concepts(words), words)

    def match_tokens(
        self, text: str, tokens: Sequence[str], words: Sequence[str] | None = None
    ) -> Match:
        """Match a message already made tokens; ``words`` are jieba's words of it (the model
        reads their characters), cut again from ``text`` when not given."""
        if words is None:
            words = self.pipeline.segment(self.pipeline.normalise(text))
        top, evidence, belief, q = self._blend(tokens, words)
        present = q.present
        # The model's confidence is relative (which entry, if any); it lowers the bar only
        # when the message says something stopped.
        said_stopped = not self._stop_signals.isdisjoint(present)
        # Scores are shown 0-100; the order and the margin use the blend unclipped, so that two
        # entries that both reach 100 are still told apart.
        slug_kind = self._slug_kind
        candidates = []
        for i, s in top:
            shown = float(s)
            slug, kind = slug_kind[i]
            candidates.append(_candidate((slug, round(shown, 1) if shown < 100.0 else 100.0, kind)))
        intent = self._decide(
            candidates,
            (  # read only for the candidates tied for best
                evidence.item(i) or (b >= MODEL_EVIDENCE and said_stopped)
                for (i, _), b in zip(top, belief, strict=True)
            ),
        )
        if (
            self._overview is not None
            and (intent is None or self.entries[intent].kind not in ANSWER_KINDS)
            and self._floor(present, tokens)
            and not self._asks_about_money_owed(intent, top, evidence, present, belief)
        ):
            intent = self._slugs[self._overview]
            if all(c.slug != intent for c in candidates):
                candidates.append(Candidate(intent, 0.0, "overview"))
        if self._overview is not None and intent == self._slugs[self._overview] and said_stopped:
            intent = self._story_cause(tokens, top, belief) or intent
        elif (
            intent is None  # ... and a story nothing answered, whose best candidate is that cause
            and top
            and self._slug_kind[top[0][0]][1] == "cause"
            and belief[0] >= STORY_BELIEF
            and _is_story(tokens)
        ):
            intent = self._slug_kind[top[0][0]][0]
        if (
            intent is not None
            and not UNCOVERED.isdisjoint(present)
            and self.entries[intent].kind == "redirect"
            and ((at := self._top_index(intent, top)) is None or not evidence[at])
        ):
            # 借呗里的积分怎么没有了, 借呗有什么风险: a thing no entry covers; a redirect
            # that only looks alike (开通, 利息) would mislead. Nothing matched says so.
            intent = None
        if intent is not None and candidates[0].slug != intent:
            rank = next(r for r, c in enumerate(candidates) if c.slug == intent)
            candidates.insert(0, candidates.pop(rank))
        ambiguous = False
        if intent is not None and candidates[0].kind == "cause":
            full = {self._slugs[i]: s for i, s in top}
            causes = [full[x.slug] for x in candidates if x.kind == "cause"]
            ambiguous = len(causes) >= 2 and round(causes[0] - causes[1], 1) < self.margin
        return Match(
            text=text,
            tokens=tuple(tokens),
            candidates=tuple(candidates),
            intent=intent,
            ambiguous=ambiguous,
        )

    def _top_index(self, slug: str, top: list[tuple[int, float]]) -> int | None:
        """The entry index of ``slug`` if it is among the best entries."""
        return next((i for i, _ in top if self._slugs[i] == slug), None)

    def _story_cause(
        self, tokens: Sequence[str], top: list[tuple[int, float]], belief: list[float]
    ) -> str | None:
        """The cause a long story is about, where the overview won (see STORY_TOKENS)."""
        if not _is_story(tokens):
            return None
        overview = dict(top).get(self._overview)
        if overview is None:
            return None  # the floor put the overview there: no score to be near
        for (i, score), b in zip(top, belief, strict=True):
            slug, kind = self._slug_kind[i]
            if kind == "cause" and b >= STORY_BELIEF and score >= overview - STORY_REACH:
                return slug
        return None

    def _decide(self, candidates: list[Candidate], lowered: Iterable[bool]) -> str | None:
        """The best candidate, if it clears its bar (the lower one with evidence); of several
        tied for best, the first that does."""
        if not candidates:
            return None
        best = candidates[0].score
        for c, low in zip(candidates, lowered, strict=True):
            if c.score < best:
                break
            bar = self.answer_threshold if c.kind in ANSWER_KINDS else self.threshold
            if c.score >= (self.evidence_threshold if low else bar):
                return c.slug
        return None

    def slugs(self) -> list[str]:
        return list(self._slugs)
