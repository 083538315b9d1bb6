"""The entry model: which entry a message is about, learned from all of each entry's examples.

The rapidfuzz part of the matcher scores an entry by its single best example, which is exact
and explainable but generalises poorly: a question phrased unlike every one example loses,
even when its words are spread over many of the entry's examples. This model pools them.

Features of a message (``features``): the character 1-, 2- and 3-grams of the normalised
text within each run of characters (so 作废, 拉黑, 清零 count even when no lexicon entry has
them; n-grams across jieba's word boundaries count too: measured, they carry about two points
of cause accuracy on unseen wording), the pipeline's tokens (concepts such as ``OVERDUE`` and
content words) and adjacent token pairs. Each is counted once a message.

The model is complement naive Bayes (Rennie et al. 2003; scikit-learn's ``ComplementNB``
without weight normalisation), fitted in closed form from per-entry feature counts: an entry
scores high when the message's features are rare among the *other* entries' examples. It was
chosen over the alternatives measured (see README "How it matches") because it is as accurate
on unseen wording as a linear SVM or a logistic regression, fits in one pass over the counts
(no iterations, deterministic, no seed needed) and is sparse: the weight of a feature differs
from its default only for entries whose examples have it, so inference is the sum of a few
short postings and the 10,000-entry base costs no dense matrix. Features present in more
than ``MAX_SHARE`` of the entries (借呗, 用不了) are dropped: they tell entries apart little and
their postings would be most of the work.

``EntryModel.scores`` returns, per entry, a number from 0 to 1: the softmax of the naive
Bayes scores at temperature ``TEMPERATURE``, so that the matcher can blend it with its
0-100 scores (``knowledge/matcher.py``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from itertools import pairwise
from operator import add

import numpy as np

try:  # the character n-gram lookup, compiled (knowledge/_scan.c); optional, see setup.py
    from knowledge import _scan
except ImportError:  # pragma: no cover - only without a C compiler at install time
    _scan = None
if _scan is not None and not hasattr(_scan, "Model"):  # pragma: no cover
    _scan = None  # built before the model's functions existed: reinstall to rebuild it

ALPHA = 0.3  # additive smoothing of the counts
MAX_SHARE = 0.5  # features in more entries than this share are dropped (when >= 8 entries)
MIN_ENTRIES_FOR_SHARE = 8
TEMPERATURE = 0.6  # softmax sharpness: the naive Bayes scores times this
# A (feature, entry) weight below this is left out: on a large base a common character's
# weight is near zero for each of thousands of entries, and reading them was most of the cost.
MIN_WEIGHT = 0.02
# Up to this many weights (features x entries), they are kept as one dense matrix: a message's
# scores are then one indexed sum instead of a sum of postings.
DENSE_MAX = 2_000_000
# Phrases whose features a FeatureMemo keeps (ten thousand entries of forty examples each).
MEMO_MAX = 400_000
NAMES_MAX = 5_000_000
_TOKEN = "\x01"
_PAIR = "\x02"


def grams(run: str) -> list[str]:
    """The character 1-, 2- and 3-grams of a run of characters."""
    pairs = list(map(add, run, run[1:]))
    return [*run, *pairs, *map(add, pairs, run[2:])]


def _char_grams(words: Sequence[str]) -> list[str]:
    """The character 1-3-grams of each run of characters jieba's words make up."""
    return [g for run in "".join(words).split() for g in grams(run)]


def features(words: Sequence[str], tokens: Sequence[str]) -> set[str]:
    """The model's features of a message (jieba's words of it, and its tokens): the character
    1-3-grams of each run of characters (within words and across them), the tokens, adjacent
    token pairs."""
    out = set(_char_grams(words))
    out.update([_TOKEN + t for t in tokens])
    out.update([_PAIR + a + "\x00" + b for a, b in pairwise(tokens)])
    return out


