"""The knowledge base as the bot uses it: the store on disk plus a matcher in memory.

Reads (``match``, ``entry``, ``entries``) never touch SQLite. Every write goes to the store
and then the matcher is rebuilt from the store, so an edit is live at once. ``refresh``
rebuilds when another process (the ``kb`` CLI) changed the file, seen through the store's
revision counter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from knowledge.entries import Entry
from knowledge.matcher import Match, Matcher
from knowledge.store import Store
from knowledge.text import TextPipeline

T = TypeVar("T")

_pipeline: TextPipeline | None = None
_pipeline_lock = threading.Lock()


def default_pipeline() -> TextPipeline:
    """One text pipeline a process: building jieba's dictionary is the slow part of start-up."""
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = TextPipeline()
        return _pipeline


@dataclass(frozen=True)
class Displaced:
    """An example of ``owner`` that, after an edit, matches ``now`` instead."""

    owner: str
    phrase: str
    now: str | None


class KnowledgeBase:
    def __init__(self, store: Store, pipeline: TextPipeline | None = None) -> None:
        self.store = store
        self.pipeline = pipeline or default_pipeline()
        self._lock = threading.RLock()
        self._rebuild()

    @classmethod
    def open(cls, path: str | Path, pipeline: TextPipeline | None = None) -> KnowledgeBase:
        return cls(Store(path), pipeline)

    def _rebuild(self) -> None:
        with self._lock:
            revision = self.store.revision()
            entries = self.store.entries()
            self.matcher = Matcher(entries, self.pipeline)
            self._entries = {e.slug: e for e in entries}
            self.revision = revision

    # -- reads, from memory ---------------------------------------------------------------

    def match(self, text: str) -> Match:
        return self.matcher.match(text)

    def entry(self, slug: str) -> Entry | None:
        return self._entries.get(slug)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def causes(self) -> list[Entry]:
        return [e for e in self._entries.values() if e.kind == "cause"]

    # -- writes ---------------------------------------------------------------------------

    def write(self, change: Callable[[Store], T]) -> T:
        """Run ``change`` against the store, then rebuild the matcher."""
        with self._lock:
            try:
                return change(self.store)
            finally:
                self._rebuild()

    def refresh(self) -> bool:
        """Rebuild if another process changed the store; True when it did."""
        if self.store.revision() == self.revision:
            return False
        self._rebuild()
        return True

    def displaced_by(self, slug: str, before: Matcher) -> list[Displaced]:
        """Examples of other entries that matched their own entry before an edit of ``slug``
        and now match ``slug`` (or nothing): the safety net shown to the admin after an edit."""
        out: list[Displaced] = []
        for entry in self._entries.values():
            if entry.slug == slug:
                continue
            for phrase in entry.examples:
                was = before.match(phrase).intent
                if was != entry.slug:
                    continue
                now = self.matcher.match(phrase).intent
                if now != entry.slug and now == slug:
                    out.append(Displaced(entry.slug, phrase, now))
        return out
