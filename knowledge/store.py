"""The knowledge base on disk: SQLite through sqlite-utils.

Tables (created by the recorded migrations below, so opening an existing file is a no-op):

- ``entries`` / ``examples``: the knowledge entries and their example phrases.
- ``history``: every change, with who made it and the entry before and after (a whole
  knowledge base snapshot for imports), so that ``undo`` can restore it exactly.
- ``questions``: every question answered (intent, score, the chat it came from), for
  ``/stats``; unmatched ones feed the admins' ``/unmatched`` inbox. The text is stored masked
  (:func:`knowledge.privacy.mask`): no ID, phone or card number, no e-mail address.
- ``feedback``: 有帮助 / 没帮助 per entry, and the chat it came from.
- ``chat_state``: what the bot remembers of each chat (the conversation's state as JSON), so
  that buttons and a diagnosis survive a restart.
- ``suggestions``: what users told the bot about an answer, with the question they asked:
  没帮助, "这不是我的情况" and the entry they then opened, a "which one?" choice, a reworded
  question that landed elsewhere. Each names the entry answered and the entry the user went
  to (or none); an admin accepts one (the question becomes an example, an ordinary recorded
  edit) or dismisses it in ``/review``. ``chat`` and ``at`` say whose and when.
- ``meta``: ``revision``, raised by every change to entries, so a running bot notices edits
  made by another process (the ``kb`` CLI) without a restart.

Every write runs in one transaction, and a change reads the entry it changes inside that
transaction (``BEGIN IMMEDIATE`` takes SQLite's write lock first), so two processes editing at
once (the bot and the ``kb`` CLI) never lose each other's edits. The database is in WAL mode so
readers never block the writer. :class:`StoreError` is raised for anything the caller should
report to a person.

Users' rows are kept ``RETENTION_DAYS`` (``prune``) and deleted on request (``forget``); the
connection runs with ``secure_delete`` so deleted rows are overwritten, not just unlinked, and
both truncate the WAL file afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from knowledge.entries import (
    MAX_EXAMPLE_CHARS,
    MAX_EXAMPLES,
    TEXT_FIELDS,
    Entry,
    clean_text,
    dump_document,
    parse_document,
    shipped_entries,
    validate_slug,
)
from knowledge.privacy import mask

# Questions queued by ``queue_question`` are written at the latest when this many wait.
QUESTION_BATCH = 200
# ``questions.assigned`` of an unmatched question an admin filed away as off topic.
DISMISSED = "-"
# Stored questions and feedback older than this are deleted (QUESTION_RETENTION_DAYS).
RETENTION_DAYS = 180
DAY = 86_400.0
# Tables whose rows belong to a chat (a ``chat`` column): what ``forget`` and ``prune`` clear.
# A table another part adds later (user corrections) joins by being listed here.
CHAT_TABLES = ("questions", "feedback", "suggestions")


class StoreError(Exception):
    """A change was refused (unknown slug, duplicate, bad field); nothing was written."""


migrations = Migrations("jiebei-bot")


@migrations()
def m001_initial(db: Database) -> None:
    db["entries"].create(
        {
            "slug": str,
            "kind": str,
            "title": str,
            "explanation": str,
            "solution": str,
            "keywords": str,
            "related": str,
            "position": int,
            "updated_at": float,
        },
        pk="slug",
    )
    db["examples"].create(
        {"id": int, "slug": str, "phrase": str, "position": int},
        pk="id",
        foreign_keys=[("slug", "entries", "slug")],
    )
    db["examples"].create_index(["slug", "phrase"], unique=True)
    db["history"].create(
        {
            "id": int,
            "at": float,
            "actor": str,
            "action": str,
            "slug": str,
            "detail": str,
            "before": str,
            "after": str,
            "undone": int,
        },
        pk="id",
        defaults={"undone": 0},
    )
    db["questions"].create(
        {
            "id": int,
            "at": float,
            "text": str,
            "intent": str,
            "score": float,
            "matched": int,
            "assigned": str,
        },
        pk="id",
    )
    db["questions"].create_index(["matched", "at"])
    db["feedback"].create(
        {"id": int, "at": float, "slug": str, "helpful": int, "chat": str}, pk="id"
    )
    db["meta"].create({"key": str, "value": str}, pk="key")


@migrations()
def m002_privacy(db: Database) -> None:
    """Questions know their chat (for ``/forget``); dates are indexed (for retention); the
    conversation state gets a table of its own."""
    db["questions"].add_column("chat", str)
    db["questions"].create_index(["chat"])
    db["questions"].create_index(["at"])
    db["feedback"].create_index(["chat"])
    db["feedback"].create_index(["at"])
    db["chat_state"].create({"chat": str, "seen": float, "state": str}, pk="chat")
    db["chat_state"].create_index(["seen"])


@migrations()
def m003_suggestions(db: Database) -> None:
    db["suggestions"].create(
        {
            "id": int,
            "at": float,
            "chat": str,
            "kind": str,  # one of SUGGESTION_KINDS
            "question": str,
            "answered": str,  # the entry the bot answered with; None after "which one?"
            "went_to": str,  # the entry the user went to; None when they went nowhere
            "status": str,  # "open", "accepted" or "dismissed"
            "target": str,  # the entry it was added to, once accepted
            "resolved_at": float,
        },
        pk="id",
        defaults={"status": "open"},
    )
    db["suggestions"].create_index(["status", "went_to"])
    db["suggestions"].create_index(["chat"])
    db["suggestions"].create_index(["at"])


# What a suggestion records: 没帮助 on an answer; "这不是我的情况" (then, if any, the entry the
# user opened or the cause the diagnosis ended on); a pick after "which one?"; a reworded
# question soon after an answer that landed on another entry.
SUGGESTION_KINDS = ("unhelpful", "not_mine", "choice", "rephrase")
# Kinds that say the first answer was wrong (a choice corrects no answer: none was given).
CORRECTING_KINDS = ("unhelpful", "not_mine", "rephrase")
WEEK = 7 * 86400


@dataclass(frozen=True)
class Change:
    """One row of the edit history."""

    id: int
    at: float
    actor: str
    action: str
    slug: str | None
    detail: str
    before: Any
    after: Any
    undone: bool


def stored_text(text: str) -> str:
    """A user's question as it is stored, in the question log and in suggestions alike: the
    one place a question's text passes on its way to disk."""
    # Masked here, whoever the caller: no personal number is ever written (mask is
    # idempotent, and cheap on text without digits).
    text = mask(text)[:500]
    # A lone surrogate (JSON allows "\ud800") cannot be stored as UTF-8: keep a "?".
    return text.encode("utf-8", "replace").decode("utf-8")


