"""Guided diagnosis: a few yes/no questions that re-rank the eleven causes.

The questions live in ``data/diagnosis.yaml``::

    {version: 1, questions: [{id, text, yes: [cause slugs], maybe: [cause slugs]}]}

A :class:`Diagnosis` holds a probability for each cause, uniform at the start unless a prior
is given. Each question is a likelihood model: the chance that a user whose cause is ``c``
answers 是 is ``P_YES`` when ``c`` is in the question's ``yes`` list, ``P_MAYBE`` when it is
in ``maybe`` and ``P_OTHER`` otherwise. An answer of 是 multiplies every cause's probability
by that chance, 否 by its complement, and the result is normalised (Bayes' rule). 不确定 tells
us nothing and leaves the probabilities unchanged.

The next question is the unasked one whose answer is expected to reduce the entropy of the
cause distribution the most (the greatest expected information gain). The diagnosis stops
once the top cause reaches ``STOP_POSTERIOR``, after ``MAX_QUESTIONS`` questions, or when no
question is left.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml

from knowledge.entries import CAUSE_SLUGS

DIAGNOSIS_VERSION = 1
# P(answer 是 | cause): the cause is named in the question's "yes" list, in its "maybe" list,
# or not at all. Not 1.0 and 0.0: people misremember, and one answer must never rule a cause
# out for good.
P_YES = 0.85
P_MAYBE = 0.5
P_OTHER = 0.1
STOP_POSTERIOR = 0.6
MAX_QUESTIONS = 6

Answer = Literal["yes", "no", "unsure"]
ANSWERS: tuple[Answer, ...] = ("yes", "no", "unsure")


class DiagnosisError(ValueError):
    """The questions file is invalid; the message names the question and field."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    yes: frozenset[str] = frozenset()
    maybe: frozenset[str] = frozenset()

    def p_yes(self, cause: str) -> float:
        """The chance that a user with ``cause`` answers 是."""
        if cause in self.yes:
            return P_YES
        if cause in self.maybe:
            return P_MAYBE
        return P_OTHER


def _slug_list(where: str, name: str, value: Any, causes: frozenset[str]) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DiagnosisError(f"{where}: field '{name}' must be a list of cause slugs")
    unknown = [v for v in value if v not in causes]
    if unknown:
        raise DiagnosisError(f"{where}: field '{name}' names unknown cause {unknown[0]!r}")
    return frozenset(value)


