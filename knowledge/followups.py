"""Follow-up questions about the cause discussed last: which topic they touch, and what the
knowledge says about that topic for that cause.

The texts live in ``data/followups.yaml`` (``{version: 1, cues: {topic: [...]}, general:
{topic: text}, causes: {slug: {topic: text}}}``). A cause without a text of its own for a
topic gets the general one, with ``{title}`` filled in by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import yaml

from knowledge.entries import CAUSE_SLUGS

FOLLOWUPS_VERSION = 1
TOPICS = ("repay", "wait", "call", "next")


class FollowUpError(ValueError):
    """The follow-ups file is invalid; the message says where."""


@dataclass(frozen=True)
class FollowUps:
    cues: dict[str, tuple[str, ...]]
    general: dict[str, str]
    causes: dict[str, dict[str, str]]

    def topics(self, folded: str) -> list[str]:
        """The topics a normalised, punctuation-free message touches, in answering order."""
        return [t for t in TOPICS if any(cue in folded for cue in self.cues.get(t, ()))]

    def answer(self, cause: str, topic: str) -> tuple[str, bool]:
        """The text for ``topic`` about ``cause``, and whether it is the general one."""
        own = self.causes.get(cause, {}).get(topic)
        if own is not None:
            return own, False
        return self.general[topic], True


def _texts(where: str, value: object, topics: Iterable[str] = TOPICS) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FollowUpError(f"{where}: must be a mapping of topic to text")
    out: dict[str, str] = {}
    for topic, text in value.items():
        if topic not in topics:
            raise FollowUpError(f"{where}: unknown topic {topic!r}")
        if not isinstance(text, str) or not text.strip():
            raise FollowUpError(f"{where}.{topic}: must be a non-empty text")
        out[topic] = text.strip()
    return out


def parse_followups(text: str, causes: Iterable[str] = CAUSE_SLUGS) -> FollowUps:
    """Parse and validate a follow-ups document; raises FollowUpError."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or doc.get("version") != FOLLOWUPS_VERSION:
        raise FollowUpError(f"follow-ups must have version {FOLLOWUPS_VERSION}")
    raw_cues = doc.get("cues")
    if not isinstance(raw_cues, dict):
        raise FollowUpError("field 'cues' must be a mapping of topic to a list of words")
    cues: dict[str, tuple[str, ...]] = {}
    for topic, words in raw_cues.items():
        if topic not in TOPICS:
            raise FollowUpError(f"cues: unknown topic {topic!r}")
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise FollowUpError(f"cues.{topic}: must be a list of words")
        cues[topic] = tuple(words)
    general = _texts("general", doc.get("general"))
    missing = [t for t in TOPICS if t not in general]
    if missing:
        raise FollowUpError(f"general: topic {missing[0]!r} has no text")
    known = frozenset(causes)
    by_cause: dict[str, dict[str, str]] = {}
    for slug, texts in (doc.get("causes") or {}).items():
        if slug not in known:
            raise FollowUpError(f"causes: unknown cause {slug!r}")
        by_cause[slug] = _texts(f"causes.{slug}", texts)
    return FollowUps(cues, general, by_cause)


def load_followups() -> FollowUps:
    """The follow-ups shipped with the package (knowledge/data/followups.yaml)."""
    path = resources.files("knowledge").joinpath("data/followups.yaml")
    return parse_followups(path.read_text("utf-8"))
