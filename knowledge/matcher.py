"""The matcher: which entry a message is about, with a score from 0 to 100.

How a score is made, in order:

1. The message becomes tokens (``TextPipeline.tokens``): concept tokens such as ``OVERDUE``
   or ``NOT_OVERDUE`` plus the remaining content words. Every example phrase of every entry
   was turned into tokens the same way when the matcher was built.
2. Each distinct token is encoded as one character, so that rapidfuzz's C scorers compare
   token sequences, not characters. Concept tokens are written twice: they weigh double.
   Tokens no example has are dropped from the query (they cannot match anything and would only
   dilute long, rambling messages).
3. Three views are scored against every example with ``rapidfuzz.process.cdist``: the token
   sequence in order (word order matters: ``借呗被关`` vs ``我想关借呗``), the sorted tokens
   (a multiset overlap), and the sorted distinct tokens (a set overlap). Their weighted blend
   is the example's score, and an entry's score is its best example's.
4. An entry's ``keywords`` are its evidence: a cause none of whose keywords appear loses
   ``MISSING_KEYWORD_PENALTY`` (a message about 借呗 that names no cause should not land on
   one), and gains ``KEYWORD_BONUS`` when one does.
5. The best entry is the answer if it reaches ``threshold``. When the best two causes are
   within ``margin`` of each other the match is *ambiguous*: the bot asks which one.

Large knowledge bases are served by an inverted index from tokens to examples: an example that
shares no token with the query scores 0 on all three views, so only examples in the postings of
the query's tokens need scoring, and the answers equal the exhaustive scorer's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from knowledge.entries import Entry
from knowledge.text import TextPipeline

THRESHOLD = 55.0
# The bar when the best entry's keywords are in the message: the evidence is there, so a
# long or oddly phrased message may be less like any one example.
EVIDENCE_THRESHOLD = 38.0
MARGIN = 6.0
TOP_N = 5
WEIGHTS = (0.4, 0.3, 0.3)  # ordered, multiset, set
MISSING_KEYWORD_PENALTY = {"cause": 20.0, "overview": 20.0, "redirect": 8.0}
NO_STOP_PENALTY = 4.0
OFF_TOPIC_PENALTY = 25.0
TOPIC_TOKENS = frozenset({"JIEBEI", "FOLLOWUP"})
# "借呗还能正常用": a message saying 借呗 works is not about why it stopped.
# "借呗还能正常用" says it works; "我想关掉借呗" is the user's own doing: neither asks why
# the provider stopped it.
AGAINST_TOKENS = frozenset({"WORKS", "SELF_CLOSE"})
AGAINST_PENALTY = 15.0
# ... unless what is closed is a product that took 借呗's place ("关掉网商贷能换回借呗吗").
REPLACING = frozenset({"WANGSHANGDAI", "CREDITLOAN"})
# The overview answers "stopped, no cause given": when a cause's keywords are in the message
# and that cause is no further than this below the overview, the cause is the answer.
OVERVIEW_YIELD_GAP = 30.0
KEYWORD_BONUS = 4.0
# Scoring every example costs more than building posting lists only past this many examples.
INDEX_MIN_EXAMPLES = 3000
# A token in at most this share of entries is rare (weight 3); up to COMMON_SHARE, weight 2.
RARE_SHARE = 0.15
# How far below the best candidate an entry with keyword evidence may be and still be chosen
# when the best one lacks the evidence to clear its bar.
FALLBACK_GAP = 12.0
COMMON_SHARE = 0.4


@dataclass(frozen=True)
class Candidate:
    slug: str
    score: float
    kind: str


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
class _Compiled:
    slugs: list[str]
    kinds: list[str]
    owner: np.ndarray  # example index -> entry index
    ordered: list[str]
    multiset: list[str]
    distinct: list[str]
    keyword_sets: list[tuple[frozenset[str], ...]]
    postings: dict[str, np.ndarray] = field(default_factory=dict)


class Matcher:
    """Built from entries, answers from memory; build a new one after every write."""

    def __init__(
        self,
        entries: Sequence[Entry],
        pipeline: TextPipeline,
        *,
        threshold: float = THRESHOLD,
        evidence_threshold: float = EVIDENCE_THRESHOLD,
        margin: float = MARGIN,
        use_index: bool | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.threshold = threshold
        self.evidence_threshold = evidence_threshold
        self.margin = margin
        self.entries = {e.slug: e for e in entries}
        self._stop_signals = frozenset(pipeline.lexicon.stop_signals)
        self._index = {e.slug: i for i, e in enumerate(entries)}
        self._topic = TOPIC_TOKENS
        self._codes: dict[str, str] = {}
        self._weights: dict[str, int] = {}
        self._c = self._compile(entries)
        n = len(self._c.ordered)
        self.use_index = n >= INDEX_MIN_EXAMPLES if use_index is None else use_index
        if self.use_index:
            self._c.postings = self._build_postings()

    # -- building -------------------------------------------------------------------------

    def _code(self, token: str) -> str:
        code = self._codes.get(token)
        if code is None:
            code = chr(0x20000 + len(self._codes))
            self._codes[token] = code
        return code

    def _views(self, tokens: Iterable[str]) -> tuple[str, str, str]:
        chars: list[str] = []
        for token in tokens:
            code = self._codes.get(token)
            if code is None:
                continue
            chars.append(code * self._weights.get(code, 1))
        ordered = "".join(chars)
        return ordered, "".join(sorted(ordered)), "".join(sorted(set(ordered)))

    def _compile(self, entries: Sequence[Entry]) -> _Compiled:
        slugs, kinds, owner, token_lists, keyword_sets = [], [], [], [], []
        for i, entry in enumerate(entries):
            slugs.append(entry.slug)
            kinds.append(entry.kind)
            groups = [frozenset(self.pipeline.tokens(word)) for word in entry.keywords]
            keyword_sets.append(tuple(g for g in groups if g))
            for phrase in entry.examples:
                tokens = self.pipeline.tokens(phrase)
                if tokens:
                    for token in tokens:
                        self._code(token)
                    token_lists.append(tokens)
                    owner.append(i)
        self._weights = self._token_weights(token_lists, owner, len(entries))
        views = [self._views(t) for t in token_lists]
        return _Compiled(
            slugs=slugs,
            kinds=kinds,
            owner=np.asarray(owner, dtype=np.int64),
            ordered=[v[0] for v in views],
            multiset=[v[1] for v in views],
            distinct=[v[2] for v in views],
            keyword_sets=keyword_sets,
        )

    def _token_weights(self, token_lists: list[list[str]], owner: list[int],
                       n_entries: int) -> dict[str, int]:
        """How many times a token's character is written: rarer across entries weighs more,
        so 身份证 counts for more than 借呗, which nearly every entry mentions."""
        entries_with: dict[str, set[int]] = {}
        for tokens, i in zip(token_lists, owner, strict=True):
            for token in tokens:
                entries_with.setdefault(token, set()).add(i)
        weights = {}
        for token, where in entries_with.items():
            share = len(where) / max(n_entries, 1)
            weight = 3 if share <= RARE_SHARE else 2 if share <= COMMON_SHARE else 1
            weights[self._codes[token]] = weight if is_concept(token) else 1
        return weights

    def _build_postings(self) -> dict[str, np.ndarray]:
        postings: dict[str, list[int]] = {}
        for i, distinct in enumerate(self._c.distinct):
            for ch in distinct:
                postings.setdefault(ch, []).append(i)
        return {ch: np.asarray(ix, dtype=np.int64) for ch, ix in postings.items()}

    # -- matching -------------------------------------------------------------------------

    def example_scores(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(example indices, blended scores) for the examples that can score above 0."""
        ordered, multiset, distinct = self._views(tokens)
        c = self._c
        if not distinct:
            return np.empty(0, dtype=np.int64), np.empty(0)
        if self.use_index:
            lists = [c.postings[ch] for ch in distinct if ch in c.postings]
            index = np.unique(np.concatenate(lists)) if lists else np.empty(0, dtype=np.int64)
            pick = index.tolist()
            choices = ([c.ordered[i] for i in pick], [c.multiset[i] for i in pick],
                       [c.distinct[i] for i in pick])
        else:
            index = np.arange(len(c.ordered))
            choices = (c.ordered, c.multiset, c.distinct)
        if not len(index):
            return index, np.empty(0)
        total = np.zeros(len(index))
        for weight, query, options in zip(WEIGHTS, (ordered, multiset, distinct), choices,
                                          strict=True):
            total += weight * process.cdist([query], options, scorer=fuzz.ratio, workers=1)[0]
        return index, total

    def entry_scores(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every entry's score for a token sequence, keyword evidence applied, and whether
        the entry's keywords were present."""
        c = self._c
        scores = np.zeros(len(c.slugs))
        evidence = np.zeros(len(c.slugs), dtype=bool)
        index, example = self.example_scores(tokens)
        if len(index):
            np.maximum.at(scores, c.owner[index], example)
        present = set(tokens)
        stopped = not self._stop_signals.isdisjoint(present)
        # A message that names neither 借呗 nor any stop is not asking why 借呗 stopped.
        off_topic = not stopped and not (self._topic & present)
        against = not AGAINST_TOKENS.isdisjoint(present) and not (REPLACING & present)
        for i, keywords in enumerate(c.keyword_sets):
            if scores[i] <= 0:
                continue
            if c.kinds[i] in ("cause", "overview") and off_topic:
                scores[i] -= OFF_TOPIC_PENALTY
            elif c.kinds[i] == "cause" and not stopped:
                scores[i] -= NO_STOP_PENALTY
            if against and c.kinds[i] in ("cause", "overview"):
                scores[i] -= AGAINST_PENALTY
            if not keywords:
                continue
            if any(group <= present for group in keywords):
                scores[i] += KEYWORD_BONUS
                evidence[i] = True
            else:
                scores[i] -= MISSING_KEYWORD_PENALTY.get(c.kinds[i], 0.0)
        return np.clip(scores, 0.0, 100.0), evidence

    def match(self, text: str) -> Match:
        """Match a raw message."""
        tokens = self.pipeline.tokens(text)
        return self.match_tokens(text, tokens)

    def match_tokens(self, text: str, tokens: Sequence[str]) -> Match:
        c = self._c
        scores, evidence = self.entry_scores(tokens)
        order = np.argsort(-scores, kind="stable")[:TOP_N]
        candidates = tuple(
            Candidate(c.slugs[i], round(float(scores[i]), 1), c.kinds[i])
            for i in order
            if scores[i] > 0
        )
        intent = None
        ambiguous = False
        # The answer is the best candidate that clears its bar (lower with keyword evidence),
        # provided it is not far below the best overall.
        for rank, i in enumerate(order):
            if scores[i] <= 0 or scores[order[0]] - scores[i] > FALLBACK_GAP:
                break
            needed = self.evidence_threshold if evidence[i] else self.threshold
            if scores[i] >= needed:
                intent = c.slugs[i]
                if rank:  # put the answer first
                    picked = candidates[rank]
                    candidates = (picked, *candidates[:rank], *candidates[rank + 1:])
                break
        if intent is not None and candidates[0].kind == "overview":
            for rank, x in enumerate(candidates[1:], 1):
                i = self._index[x.slug]
                if (x.kind == "cause" and evidence[i] and x.score >= self.evidence_threshold
                        and candidates[0].score - x.score <= OVERVIEW_YIELD_GAP):
                    intent = x.slug
                    candidates = (x, *candidates[:rank], *candidates[rank + 1:])
                    break
        if intent is not None and candidates[0].kind == "cause":
            causes = [x for x in candidates if x.kind == "cause"]
            ambiguous = len(causes) >= 2 and causes[0].score - causes[1].score < self.margin
        return Match(text=text, tokens=tuple(tokens), candidates=candidates, intent=intent,
                     ambiguous=ambiguous)

    def slugs(self) -> list[str]:
        return list(self._c.slugs)