def parse_questions(text: str, causes: Iterable[str] = CAUSE_SLUGS) -> list[Question]:
    """Parse and validate a diagnosis document; raises DiagnosisError."""
    known = frozenset(causes)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DiagnosisError(f"diagnosis questions are not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != DIAGNOSIS_VERSION:
        raise DiagnosisError(f"diagnosis questions must have version {DIAGNOSIS_VERSION}")
    raw = doc.get("questions")
    if not isinstance(raw, list) or not raw:
        raise DiagnosisError("field 'questions' must be a non-empty list")
    out: list[Question] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"question {i + 1}"
        if not isinstance(item, dict):
            raise DiagnosisError(f"{where}: must be an object")
        qid, qtext = item.get("id"), item.get("text")
        if not isinstance(qid, str) or not qid.strip():
            raise DiagnosisError(f"{where}: field 'id' must be a non-empty string")
        where = f"question {i + 1} ({qid})"
        if qid in seen:
            raise DiagnosisError(f"{where}: field 'id' is a duplicate")
        if not isinstance(qtext, str) or not qtext.strip():
            raise DiagnosisError(f"{where}: field 'text' must be a non-empty string")
        # PyYAML reads a bare `yes:` key as the boolean True.
        yes = _slug_list(where, "yes", item.get("yes", item.get(True)), known)
        maybe = _slug_list(where, "maybe", item.get("maybe"), known)
        if yes & maybe:
            raise DiagnosisError(f"{where}: {sorted(yes & maybe)[0]!r} is in both yes and maybe")
        seen.add(qid)
        out.append(Question(qid, qtext.strip(), yes, maybe))
    return out


def load_questions() -> list[Question]:
    """The questions shipped with the package (knowledge/data/diagnosis.yaml)."""
    path = resources.files("knowledge").joinpath("data/diagnosis.yaml")
    return parse_questions(path.read_text("utf-8"))


def entropy(probabilities: Iterable[float]) -> float:
    """Shannon entropy in bits."""
    return -sum(p * math.log2(p) for p in probabilities if p > 0)


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:  # cannot happen with likelihoods in (0, 1); kept as a guard
        return {c: 1 / len(weights) for c in weights}
    return {c: w / total for c, w in weights.items()}


def update(posterior: Mapping[str, float], question: Question, answer: Answer) -> dict[str, float]:
    """Bayes' rule for one answer; 不确定 returns the distribution unchanged."""
    if answer == "unsure":
        return dict(posterior)
    if answer == "yes":
        return _normalised({c: p * question.p_yes(c) for c, p in posterior.items()})
    if answer == "no":
        return _normalised({c: p * (1 - question.p_yes(c)) for c, p in posterior.items()})
    raise ValueError(f"unknown answer {answer!r}")


def information_gain(posterior: Mapping[str, float], question: Question) -> float:
    """Expected entropy reduction (bits) from asking ``question``, over 是 and 否."""
    p_yes = sum(p * question.p_yes(c) for c, p in posterior.items())
    expected = 0.0
    for answer, p_answer in (("yes", p_yes), ("no", 1 - p_yes)):
        if p_answer > 0:
            expected += p_answer * entropy(update(posterior, question, answer).values())
    return entropy(posterior.values()) - expected


@dataclass
class Diagnosis:
    """One user's diagnosis in progress. Plain data; no I/O."""

    questions: list[Question]
    posterior: dict[str, float] = field(default_factory=dict)
    asked: list[tuple[str, Answer]] = field(default_factory=list)
    current: Question | None = None

    def __post_init__(self) -> None:
        if not self.posterior:
            self.posterior = {c: 1 / len(CAUSE_SLUGS) for c in CAUSE_SLUGS}
        else:
            self.posterior = _normalised(self.posterior)
        self.current = self._pick()

    @classmethod
    def start(
        cls, questions: list[Question] | None = None, prior: Mapping[str, float] | None = None
    ) -> Diagnosis:
        return cls(questions if questions is not None else load_questions(), dict(prior or {}))

    @classmethod
    def resume(
        cls,
        questions: list[Question],
        posterior: Mapping[str, float],
        asked: list[tuple[str, Answer]],
        current: str | None,
    ) -> Diagnosis:
        """A diagnosis as it was saved, its current question taken as it was rather than
        picked again (picking weighs every question; a restart may bring back thousands of
        diagnoses). A current question that no longer exists is picked afresh."""
        d = cls.__new__(cls)
        d.questions, d.posterior, d.asked = questions, dict(posterior), list(asked)
        d.current = next((q for q in questions if q.id == current), None)
        if d.current is None and current is not None:
            d.current = d._pick()
        return d

    @property
    def step(self) -> int:
        """How many questions have been answered."""
        return len(self.asked)

    @property
    def done(self) -> bool:
        return self.current is None

    def _pick(self) -> Question | None:
        if self.ranked()[0][1] >= STOP_POSTERIOR or len(self.asked) >= MAX_QUESTIONS:
            return None
        asked = {qid for qid, _ in self.asked}
        best, best_gain = None, -1.0
        for q in self.questions:  # ties go to the earlier question in the file
            if q.id in asked:
                continue
            gain = information_gain(self.posterior, q)
            if gain > best_gain + 1e-12:
                best, best_gain = q, gain
        return best

    def answer(self, answer: Answer) -> Question | None:
        """Answer the current question; returns the next one (None when finished)."""
        if self.current is None:
            raise ValueError("the diagnosis is finished")
        if answer not in ANSWERS:
            raise ValueError(f"unknown answer {answer!r}")
        self.posterior = update(self.posterior, self.current, answer)
        self.asked.append((self.current.id, answer))
        self.current = self._pick()
        return self.current

    def ranked(self) -> list[tuple[str, float]]:
        """Every cause with its probability, most likely first."""
        order = {c: i for i, c in enumerate(self.posterior)}
        return sorted(self.posterior.items(), key=lambda kv: (-kv[1], order[kv[0]]))

    def result(self, n: int = 3, floor: float = 0.05) -> list[tuple[str, float]]:
        """The top causes: the best always, then up to ``n - 1`` more of at least ``floor``."""
        ranked = self.ranked()
        return ranked[:1] + [(c, p) for c, p in ranked[1:n] if p >= floor]


# -- what the answers say, in words -------------------------------------------------------

# A cause is singled out only when a 是 answer points at it and it is at least LEAD_RATIO
# times as likely as the next cause a 是 answer points at.
LEAD_RATIO = 2.0
# How sure the bot says it is about a singled-out cause.
HIGH_CONFIDENCE = 0.6
MEDIUM_CONFIDENCE = 0.4

Evidence = Literal["supported", "denied", "unsure", "unasked", "mixed"]
Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Verdict:
    """What the answers allow us to say.

    ``kind`` is ``"clear"`` (one cause singled out: ``causes[0]``, with ``confidence``),
    ``"several"`` (the answers point at the causes in ``causes`` about equally) or ``"none"``
    (no answer pointed at one cause without another answer against it; ``causes`` are those
    not ruled out, partly fitting ones first, then never-asked ones, and must not be
    presented as likely). ``denied`` are the causes the user said no to (or rejected
    before): never advise on them. ``mixed``: causes with a 是 and a 否 among their answers.
    """

    kind: Literal["clear", "several", "none"]
    causes: tuple[str, ...]
    confidence: Confidence | None = None
    unasked: tuple[str, ...] = ()
    unsure: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    mixed: tuple[str, ...] = ()


def _confidence(p: float) -> Confidence:
    if p >= HIGH_CONFIDENCE:
        return "high"
    if p >= MEDIUM_CONFIDENCE:
        return "medium"
    return "low"


def _evidence(d: Diagnosis) -> dict[str, Evidence]:
    """Per cause: what the user's answers to the questions about it said. A question asks
    about the causes of its ``yes`` list; its ``maybe`` list is only a weak hint."""
    by_id = {q.id: q for q in d.questions}
    out: dict[str, Evidence] = {}
    for cause in d.posterior:
        said = {a for qid, a in d.asked if (q := by_id.get(qid)) is not None and cause in q.yes}
        if "yes" in said:
            out[cause] = "mixed" if "no" in said else "supported"
        elif "no" in said:
            out[cause] = "denied"
        elif "unsure" in said:
            out[cause] = "unsure"
        else:
            out[cause] = "unasked"
    return out


def verdict(d: Diagnosis, rejected: Iterable[str] = ()) -> Verdict:
    """What to tell the user at the end of a diagnosis. ``rejected``: causes the user already
    said were not theirs in this conversation (they count as denied)."""
    evidence = _evidence(d)
    for cause in rejected:
        if cause in evidence:
            evidence[cause] = "denied"
    ranked = d.ranked()
    denied = tuple(c for c, _ in ranked if evidence[c] == "denied")
    unasked = tuple(c for c, _ in ranked if evidence[c] == "unasked")
    unsure = tuple(c for c, _ in ranked if evidence[c] == "unsure")
    mixed = tuple(c for c, _ in ranked if evidence[c] == "mixed")
    # Only a cause whose answers all agree is singled out: "借得频繁" 是 but "总提前还清" 否
    # does not make 频繁借还 the answer.
    supported = [(c, p) for c, p in ranked if evidence[c] == "supported"]
    if supported:
        (lead, p), rest = supported[0], supported[1:]
        if not rest or p >= LEAD_RATIO * rest[0][1]:
            return Verdict("clear", (lead,), _confidence(p), unasked, unsure, denied, mixed)
        close = tuple(c for c, q in supported[:3] if q * LEAD_RATIO > p)
        return Verdict("several", close, None, unasked, unsure, denied, mixed)
    # Nothing pointed at one cause clearly: the partly fitting, never-asked and unsure ones
    # are still open.
    return Verdict("none", mixed + unasked + unsure, None, unasked, unsure, denied, mixed)
