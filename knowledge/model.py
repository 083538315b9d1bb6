"""The entry model: which entry a message is about, learned from all of each entry's examples.

The rapidfuzz part of the matcher scores an entry by its single best example, which is exact
and explainable but generalises poorly: a question phrased unlike every one example loses,
even when its words are spread over many of the entry's examples. This model pools them.

Features of a message (``features``): the character 1-, 2- and 3-grams of the normalised
text within each run of characters (so 作废, 拉黑, 清零 count even when no lexicon entry has
them), the pipeline's tokens (concepts such as ``OVERDUE`` and content words) and adjacent
token pairs. Each is counted once a message.

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

from collections.abc import Sequence
from itertools import chain, pairwise

import numpy as np

ALPHA = 0.3  # additive smoothing of the counts
MAX_SHARE = 0.5  # features in more entries than this share are dropped (when >= 8 entries)
MIN_ENTRIES_FOR_SHARE = 8
TEMPERATURE = 0.6  # softmax sharpness: the naive Bayes scores times this
NGRAMS = (1, 2, 3)
# A (feature, entry) weight below this is left out: on a large base a common character's
# weight is near zero for each of thousands of entries, and reading them was most of the cost.
MIN_WEIGHT = 0.02
# Up to this many weights (features x entries), they are kept as one dense matrix: a message's
# scores are then one indexed sum instead of a sum of postings.
DENSE_MAX = 2_000_000


def features(normalised: str, tokens: Sequence[str]) -> set[str]:
    """The model's features of a message: character n-grams, tokens, token pairs."""
    runs = normalised.split()
    out = {run[i : i + n] for run in runs for n in NGRAMS for i in range(len(run) - n + 1)}
    out.update(["\x01" + t for t in tokens])
    out.update(["\x02" + a + "\x00" + b for a, b in pairwise(tokens)])
    return out


class EntryModel:
    """Complement naive Bayes over ``features``; built from (entry index, features) pairs."""

    def __init__(self, examples: Sequence[tuple[int, set[str]]], n_entries: int) -> None:
        self.n_entries = n_entries
        flat = list(chain.from_iterable(feats for _, feats in examples))
        ids = {f: i for i, f in enumerate(dict.fromkeys(flat))}
        cols = list(map(ids.__getitem__, flat))
        rows = np.repeat(
            np.asarray([e for e, _ in examples], dtype=np.int64),
            np.asarray([len(f) for _, f in examples], dtype=np.int64),
        )
        n_feat = len(ids)
        self._per_feature = np.zeros(n_entries)
        self._dense: np.ndarray | None = None
        self._ids: dict[str, int] = {}
        self._post_entry: list[np.ndarray] = []
        self._post_weight: list[np.ndarray] = []
        if not n_feat or not n_entries:
            return
        r = rows
        c = np.asarray(cols, dtype=np.int64)
        # Per (feature, entry): how many of the entry's examples have the feature.
        key, count = np.unique(c * n_entries + r, return_counts=True)
        feat, entry = key // n_entries, key % n_entries
        count = count.astype(np.float64)
        # Features in too many entries are dropped.
        spread = np.bincount(feat, minlength=n_feat)
        keep_feat = np.ones(n_feat, dtype=bool)
        if n_entries >= MIN_ENTRIES_FOR_SHARE:
            keep_feat = spread <= MAX_SHARE * n_entries
        keep = keep_feat[feat]
        feat, entry, count = feat[keep], entry[keep], count[keep]
        new_id = np.cumsum(keep_feat) - 1
        feat = new_id[feat]
        vocab = int(keep_feat.sum())
        if not vocab:
            return
        total_f = np.bincount(feat, weights=count, minlength=vocab)  # T_f
        total_c = np.bincount(entry, weights=count, minlength=n_entries)  # N_c
        grand = float(total_c.sum())
        # score_c = sum_f [log(a + T_f) - log(a + T_f - n_cf)] + |q| * log(aV + T - N_c)
        # (the complement's log-likelihood, negated, less a term equal for every entry).
        weight = np.log(ALPHA + total_f[feat]) - np.log(ALPHA + total_f[feat] - count)
        self._per_feature = np.log(ALPHA * vocab + grand - total_c)
        self._per_feature -= self._per_feature.mean()
        big = weight >= MIN_WEIGHT
        feat, entry, weight = feat[big], entry[big], weight[big]
        names = list(ids)
        order = np.argsort(feat, kind="stable")
        feat, entry, weight = feat[order], entry[order], weight[order]
        starts = np.searchsorted(feat, np.arange(vocab + 1))
        kept_names = [names[i] for i in np.flatnonzero(keep_feat)]
        self._ids = dict(zip(kept_names, range(vocab), strict=True))
        self._dense = None
        if vocab * n_entries <= DENSE_MAX:
            self._dense = np.zeros((vocab, n_entries))
            self._dense[feat, entry] = weight
        else:
            for i in range(vocab):
                lo, hi = starts[i], starts[i + 1]
                self._post_entry.append(entry[lo:hi])
                self._post_weight.append(weight[lo:hi])

    def raw(self, feats: set[str]) -> np.ndarray:
        """Per entry, the naive Bayes score of a message's features (higher is likelier)."""
        get = self._ids.get
        known = [i for i in map(get, feats) if i is not None]
        if not known:
            return np.zeros(self.n_entries)
        if self._dense is not None:
            out = self._dense[known].sum(axis=0)
            out += len(known) * self._per_feature
            return out
        out = np.zeros(self.n_entries)
        where = np.concatenate([self._post_entry[i] for i in known])
        weight = np.concatenate([self._post_weight[i] for i in known])
        out += np.bincount(where, weights=weight, minlength=self.n_entries)
        out += len(known) * self._per_feature
        return out

    def scores(self, feats: set[str]) -> np.ndarray:
        """Per entry, 0-1: the softmax of ``raw`` at ``TEMPERATURE`` (all 0 when no feature
        of the message is known)."""
        raw = self.raw(feats)
        if not raw.any():
            return raw
        z = TEMPERATURE * (raw - raw.max())
        p = np.exp(z)
        return p / p.sum()