def _question_row(text: str, intent: str | None, score: float, chat: str | None) -> dict[str, Any]:
    return {
        "at": time.time(),
        "text": stored_text(text),
        "intent": intent,
        "score": score,
        "matched": int(intent is not None),
        "assigned": None,
        "chat": chat,
    }


def _change(r: dict[str, Any]) -> Change:
    return Change(
        r["id"],
        r["at"],
        r["actor"],
        r["action"],
        r["slug"],
        r["detail"],
        json.loads(r["before"] or "null"),
        json.loads(r["after"] or "null"),
        bool(r["undone"]),
    )


class Store:
    """The SQLite knowledge base. Methods are thread-safe; each write is one transaction."""

    def __init__(self, path: str | Path, *, seed: bool = True) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create directory {self.path.parent}: {exc}") from None
        try:
            conn = sqlite3.connect(
                str(path), timeout=30, check_same_thread=False, isolation_level=None
            )
            self.db = Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten
            self._lock = threading.RLock()
            self._pending_lock = threading.Lock()
            self._pending: list[dict[str, Any]] = []
            with self._lock:
                migrations.apply(self.db)
                if seed and not self.db["entries"].count:
                    self._write_all(shipped_entries())
                    self._bump_revision()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open knowledge base {path}: {exc}") from None

    def close(self) -> None:
        self.flush_questions()
        self.db.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; a block nested in another joins it (the lock is held, so an
        open transaction on this connection is always our own thread's)."""
        with self._lock:
            if self.db.conn.in_transaction:
                yield
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")

    # -- reading --------------------------------------------------------------------------

    def revision(self) -> int:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0]) if row else 0

    def entries(self) -> list[Entry]:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM entries ORDER BY position, slug"))
            examples: dict[str, list[str]] = {}
            for row in self.db.query("SELECT slug, phrase FROM examples ORDER BY slug, position"):
                examples.setdefault(row["slug"], []).append(row["phrase"])
        return [self._entry(row, examples.get(row["slug"], [])) for row in rows]

    def get(self, slug: str) -> Entry | None:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM entries WHERE slug = ?", [slug]))
            if not rows:
                return None
            examples = [
                r["phrase"]
                for r in self.db.query(
                    "SELECT phrase FROM examples WHERE slug = ? ORDER BY position", [slug]
                )
            ]
        return self._entry(rows[0], examples)

    @staticmethod
    def _entry(row: dict[str, Any], examples: list[str]) -> Entry:
        return Entry(
            slug=row["slug"],
            kind=row["kind"],
            title=row["title"],
            explanation=row["explanation"] or "",
            solution=row["solution"] or "",
            keywords=json.loads(row["keywords"] or "[]"),
            related=json.loads(row["related"] or "[]"),
            examples=examples,
        )

    def export(self, fmt: str = "json") -> str:
        return dump_document(self.entries(), fmt)

    # -- writing entries ------------------------------------------------------------------

    def _bump_revision(self) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES('revision', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def _write_entry(self, entry: Entry, position: int | None = None) -> None:
        if position is None:
            row = self.db.execute(
                "SELECT position FROM entries WHERE slug = ?", [entry.slug]
            ).fetchone()
            if row is None:
                row = self.db.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM entries"
                ).fetchone()
            position = int(row[0])
        self.db.execute("DELETE FROM examples WHERE slug = ?", [entry.slug])
        self.db["entries"].upsert(
            {
                "slug": entry.slug,
                "kind": entry.kind,
                "title": entry.title,
                "explanation": entry.explanation,
                "solution": entry.solution,
                "keywords": json.dumps(entry.keywords, ensure_ascii=False),
                "related": json.dumps(entry.related, ensure_ascii=False),
                "position": position,
                "updated_at": time.time(),
            },
            pk="slug",
        )
        self.db["examples"].insert_all(
            {"slug": entry.slug, "phrase": p, "position": i} for i, p in enumerate(entry.examples)
        )

    def _delete_entry(self, slug: str) -> None:
        self.db.execute("DELETE FROM examples WHERE slug = ?", [slug])
        self.db.execute("DELETE FROM entries WHERE slug = ?", [slug])

    def _write_all(self, entries: Sequence[Entry]) -> None:
        self.db.execute("DELETE FROM examples")
        self.db.execute("DELETE FROM entries")
        for i, entry in enumerate(entries):
            self._write_entry(entry, i)

    def _record(
        self, actor: str, action: str, slug: str | None, detail: str, before: Any, after: Any
    ) -> int:
        return (
            self.db["history"]
            .insert(
                {
                    "at": time.time(),
                    "actor": actor,
                    "action": action,
                    "slug": slug,
                    "detail": detail,
                    "before": json.dumps(before, ensure_ascii=False),
                    "after": json.dumps(after, ensure_ascii=False),
                    "undone": 0,
                }
            )
            .last_pk
        )

    def _require(self, slug: str) -> Entry:
        entry = self.get(slug)
        if entry is None:
            raise StoreError(f"no entry {slug!r}")
        return entry

    def _change(
        self,
        actor: str,
        action: str,
        slug: str,
        detail: str,
        before: Entry | None,
        after: Entry | None,
    ) -> None:
        with self._tx():
            if after is None:
                self._delete_entry(slug)
            else:
                self._write_entry(after)
            self._record(
                actor,
                action,
                slug,
                detail,
                before.to_dict() if before else None,
                after.to_dict() if after else None,
            )
            self._bump_revision()

    def add(self, slug: str, title: str, *, actor: str, kind: str = "cause") -> Entry:
        try:
            validate_slug(slug)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        title = clean_text(title)
        if not title or len(title) > TEXT_FIELDS["title"]:
            raise StoreError(f"title must be 1-{TEXT_FIELDS['title']} characters")
        with self._tx():
            if self.get(slug) is not None:
                raise StoreError(f"entry {slug!r} exists already")
            entry = Entry(slug=slug, title=title, kind=kind)
            self._change(actor, "add", slug, f"add {slug}", None, entry)
        return entry

    def set_field(self, slug: str, name: str, value: str, *, actor: str) -> Entry:
        if name not in (*TEXT_FIELDS, "kind"):
            raise StoreError(f"unknown field {name!r}")
        value = clean_text(value)
        if name == "kind":
            from knowledge.entries import KINDS

            if value not in KINDS:
                raise StoreError(f"kind must be one of {', '.join(KINDS)}")
        elif len(value) > TEXT_FIELDS[name] or (name == "title" and not value):
            raise StoreError(f"{name} must be 1-{TEXT_FIELDS[name]} characters")
        with self._tx():
            before = self._require(slug)
            if getattr(before, name) == value:
                return before  # nothing changes: no history row, no new revision
            after = Entry(**{**before.to_dict(), name: value})
            self._change(actor, "set", slug, f"set {slug}.{name}", before, after)
        return after

    def add_example(self, slug: str, phrase: str, *, actor: str) -> Entry:
        phrase = clean_text(phrase)
        if not phrase or len(phrase) > MAX_EXAMPLE_CHARS:
            raise StoreError(f"an example must be 1-{MAX_EXAMPLE_CHARS} characters")
        with self._tx():
            before = self._require(slug)
            if phrase in before.examples:
                raise StoreError(f"{slug!r} has that example already")
            if len(before.examples) >= MAX_EXAMPLES:
                raise StoreError(f"{slug!r} has {MAX_EXAMPLES} examples already")
            after = Entry(**{**before.to_dict(), "examples": [*before.examples, phrase]})
            self._change(actor, "example", slug, f"example {slug} + {phrase}", before, after)
        return after

    def remove_example(self, slug: str, phrase: str, *, actor: str) -> Entry:
        phrase = clean_text(phrase)
        with self._tx():
            before = self._require(slug)
            if phrase not in before.examples:
                raise StoreError(f"{slug!r} has no such example")
            examples = [p for p in before.examples if p != phrase]
            after = Entry(**{**before.to_dict(), "examples": examples})
            self._change(actor, "unexample", slug, f"unexample {slug} - {phrase}", before, after)
        return after

    def delete(self, slug: str, *, actor: str) -> Entry:
        with self._tx():
            before = self._require(slug)
            self._change(actor, "delete", slug, f"delete {slug}", before, None)
        return before

    def import_document(self, data: bytes | str, *, actor: str) -> list[Entry]:
        """Replace the whole knowledge base with a document, all or nothing."""
        entries = parse_document(data)
        with self._tx():
            before = [e.to_dict() for e in self.entries()]
            self._write_all(entries)
            self._record(
                actor,
                "import",
                None,
                f"import {len(entries)} entries",
                before,
                [e.to_dict() for e in entries],
            )
            self._bump_revision()
        return entries

    # -- history --------------------------------------------------------------------------

    def history(self, slug: str | None = None, limit: int = 20) -> list[Change]:
        where, args = ("WHERE slug = ?", [slug]) if slug else ("", [])
        with self._lock:
            rows = list(
                self.db.query(
                    f"SELECT * FROM history {where} ORDER BY id DESC LIMIT ?", [*args, limit]
                )
            )
        return [_change(r) for r in rows]

    def undo(self, *, actor: str, change_id: int | None = None) -> Change | None:
        """Take back the latest change not yet undone; returns it, or None if none is left.

        With ``change_id`` (an undo button shown after one particular edit) only that change
        is taken back, and only while it is still the latest: StoreError otherwise, so a
        stale button never undoes somebody else's later edit.
        """
        with self._lock, self._tx():
            change = self.latest_undoable()
            if change_id is not None and (change is None or change.id != change_id):
                raise StoreError(f"change #{change_id} is no longer the latest change")
            if change is None:
                return None
            if change.action == "import":
                self._write_all([Entry(**d) for d in change.before])
            elif change.before is None:
                self._delete_entry(change.slug)
            else:
                self._write_entry(Entry(**change.before))
            self.db.execute("UPDATE history SET undone = 1 WHERE id = ?", [change.id])
            self._record(
                actor,
                "undo",
                change.slug,
                f"undo #{change.id}: {change.detail}",
                change.after,
                change.before,
            )
            self._bump_revision()
        return change

    def latest_undoable(self) -> Change | None:
        """The change ``undo`` would take back now, if any."""
        with self._lock:
            row = self.db.execute(
                "SELECT id FROM history WHERE undone = 0 AND action != 'undo' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return self._history_row(row[0]) if row else None

    def _history_row(self, change_id: int) -> Change:
        return _change(self.db["history"].get(change_id))

    # -- questions and feedback -----------------------------------------------------------

    def log_question(
        self, text: str, intent: str | None, score: float, *, chat: str | None = None
    ) -> int:
        """Store one answered question now; returns its id (see ``queue_question``)."""
        self.flush_questions()  # keep ids in the order the questions came
        with self._lock, self._tx():
            return self.db["questions"].insert(_question_row(text, intent, score, chat)).last_pk

    def queue_question(
        self,
        text: str,
        intent: str | None,
        score: float,
        *,
        chat: str | None = None,
        write_full_batch: bool = True,
    ) -> bool:
        """Like ``log_question``, written later in a batch (``flush_questions``): keeps a
        SQLite commit off every answer. Reads of questions flush first.

        Once ``QUESTION_BATCH`` questions wait, the batch is written here and now, unless
        ``write_full_batch`` is False: then nothing is written and True is returned, and the
        caller has the batch written (an event loop from a worker thread, say, so that it
        never waits on SQLite). Returns whether a full batch waits to be written.
        """
        row = _question_row(text, intent, score, chat)
        with self._pending_lock:
            self._pending.append(row)
            full = len(self._pending) >= QUESTION_BATCH
        if full and write_full_batch:
            self.flush_questions()
            return False
        return full

    def flush_questions(self) -> int:
        """Write the queued questions in one transaction; returns how many."""
        with self._lock:
            with self._pending_lock:
                rows, self._pending = self._pending, []
            if rows:
                with self._tx():
                    self.db["questions"].insert_all(rows)
            return len(rows)

    def unmatched(self, limit: int = 50) -> list[dict[str, Any]]:
        self.flush_questions()
        with self._lock:
            return list(
                self.db.query(
                    "SELECT id, at, text, score FROM questions WHERE matched = 0 "
                    "AND assigned IS NULL ORDER BY id DESC LIMIT ?",
                    [limit],
                )
            )

    def question(self, question_id: int) -> dict[str, Any] | None:
        self.flush_questions()
        with self._lock:
            rows = list(self.db.query("SELECT * FROM questions WHERE id = ?", [question_id]))
        return rows[0] if rows else None

    def assign_question(self, question_id: int, slug: str, *, actor: str) -> Entry:
        """Add an unmatched question as an example of ``slug`` (one transaction)."""
        with self._tx():
            q = self.question(question_id)
            if q is None:
                raise StoreError("no such question")
            if q["assigned"]:
                raise StoreError(f"that question was assigned to {q['assigned']!r} already")
            entry = self.add_example(slug, q["text"][:MAX_EXAMPLE_CHARS], actor=actor)
            self.db.execute("UPDATE questions SET assigned = ? WHERE id = ?", [slug, question_id])
        return entry

    def mark_assigned(self, question_ids: Sequence[int], slug: str) -> int:
        """Mark unmatched questions as dealt with, without adding them as examples: the
        near-duplicates of a question just assigned with :meth:`assign_question`."""
        self.flush_questions()
        ids = [int(i) for i in question_ids]
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        with self._lock, self._tx():
            cursor = self.db.execute(
                f"UPDATE questions SET assigned = ? WHERE assigned IS NULL AND id IN ({marks})",
                [slug, *ids],
            )
            return cursor.rowcount

    def record_feedback(self, slug: str, helpful: bool, chat: str) -> None:
        """One 有帮助 / 没帮助 vote; ``chat`` is the conversation's key (see ``forget``)."""
        with self._lock, self._tx():
            self.db["feedback"].insert(
                {"at": time.time(), "slug": slug, "helpful": int(helpful), "chat": chat}
            )

    def dismiss_questions(self, question_ids: Sequence[int]) -> int:
        """File unmatched questions away without assigning them (off topic, spam)."""
        return self.mark_assigned(question_ids, DISMISSED)

    # -- suggestions ----------------------------------------------------------------------

    def add_suggestion(
        self, kind: str, question: str, answered: str | None, went_to: str | None, chat: str
    ) -> int:
        """Record what a user told the bot about an answer; returns the suggestion's id."""
        if kind not in SUGGESTION_KINDS:
            raise StoreError(f"unknown suggestion kind {kind!r}")
        with self._lock, self._tx():
            return (
                self.db["suggestions"]
                .insert(
                    {
                        "at": time.time(),
                        "chat": chat,
                        "kind": kind,
                        "question": stored_text(question),
                        "answered": answered,
                        "went_to": went_to,
                        "status": "open",
                        "target": None,
                        "resolved_at": None,
                    }
                )
                .last_pk
            )

    def suggestion_went_to(self, suggestion_id: int, slug: str) -> bool:
        """The user went on to ``slug`` after a suggestion that had no entry yet; True if set."""
        with self._lock, self._tx():
            cursor = self.db.execute(
                "UPDATE suggestions SET went_to = ? WHERE id = ? AND went_to IS NULL "
                "AND status = 'open' AND (answered IS NULL OR answered != ?)",
                [slug, suggestion_id, slug],
            )
            return cursor.rowcount > 0

    def suggestions(self, limit: int = 200) -> list[dict[str, Any]]:
        """Open suggestions, newest first."""
        with self._lock:
            return list(
                self.db.query(
                    "SELECT * FROM suggestions WHERE status = 'open' ORDER BY id DESC LIMIT ?",
                    [limit],
                )
            )

    def suggestion(self, suggestion_id: int) -> dict[str, Any] | None:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM suggestions WHERE id = ?", [suggestion_id]))
        return rows[0] if rows else None

    def waiting(self) -> tuple[int, int]:
        """How many unmatched questions and open suggestions wait for an admin."""
        self.flush_questions()
        with self._lock:
            unmatched = self.db.execute(
                "SELECT COUNT(*) FROM questions WHERE matched = 0 AND assigned IS NULL"
            ).fetchone()[0]
            review = self.db.execute(
                "SELECT COUNT(*) FROM suggestions WHERE status = 'open'"
            ).fetchone()[0]
        return unmatched, review

    def accept_suggestions(
        self, suggestion_ids: Sequence[int], slug: str, *, actor: str
    ) -> tuple[str, Entry | None]:
        """Add the question of the first suggestion as an example of ``slug`` (an ordinary
        recorded edit) and close them all, in one transaction. Returns the phrase and the
        entry after the edit, or None when the phrase was an example already (nothing to
        undo then)."""
        ids = [int(i) for i in suggestion_ids]
        if not ids:
            raise StoreError("no suggestion given")
        with self._lock, self._tx():
            first = self.suggestion(ids[0])
            if first is None:
                raise StoreError("no such suggestion")
            if first["status"] != "open":
                raise StoreError(f"that suggestion was {first['status']} already")
            entry = self._require(slug)
            phrase = clean_text(first["question"][:MAX_EXAMPLE_CHARS])
            after = None
            if phrase and phrase not in entry.examples:
                after = self.add_example(slug, phrase, actor=actor)
            self._close_suggestions(ids, "accepted", slug)
        return phrase, after

    def dismiss_suggestions(self, suggestion_ids: Sequence[int]) -> int:
        with self._lock, self._tx():
            return self._close_suggestions([int(i) for i in suggestion_ids], "dismissed", None)

    def _close_suggestions(self, ids: list[int], status: str, target: str | None) -> int:
        marks = ", ".join("?" * len(ids))
        cursor = self.db.execute(
            f"UPDATE suggestions SET status = ?, target = ?, resolved_at = ? "
            f"WHERE status = 'open' AND id IN ({marks})",
            [status, target, time.time(), *ids],
        )
        return cursor.rowcount

    def answer_quality(self, since: float, now: float | None = None) -> dict[str, list[list[int]]]:
        """Per entry and per week (week 0 = the 7 days up to ``now``, then older): how often
        it was the answer, how often that answer was corrected (这不是我的情况, a reworded
        question landing elsewhere) and how often it was rated 没帮助.

        ``{slug: [[answers, corrected, unhelpful], ...]}``, one item per week since ``since``.
        """
        self.flush_questions()
        now = time.time() if now is None else now
        weeks = max(1, -(-int(now - since) // WEEK))
        out: dict[str, list[list[int]]] = {}

        def cell(slug: str, week: int) -> list[int]:
            rows = out.setdefault(slug, [[0, 0, 0] for _ in range(weeks)])
            return rows[min(max(week, 0), weeks - 1)]

        bucket = "CAST((? - at) / ? AS INTEGER)"
        with self._lock:
            for r in self.db.query(
                f"SELECT intent, {bucket} AS week, COUNT(*) AS n FROM questions "
                "WHERE at >= ? AND intent IS NOT NULL GROUP BY intent, week",
                [now, WEEK, since],
            ):
                cell(r["intent"], r["week"])[0] += r["n"]
            kinds = ", ".join(f"'{k}'" for k in CORRECTING_KINDS if k != "unhelpful")
            for r in self.db.query(
                f"SELECT answered, {bucket} AS week, COUNT(*) AS n FROM suggestions "
                f"WHERE at >= ? AND answered IS NOT NULL AND kind IN ({kinds}) "
                "GROUP BY answered, week",
                [now, WEEK, since],
            ):
                cell(r["answered"], r["week"])[1] += r["n"]
            for r in self.db.query(
                f"SELECT slug, {bucket} AS week, COUNT(*) AS n FROM feedback "
                "WHERE at >= ? AND helpful = 0 GROUP BY slug, week",
                [now, WEEK, since],
            ):
                cell(r["slug"], r["week"])[2] += r["n"]
        return out

    def stats(self, since: float = 0.0) -> dict[str, Any]:
        self.flush_questions()
        with self._lock:
            per_intent = {
                (r["intent"] or "-"): r["n"]
                for r in self.db.query(
                    "SELECT intent, COUNT(*) AS n FROM questions WHERE at >= ? "
                    "GROUP BY intent ORDER BY n DESC",
                    [since],
                )
            }
            total = sum(per_intent.values())
            unmatched = self.db.execute(
                "SELECT COUNT(*) FROM questions WHERE at >= ? AND matched = 0", [since]
            ).fetchone()[0]
            feedback = {
                r["slug"]: (r["up"], r["down"])
                for r in self.db.query(
                    "SELECT slug, SUM(helpful) AS up, SUM(1 - helpful) AS down FROM feedback "
                    "WHERE at >= ? GROUP BY slug ORDER BY slug",
                    [since],
                )
            }
        return {
            "total": total,
            "unmatched": unmatched,
            "per_intent": per_intent,
            "feedback": feedback,
        }

    # -- retention, forgetting, conversation state ----------------------------------------

    def _chat_tables(self) -> list[str]:
        names = set(self.db.table_names())
        return [t for t in CHAT_TABLES if t in names and "chat" in self.db[t].columns_dict]

    def _truncate_wal(self) -> None:
        """Checkpoint and empty the WAL file, so deleted rows do not linger in old frames
        (best effort: a reader in another process may keep the file for now)."""
        with suppress(sqlite3.OperationalError):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def prune(self, days: float = RETENTION_DAYS, *, now: float | None = None) -> dict[str, int]:
        """Delete the questions, feedback (and any other chat table's rows) older than
        ``days``, and conversation states last seen before then (a running bot expires them
        much sooner; a bot stopped for good does not); returns how many rows of each table
        went."""
        self.flush_questions()
        cutoff = (time.time() if now is None else now) - days * DAY
        deleted: dict[str, int] = {}
        with self._lock:
            with self._tx():
                for table in self._chat_tables():
                    if "at" in self.db[table].columns_dict:
                        cursor = self.db.execute(f"DELETE FROM [{table}] WHERE at < ?", [cutoff])
                        deleted[table] = cursor.rowcount
                cursor = self.db.execute("DELETE FROM chat_state WHERE seen < ?", [cutoff])
                deleted["chat_state"] = cursor.rowcount
            if any(deleted.values()):
                self._truncate_wal()
        return deleted

    def forget(self, chat: str, *, groups_of_user: bool = False) -> dict[str, int]:
        """Delete every row of conversation ``chat`` (questions, feedback, its state...);
        with ``groups_of_user`` also the rows of that user in groups (keys ``<group>:<chat>``:
        in a private chat the chat id is the user id). Returns the rows deleted per table."""
        self.flush_questions()
        where, args = "chat = ?", [chat]
        if groups_of_user:
            where, args = "chat = ? OR chat LIKE ?", [chat, f"%:{chat}"]
        deleted: dict[str, int] = {}
        with self._lock:
            with self._tx():
                for table in [*self._chat_tables(), "chat_state"]:
                    cursor = self.db.execute(f"DELETE FROM [{table}] WHERE {where}", args)
                    deleted[table] = cursor.rowcount
            self._truncate_wal()
        return deleted

    def save_states(self, rows: Sequence[tuple[str, float, str | None]]) -> None:
        """Write conversation states ``(chat, seen, state JSON)`` in one transaction; a state
        of None deletes the chat's row (nothing left worth remembering)."""
        if not rows:
            return
        with self._lock, self._tx():
            for chat, seen, state in rows:
                if state is None:
                    self.db.execute("DELETE FROM chat_state WHERE chat = ?", [chat])
                else:
                    self.db.execute(
                        "INSERT INTO chat_state(chat, seen, state) VALUES(?, ?, ?) "
                        "ON CONFLICT(chat) DO UPDATE SET seen = excluded.seen, "
                        "state = excluded.state",
                        [chat, seen, state],
                    )

    def expire_states(self, before: float, keep: int) -> int:
        """Delete states last seen before ``before``, and all but the ``keep`` most recent."""
        with self._lock, self._tx():
            n = self.db.execute("DELETE FROM chat_state WHERE seen < ?", [before]).rowcount
            row = self.db.execute(
                "SELECT seen FROM chat_state ORDER BY seen DESC LIMIT 1 OFFSET ?", [keep]
            ).fetchone()
            if row is not None:
                n += self.db.execute("DELETE FROM chat_state WHERE seen <= ?", [row[0]]).rowcount
        return n

    def load_states(self, since: float, limit: int) -> list[tuple[str, float, str]]:
        """The states seen at or after ``since``, at most ``limit``, oldest first."""
        with self._lock:
            rows = self.db.execute(
                "SELECT chat, seen, state FROM chat_state WHERE seen >= ? "
                "ORDER BY seen DESC LIMIT ?",
                [since, limit],
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in reversed(rows)]