class FeatureMemo:
    """Each example phrase's features, as ids of one vocabulary that only grows, so that the
    rebuild after an edit extracts features from the new phrases only: the model is refitted
    from the counts, which is fast; reading every phrase again is not. One memo per text
    pipeline (the features of a phrase depend on nothing else); cleared when it holds
    ``MEMO_MAX`` phrases. Not thread-safe: hold ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.names: list[str] = []
        self._ids: dict[str, int] = {}
        self._phrases: dict[str, np.ndarray] = {}

    def start(self) -> None:
        """Before a build: forget everything when the vocabulary has grown past NAMES_MAX."""
        if len(self.names) > NAMES_MAX:
            self.names.clear()
            self._ids.clear()
            self._phrases.clear()

    def get(self, phrase: str) -> np.ndarray | None:
        return self._phrases.get(phrase)

    def add(self, phrase: str, words: Sequence[str], tokens: Sequence[str]) -> np.ndarray:
        if len(self._phrases) >= MEMO_MAX:
            self._phrases.clear()
        ids = self._ids
        names = self.names
        out = []
        for f in features(words, tokens):
            i = ids.get(f)
            if i is None:
                i = ids[f] = len(names)
                names.append(f)
            out.append(i)
        found = self._phrases[phrase] = np.asarray(out, dtype=np.int64)
        return found


class EntryModel:
    """Complement naive Bayes over ``features``; built from (entry index, feature ids in
    ``memo``) of every example."""

    def __init__(
        self, examples: Sequence[tuple[int, np.ndarray]], n_entries: int, memo: FeatureMemo
    ) -> None:
        self.n_entries = n_entries
        self._dense: np.ndarray | None = None
        self._ids: dict[str, int] = {}
        self._post_start = np.zeros(1, dtype=np.int64)
        self._starts: list[int] = [0]
        self._post_entry = np.empty(0, dtype=np.intp)
        self._post_weight = np.empty(0)
        # The compiled beliefs (knowledge/_scan.c Model) and the token features' ids by token
        # (and by (a, b) for pairs), so that a message costs no string building per token.
        self._compiled: object | None = None
        self._compiled_lock = threading.Lock()  # it keeps scratch arrays
        self._token_ids: dict[str, int] = {}
        self._pair_ids: dict[tuple[str, str], int] = {}
        if not examples or not n_entries:
            return
        c = np.concatenate([ids for _, ids in examples])
        if not len(c):
            return
        r = np.repeat(
            np.fromiter((e for e, _ in examples), dtype=np.int64, count=len(examples)),
            np.fromiter((len(ids) for _, ids in examples), dtype=np.int64, count=len(examples)),
        )
        # Per (feature, entry): how many of the entry's examples have the feature.
        key, count = np.unique(c * n_entries + r, return_counts=True)
        feat, entry = key // n_entries, key % n_entries
        count = count.astype(np.float64)
        # This build's features in the memo's ids, and how many entries each is in.
        present, feat, spread = np.unique(feat, return_inverse=True, return_counts=True)
        # Features in too many entries are dropped.
        keep_feat = np.ones(len(present), dtype=bool)
        if n_entries >= MIN_ENTRIES_FOR_SHARE:
            keep_feat = spread <= MAX_SHARE * n_entries
        keep = keep_feat[feat]
        feat, entry, count = feat[keep], entry[keep], count[keep]
        vocab = int(keep_feat.sum())
        if not vocab:
            return
        feat = (np.cumsum(keep_feat) - 1)[feat]
        total_f = np.bincount(feat, weights=count, minlength=vocab)  # T_f
        # An entry's score: sum over the message's features of log(a + T_f) - log(a + T_f - n_cf)
        # (the complement's log-likelihood, negated, less terms that are equal for every entry
        # or nearly so).
        weight = np.log(ALPHA + total_f[feat]) - np.log(ALPHA + total_f[feat] - count)
        big = weight >= MIN_WEIGHT
        feat, entry, weight = feat[big], entry[big], weight[big]
        # Ids in the order of the features' names, not of the memo's history: the same entries
        # give the same model, to the bit, in any process.
        kept = np.asarray([memo.names[i] for i in present[keep_feat].tolist()], dtype=object)
        by_name = np.argsort(kept.astype(str), kind="stable")
        rank = np.empty(vocab, dtype=np.int64)
        rank[by_name] = np.arange(vocab)
        feat = rank[feat]
        self._ids = dict(zip(kept[by_name].tolist(), range(vocab), strict=True))
        order = np.lexsort((entry, feat))
        self._post_entry = entry[order].astype(np.int64)
        self._post_weight = np.ascontiguousarray(weight[order], dtype=np.float64)
        self._post_start = np.searchsorted(feat[order], np.arange(vocab + 1)).astype(np.int64)
        self._starts = self._post_start.tolist()
        for name, i in self._ids.items():
            if name[0] == _TOKEN:
                self._token_ids[name[1:]] = i
            elif name[0] == _PAIR:
                first, _, second = name[1:].partition("\x00")
                self._pair_ids[first, second] = i
        if _scan is not None:
            grams = {n: i for n, i in self._ids.items() if n[0] != _TOKEN and n[0] != _PAIR}
            self._compiled = _scan.Model(
                grams,
                self._post_start,
                self._post_entry,
                self._post_weight,
                n_entries,
                TEMPERATURE,
            )
        if _scan is None and vocab * n_entries <= DENSE_MAX:  # pragma: no cover
            self._dense = np.zeros((vocab, n_entries))
            self._dense[feat, entry] = weight

    def feature_ids(self, words: Sequence[str], tokens: Sequence[str]) -> list[int]:
        """The ids of a message's known features, each once, in ascending order (so that they
        are summed in one order)."""
        ids = self._ids
        get = ids.get
        if _scan is not None:
            out = set(_scan.gram_ids("".join(words), ids))
        else:  # pragma: no cover - only without a C compiler at install time
            out = {i for i in map(get, _char_grams(words)) if i is not None}
        out.update(i for i in map(get, [_TOKEN + t for t in tokens]) if i is not None)
        pairs = [_PAIR + a + "\x00" + b for a, b in pairwise(tokens)]
        out.update(i for i in map(get, pairs) if i is not None)
        return sorted(out)

    def beliefs(
        self, words: Sequence[str], tokens: Sequence[str], want: Sequence[int]
    ) -> tuple[list[float], float, int, float] | None:
        """What the matcher reads of ``scores``, without building a dict of every entry some
        feature touched: (the belief of each entry of ``want``, the belief of every entry no
        known feature speaks for, the entry believed most, its belief); the same numbers, to
        the bit. None when ``scores`` is None."""
        if self._compiled is None:
            found = self.scores(words, tokens)
            if found is None:
                return None
            beliefs, rest, best = found
            return [beliefs.get(i, rest) for i in want], rest, best, beliefs[best]
        extra = [i for i in map(self._token_ids.get, tokens) if i is not None]
        extra += [i for i in map(self._pair_ids.get, pairwise(tokens)) if i is not None]
        with self._compiled_lock:
            return self._compiled.beliefs("".join(words), extra, list(want))

    def raw(self, known: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The entries some known feature of a message speaks for (ascending) and their naive
        Bayes scores (higher is likelier); every other entry scores 0."""
        if not known:
            return np.empty(0, dtype=np.intp), np.empty(0)
        if self._dense is not None:
            raw = np.add.reduce(self._dense[np.fromiter(known, np.intp, len(known))], axis=0)
            where = np.flatnonzero(raw)
            return where, raw[where]
        start = self._starts
        if len(known) == 1:
            i = known[0]
            return self._post_entry[start[i] : start[i + 1]], self._post_weight[
                start[i] : start[i + 1]
            ]
        # One index over all the features' postings, without a Python slice each.
        lo = np.fromiter((start[i] for i in known), np.intp, len(known))
        hi = np.fromiter((start[i + 1] for i in known), np.intp, len(known))
        size = hi - lo
        at = np.repeat(lo - np.cumsum(size) + size, size) + np.arange(int(size.sum()))
        where, inverse = np.unique(self._post_entry[at], return_inverse=True)
        return where, np.bincount(inverse, weights=self._post_weight[at], minlength=len(where))

    def scores(
        self, words: Sequence[str], tokens: Sequence[str]
    ) -> tuple[dict[int, float], float, int] | None:
        """The softmax of the naive Bayes scores at ``TEMPERATURE`` over every entry, as
        (belief of each entry some known feature speaks for, belief of every other entry, the
        entry believed most); beliefs are 0-1 and sum to 1 over all entries. None when no
        feature of the message is known (the model has nothing to say)."""
        known = self.feature_ids(words, tokens)
        if not known:
            return None
        if _scan is not None:
            return _scan.nb_scores(
                known,
                self._post_start,
                self._post_entry,
                self._post_weight,
                self.n_entries,
                TEMPERATURE,
            )
        where, raw = self.raw(known)  # pragma: no cover - only without a C compiler
        if not len(where):
            return None
        top = float(raw.max())
        best = int(where[int(raw.argmax())])
        raw = np.exp(TEMPERATURE * (raw - top))
        rest = math.exp(-TEMPERATURE * top)
        total = float(raw.sum()) + (self.n_entries - len(where)) * rest
        raw /= total
        return dict(zip(where.tolist(), raw.tolist(), strict=True)), rest / total, best
