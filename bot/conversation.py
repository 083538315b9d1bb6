"""The conversation with a user, independent of the transport (Telegram or a terminal).

``Conversation`` turns what a user sends (text, a command, a pressed button) into
:class:`~bot.render.Reply` objects. It keeps a little state per chat in memory: the cause
discussed last (so that "那怎么办" or "要等多久" has something to refer to), the recent answers
(for their "这不是我的情况" and feedback buttons), the causes the user rejected and those
offered last (never offered again after "这不是我的情况" / "都不是"), the script the user writes
in (replies follow it: Simplified, or Traditional as in Taiwan or Hong Kong) and a guided
diagnosis in progress. The state is bounded (least recently used chats are forgotten first)
and expires when a chat is idle.

With ``persist=True`` the state is also written through to the store's ``chat_state`` table
and read back at start (``restore``), so buttons and a diagnosis survive a restart. Answering
still reads and changes only memory: a changed chat is marked, and ``flush_states`` (called
every few seconds off the event loop, and at shutdown) writes the marked ones in one
transaction. The state is stored as JSON of its dataclass fields (:mod:`bot.plaindata`), so a
field added to ``_ChatState`` is kept with no more work.

What users type is masked (:func:`knowledge.privacy.mask`) before anything else sees it: the
matcher, the question log, the state. ``/forget`` deletes everything stored about the chat.

State is always looked up by the chat the message or button press came from, never from
callback data, so one user can never reach another's state.

Callback data (at most 64 bytes; every user button starts with ``u:``; ``a:`` belongs to the
admin module):

====================================  ===================================================
``u:c``                               the list of causes
``u:e:<slug>``                        show an entry
``u:ds``                              start a guided diagnosis
``u:d:<token>:<step>:<y|n|u>``        answer question ``step`` of diagnosis ``token``
``u:d:<token>:x``                     cancel diagnosis ``token``
``u:o:<ref>:<slug>``                  "这不是我的情况" on answer ``ref`` (about ``slug``)
``u:f:<ref>:<y|n>:<slug>``            feedback 有帮助 / 没帮助 on answer ``ref``
``u:fg:<token>:<y|n>``                confirm or cancel ``/forget`` request ``token``
====================================  ===================================================

Methods are thread-safe. ``on_text`` and the commands work in memory (the question is
queued for a batched write, see ``on_full_batch``); ``on_button`` may write feedback and
suggestions to SQLite in the calling thread, and so may ``on_text`` when a typed "这不是我的
情况", a reworded question or a typed diagnosis answer records a suggestion (rare, one small
row) - unless ``defer_writes`` is set: then those writes wait for ``write_pending``. The
Telegram front end calls ``on_button`` and ``write_pending`` from a worker thread and the
others on its event loop, so the event loop never waits on SQLite.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from functools import partial

from bot import texts
from bot.plaindata import Codecs, PlainDataError, from_plain, to_plain
from bot.render import (
    MAX_CALLBACK_BYTES,
    SIMPLIFIED,
    Button,
    Reply,
    detect_script,
    esc,
    to_script,
)
from knowledge.base import KnowledgeBase
from knowledge.diagnosis import (
    MAX_QUESTIONS,
    Answer,
    Diagnosis,
    Question,
    load_questions,
    verdict,
)
from knowledge.entries import CAUSE_SLUGS, SLUG_RE, Entry
from knowledge.followups import FollowUps, load_followups
from knowledge.matcher import Match
from knowledge.privacy import PLACEHOLDER_RE, mask
from knowledge.store import RETENTION_DAYS, StoreError
from knowledge.text import normalise_basic

log = logging.getLogger(__name__)

USER_PREFIX = "u:"
MAX_CHATS = 10_000
CHAT_TTL = 6 * 3600.0  # seconds of silence after which a chat's state is forgotten
DIAGNOSIS_TTL = 3600.0  # a diagnosis left unanswered this long has ended
MAX_ANSWERS = 20  # recent answers a chat keeps for their buttons
MAX_OTHER_BUTTONS = 3
# What users tell the bot about its answers becomes a suggestion for the admins' /review
# (see Store.add_suggestion). After "这不是我的情况" or 没帮助, the entry the user opens (or
# the cause the diagnosis ends on) within this many seconds is where they went; a "which
# one?" pick counts within the same time.
CORRECTION_TTL = 900.0
# A cause answer followed this soon by another question in the same chat that lands on
# another cause: the first question was probably about that other cause.
REPHRASE_WINDOW = 120.0
# Other candidates this close to the answer's score are offered as "other likely causes".
LIKELY_WITHIN = 15.0
# During a diagnosis the leading cause is shown once it is at least this likely.
LEADING_MIN = 0.25
# A diagnosis starts with the causes the user already rejected this much less likely.
REJECTED_PRIOR = 0.2
# Short follow-ups ("那怎么办") refer to the cause discussed last; so do longer ones on a
# topic of followups.yaml ("她说花呗上个月已经还清了，还清了是不是就能用了").
FOLLOW_UP_MAX_CHARS = 16
TOPIC_FOLLOW_UP_MAX_CHARS = 32
# Put before a message that matched nothing once the user said 借呗 stopped.
STOPPED_CONTEXT = "借呗用不了了，"
# A redirect matched this well is a question of its own, not a follow-up; the scam warning
# always is.
CLEAR_REDIRECT = 75.0
SCAM_SLUG = "scam_warning"
# A message with the lexicon's SCAM concept (a fee, a transfer, a code, a stranger's offer)
# gets the scam warning when it is this close to the best candidate (and no cause won).
SCAM_CONCEPT = "SCAM"
SCAM_GAP = 20.0
FOLLOW_UP_CUES = (
    "怎么办", "咋办", "怎么弄", "咋弄", "咋整", "怎么搞", "怎么解决", "如何解决", "怎么处理",
    "怎么做", "咋做", "多久", "多长时间", "几天", "什么时候", "啥时候", "恢复", "还能", "能开通",
    "重新开通", "然后呢", "然后", "接下来", "下一步", "解决", "处理",
)  # fmt: skip
# Typed answers while a diagnosis is running (the terminal has no buttons to press).
TYPED_ANSWERS: dict[str, Answer] = {
    **dict.fromkeys(("是", "是的", "对", "对的", "有", "有的", "有过", "嗯", "y", "yes"), "yes"),
    **dict.fromkeys(("否", "不是", "没有", "没", "无", "不", "没有过", "n", "no"), "no"),
    **dict.fromkeys(("不确定", "不知道", "不清楚", "不记得", "忘了", "说不好", "?"), "unsure"),
}
_ANSWER_CODES: dict[str, Answer] = {"y": "yes", "n": "no", "u": "unsure"}
_PUNCTUATION = re.compile(r"[\s\W_]+")
# Typed "这不是我的情况": the cause answered last is not the user's (after punctuation and
# trailing particles are dropped) ...
TYPED_NOT_MINE = frozenset({
    "这不是我的情况", "不是我的情况", "这不是我的问题", "我不是这个情况", "我不是这种情况",
    "不是这个情况", "不是这种情况", "不是这个原因", "不是这个问题", "不是这个", "不是这样",
    "不是这种", "不对", "说的不对", "这个不对", "不符合", "不符合我的情况", "和我的情况不一样",
    "跟我的情况不一样", "我的情况不是这样", "不是", "这不是", "好像不是", "应该不是",
})  # fmt: skip
# ... and "都不是": none of the causes offered last is.
TYPED_NONE_OF_THESE = frozenset({
    "都不是", "全都不是", "都不对", "全都不对", "一个都不是", "一个也不是", "都不符合",
    "全不是", "都不是我的情况", "这些都不是", "上面都不是", "以上都不是", "上面的都不是",
    "没有一个是", "没一个是", "都不像", "这些都不对", "都不是这些", "好像都不是", "都不沾边",
})  # fmt: skip
_TRAILING_PARTICLES = re.compile(r"[啊呀吧呢哦嘛啦哈噢喔诶哎]+$")
# Short messages only: a longer one says more and goes to the matcher.
REJECTION_MAX_CHARS = 12
_NONE_OF_THESE = re.compile(r"(都|全|一个也|一个都|没一个|没有一个)(不|没)(是|对|符合|像)")
_NOT_THIS = re.compile(r"不(是|符合|像)(我的|这个|这种|这样的?)(情况|原因|问题)?")
# Concept tokens of small talk: a message with no other concept and no match is chat about
# something else ("明天天气如何"), not an unanswered question (which "那怎么办" may be).
CHAT_CONCEPTS = frozenset({"GREETING", "THANKS", "ABOUT", "COMPLAIN"})


@dataclass
class _Answered:
    """A cause answer the bot gave, kept for its buttons."""

    slug: str
    others: tuple[str, ...]  # the next candidate causes of the question
    feedback: bool = False
    question: str = ""  # what the user asked, when this was the answer to a question
    corrected: bool = False  # "这不是我的情况" was recorded already


@dataclass
class _Session:
    token: str
    diagnosis: Diagnosis
    started: float


@dataclass
class _ChatState:
    seen: float
    last_cause: str | None = None
    answers: OrderedDict[int, _Answered] = field(default_factory=OrderedDict)
    next_ref: int = 1
    session: _Session | None = None
    forget_token: str | None = None  # a /forget waiting for its confirmation
    # The suggestion waiting for the entry the user goes to next: (id, when).
    correction: tuple[int, float] | None = None
    # The last "which one?": (question, best slug, the slugs offered, when).
    choice: tuple[str, str | None, tuple[str, ...], float] | None = None
    # The last cause answer to a question: (question, slug, when), for reworded questions.
    last_answer: tuple[str, str, float] | None = None
    # Causes the user said were not theirs ("这不是我的情况", "都不是"), in order; never offered
    # again in this conversation. Plain lists and strings: the state is stored as JSON.
    rejected: list[str] = field(default_factory=list)
    # The cause buttons of the last reply that had any ("都不是" rejects them all).
    offered: list[str] = field(default_factory=list)
    # The script replies are written in: None (Simplified) or render.TAIWAN / HONG_KONG.
    script: str | None = None
    # The user said 借呗 stopped (a cause or the overview was the answer): a later message
    # that matches nothing is read as a second message about that.
    stopped: bool = False
    last_overview: bool = False  # the last answer was the overview

    def reject(self, slugs: list[str]) -> None:
        for slug in slugs:
            if slug not in self.rejected:
                self.rejected.append(slug)

    def remember(self, answered: _Answered) -> int:
        ref = self.next_ref
        self.next_ref += 1
        self.answers[ref] = answered
        while len(self.answers) > MAX_ANSWERS:
            self.answers.popitem(last=False)
        return ref

    def answered(self, ref: str, slug: str) -> _Answered | None:
        got = self.answers.get(int(ref)) if ref.isdigit() else None
        return got if got is not None and got.slug == slug else None


def _typed_rejection(bare: str) -> str | None:
    """``"all"`` for a typed "都不是", ``"this"`` for "这不是我的情况", else None."""
    plain = _TRAILING_PARTICLES.sub("", bare)
    if plain in TYPED_NONE_OF_THESE:
        return "all"
    if plain in TYPED_NOT_MINE:
        return "this"
    if len(plain) > REJECTION_MAX_CHARS:
        return None
    if _NONE_OF_THESE.search(plain):
        return "all"
    if _NOT_THIS.search(plain):
        return "this"
    return None


def chat_key(chat_id: Hashable) -> str:
    """How a conversation is named in the store: ``"<chat>"``, or ``"<chat>:<user>"`` for a
    user in a group."""
    if isinstance(chat_id, tuple):
        return ":".join(str(part) for part in chat_id)
    return str(chat_id)


def _parse_key(key: str) -> Hashable:
    """The conversation key back from :func:`chat_key`."""
    try:
        parts = tuple(int(part) for part in key.split(":"))
    except ValueError:
        return key
    return parts[0] if len(parts) == 1 else parts


def _row(*buttons: Button) -> list[Button]:
    return list(buttons)


def _diagnose_button(again: bool = False) -> Button:
    return Button(texts.BTN_DIAGNOSE_AGAIN if again else texts.BTN_DIAGNOSE, "u:ds")


def _causes_button() -> Button:
    return Button(texts.BTN_CAUSES, "u:c")


def _entry_button(entry: Entry) -> Button:
    return Button(entry.title, f"u:e:{entry.slug}")


class Conversation:
    """What the bot answers. ``store_writes=False`` answers without writing to the store.

    ``chat_id`` in every method is the conversation's key: the chat, or ``(chat, user)`` for
    a user in a group chat.

    Questions are queued in the store and written in batches. When a batch is full it is
    written in the calling thread, or, if ``on_full_batch`` is given, that is called instead
    and must have the batch written (``Store.flush_questions``).

    ``persist``: keep the per-chat state in the store too (see the module docstring); the
    caller calls ``flush_states`` now and then. ``clock`` is wall-clock time, as the state
    outlives the process.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        store_writes: bool = True,
        *,
        questions: list[Question] | None = None,
        followups: FollowUps | None = None,
        max_chats: int = MAX_CHATS,
        chat_ttl: float = CHAT_TTL,
        diagnosis_ttl: float = DIAGNOSIS_TTL,
        clock: Callable[[], float] = time.time,
        on_full_batch: Callable[[], None] | None = None,
        persist: bool = False,
        retention_days: int = RETENTION_DAYS,
        defer_writes: bool = False,
    ) -> None:
        self.kb = kb
        self.store_writes = store_writes
        self.on_full_batch = on_full_batch
        self.questions = questions if questions is not None else load_questions()
        self.followups = followups if followups is not None else load_followups()
        self.max_chats = max_chats
        self.chat_ttl = chat_ttl
        self.diagnosis_ttl = diagnosis_ttl
        self.clock = clock
        self._chats: OrderedDict[Hashable, _ChatState] = OrderedDict()
        self._lock = threading.RLock()
        self.persist = persist and store_writes
        self.retention_days = retention_days
        self._dirty: set[Hashable] = set()  # chats whose state changed since the last flush
        self._persist_lock = threading.Lock()  # one flush or forget at a time
        self.defer_writes = defer_writes
        # Store writes waiting for write_pending: (the chat's state then, the write).
        self._writes: list[tuple[_ChatState, Callable[[], object]]] = []
        self._codecs: Codecs = {Diagnosis: (self._diagnosis_plain, self._diagnosis_back)}
        self._empty_state = to_plain(_ChatState(seen=0.0), self._codecs)
        if self.persist:
            self.restore()

    # -- state ----------------------------------------------------------------------------

    def _state(self, chat_id: Hashable) -> _ChatState:
        """The chat's state (a fresh one when unknown or expired); caller holds the lock."""
        now = self.clock()
        state = self._chats.get(chat_id)
        if state is None or now - state.seen > self.chat_ttl:
            state = _ChatState(seen=now)
            self._chats[chat_id] = state
        state.seen = now
        self._chats.move_to_end(chat_id)
        self._dirty.add(chat_id)
        while len(self._chats) > self.max_chats:
            self._dirty.add(self._chats.popitem(last=False)[0])
        return state

    def chats(self) -> int:
        """How many chats have state in memory."""
        return len(self._chats)

    def _in_script(self, chat_id: Hashable, replies: list[Reply]) -> list[Reply]:
        """The replies in the script the chat writes in."""
        with self._lock:
            state = self._chats.get(chat_id)
            script = state.script if state is not None else None
        if script is None:
            return replies
        return [to_script(r, script) for r in replies]

    # -- the state in the store -----------------------------------------------------------

    @staticmethod
    def _diagnosis_plain(d: Diagnosis) -> dict[str, object]:
        # The questions come from the package; the current one is kept by id (picking it
        # again weighs every question).
        return {
            "posterior": to_plain(d.posterior),
            "asked": to_plain(d.asked),
            "current": d.current.id if d.current else None,
        }

    def _diagnosis_back(self, data: object) -> Diagnosis:
        if not isinstance(data, dict):
            raise PlainDataError("a diagnosis is an object")
        posterior = from_plain(dict[str, float], data.get("posterior"))
        asked = from_plain(list[tuple[str, Answer]], data.get("asked"))
        current = data.get("current")
        if not posterior or not isinstance(current, str):
            return Diagnosis(self.questions, posterior, asked)
        return Diagnosis.resume(self.questions, posterior, asked, current)

    def flush_states(self) -> int:
        """Write the states changed since the last flush, in one transaction (call it off
        the event loop); returns how many chats were written or deleted."""
        if not self.persist:
            return 0
        with self._persist_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, set()
                snapshot = []
                for key in dirty:
                    state = self._chats.get(key)
                    try:
                        plain = None if state is None else to_plain(state, self._codecs)
                    except PlainDataError:  # a field that is not plain data: a bug, logged
                        log.exception("could not save a conversation state")
                        continue
                    snapshot.append((chat_key(key), state.seen if state else 0.0, plain))
            rows: list[tuple[str, float, str | None]] = []
            for chat, seen, plain in snapshot:
                if plain is not None and {**plain, "seen": 0.0} == self._empty_state:
                    plain = None  # nothing worth remembering: no row
                text = None if plain is None else json.dumps(plain, separators=(",", ":"))
                rows.append((chat, seen, text))
            try:
                self.kb.store.save_states(rows)
                self.kb.store.expire_states(self.clock() - self.chat_ttl, self.max_chats)
            except (StoreError, sqlite3.Error):
                log.warning("could not save the conversation state", exc_info=True)
                with self._lock:
                    self._dirty |= dirty  # the next flush tries again
                return 0
        return len(rows)

    def restore(self) -> int:
        """Read back the states saved by an earlier run (those not expired); returns how many."""
        rows = self.kb.store.load_states(self.clock() - self.chat_ttl, self.max_chats)
        restored = 0
        with self._lock:
            for chat, seen, text in rows:
                try:
                    state = from_plain(_ChatState, json.loads(text), self._codecs)
                except (ValueError, TypeError, KeyError):  # PlainDataError is a ValueError
                    log.warning("could not read a saved conversation state; it starts afresh")
                    continue
                state.seen = seen
                self._chats[_parse_key(chat)] = state
                restored += 1
        return restored

    # -- store writes ---------------------------------------------------------------------

    def _store_write(self, state: _ChatState, write: Callable[[], object]) -> None:
        """A write that answering asks for (a suggestion, where a user went): now, or with
        ``defer_writes`` at the next ``write_pending``."""
        if not self.defer_writes:
            write()
            return
        with self._lock:
            self._writes.append((state, write))

    def writes_pending(self) -> bool:
        """Whether ``write_pending`` has anything to write."""
        return bool(self._writes)

    def write_pending(self) -> int:
        """Do the writes ``defer_writes`` held back, in order (call it off the event loop);
        returns how many."""
        with self._lock:
            writes, self._writes = self._writes, []
        for _, write in writes:
            write()
        return len(writes)

    def _log_question(self, chat_id: Hashable, text: str, intent: str | None, score: float) -> None:
        if not self.store_writes:
            return
        try:
            full = self.kb.store.queue_question(
                text,
                intent,
                score,
                chat=chat_key(chat_id),
                write_full_batch=self.on_full_batch is None,
            )
        except (StoreError, sqlite3.Error):
            # An answer is worth more than its statistics row.
            log.warning("could not log a question", exc_info=True)
            return
        if full and self.on_full_batch is not None:
            self.on_full_batch()

    def _record_feedback(self, slug: str, helpful: bool, chat_id: Hashable) -> None:
        if not self.store_writes:
            return
        try:
            self.kb.store.record_feedback(slug, helpful, chat_key(chat_id))
        except (StoreError, sqlite3.Error):
            log.warning("could not record feedback", exc_info=True)

    def _suggest(
        self, kind: str, question: str, answered: str | None, went_to: str | None, chat_id: Hashable
    ) -> int | None:
        """Record a suggestion for /review; its id, or None when nothing was written."""
        if not self.store_writes or not question:
            return None
        try:
            return self.kb.store.add_suggestion(
                kind, question, answered, went_to, chat_key(chat_id)
            )
        except (StoreError, sqlite3.Error):
            log.warning("could not record a suggestion", exc_info=True)
            return None

    def _went_to(self, suggestion_id: int, slug: str) -> None:
        if not self.store_writes:
            return
        try:
            self.kb.store.suggestion_went_to(suggestion_id, slug)
        except (StoreError, sqlite3.Error):
            log.warning("could not record where a user went", exc_info=True)

    def _take_correction(self, state: _ChatState) -> int | None:
        """The suggestion waiting for where the user goes (cleared); caller holds the lock."""
        pending, state.correction = state.correction, None
        if pending is None or self.clock() - pending[1] > CORRECTION_TTL:
            return None
        return pending[0]

    # -- building blocks ------------------------------------------------------------------

    def _open_causes(self, state: _ChatState | None, exclude: str | None = None) -> list[Entry]:
        """Every cause the user has not rejected in this conversation."""
        rejected = set(state.rejected) if state is not None else set()
        return [e for e in self.kb.causes() if e.slug != exclude and e.slug not in rejected]

    def _cause_rows(
        self, state: _ChatState | None = None, exclude: str | None = None
    ) -> list[list[Button]]:
        """A button for every open cause; they become what "都不是" refers to."""
        causes = self._open_causes(state, exclude)
        if state is not None:
            state.offered = [e.slug for e in causes]
        return [[_entry_button(e)] for e in causes]

    def _closing_note(self) -> str:
        """The overview's note that a stopped 借呗 needs the system's re-evaluation."""
        overview = self.kb.entry("overview")
        if overview is None:
            return ""
        for part in (overview.explanation, overview.solution):
            for sentence in re.findall(r"[^。！？\n]*评估[^。！？\n]*[。！？]?", part):
                return sentence.strip()
        return ""

    @staticmethod
    def _entry_text(entry: Entry, with_title: bool = True) -> str:
        parts = [f"<b>{esc(entry.title)}</b>"] if with_title else []
        if entry.explanation:
            parts.append(esc(entry.explanation))
        if entry.solution:
            if entry.is_cause:
                parts.append(f"<b>{texts.SOLUTION_HEADING}</b>\n{esc(entry.solution)}")
            else:
                parts.append(esc(entry.solution))
        return "\n\n".join(parts)

    def _cause_reply(
        self,
        state: _ChatState,
        entry: Entry,
        match: Match | None = None,
        text: str | None = None,
        question: str = "",
    ) -> Reply:
        """A cause: title, explanation, solution, and the follow-up buttons."""
        others: list[str] = []
        likely: list[str] = []
        if match is not None:
            rest = [c for c in match.candidates if c.kind == "cause" and c.slug != entry.slug]
            others = [c.slug for c in rest]
            likely = [c.slug for c in rest if c.score >= match.score - LIKELY_WITHIN]
        ref = state.remember(_Answered(entry.slug, tuple(others), question=question))
        state.last_cause = entry.slug
        rows: list[list[Button]] = []
        shown: set[str] = {entry.slug, *state.rejected}
        offered: list[str] = []
        for slug in [*likely, *entry.related]:
            other = self.kb.entry(slug)
            if other is not None and other.is_cause and slug not in shown:
                shown.add(slug)
                offered.append(slug)
                rows.append([_entry_button(other)])
            if len(rows) >= MAX_OTHER_BUTTONS:
                break
        state.offered = [entry.slug, *offered]
        rows.append(_row(Button(texts.BTN_NOT_MINE, f"u:o:{ref}:{entry.slug}"), _diagnose_button()))
        rows.append(
            _row(
                Button(texts.BTN_HELPFUL, f"u:f:{ref}:y:{entry.slug}"),
                Button(texts.BTN_UNHELPFUL, f"u:f:{ref}:n:{entry.slug}"),
            )
        )
        score = match.score if match is not None else 100.0
        return Reply(text if text is not None else self._entry_text(entry), rows, entry.slug, score)

    def _overview_reply(self, state: _ChatState, entry: Entry, score: float = 100.0) -> Reply:
        rows = self._cause_rows(state)
        text = self._entry_text(entry)
        if not rows:  # the user rejected every cause in this conversation
            text += "\n\n" + texts.NOT_MINE_NOTHING_LEFT
        return Reply(text, [*rows, [_diagnose_button()]], entry.slug, score)

    def _other_reply(self, entry: Entry, score: float = 100.0) -> Reply:
        """Redirects and small talk: their text, then the way back to the causes."""
        rows = [[_causes_button()], [_diagnose_button()]]
        return Reply(self._entry_text(entry, with_title=False), rows, entry.slug, score)

    def _entry_reply(
        self, state: _ChatState, entry: Entry, match: Match | None = None, question: str = ""
    ) -> Reply:
        score = match.score if match is not None else 100.0
        if entry.is_cause:
            return self._cause_reply(state, entry, match, question=question)
        if entry.kind == "overview":
            return self._overview_reply(state, entry, score)
        return self._other_reply(entry, score)

    def _stale(self, text: str = texts.STALE_BUTTON) -> list[Reply]:
        return [Reply(text, [[_causes_button()], [_diagnose_button()]])]

    # -- commands -------------------------------------------------------------------------

    def start(self) -> list[Reply]:
        """/start: what the bot does, the causes and the diagnosis."""
        return [Reply(texts.START, [*self._cause_rows(), [_diagnose_button()]])]

    def help(self) -> list[Reply]:
        """/help."""
        return [Reply(texts.HELP, [[_causes_button()], [_diagnose_button()]])]

    def _causes_for(self, chat_id: Hashable) -> list[Reply]:
        """/causes: the causes as buttons, those the user has not rejected in this chat."""
        with self._lock:
            state = self._state(chat_id)
            if not state.rejected:
                return [Reply(texts.CAUSES, [*self._cause_rows(state), [_diagnose_button()]])]
            rows = self._cause_rows(state)
            if not rows:
                return [self._remaining(state)]
            text = texts.CAUSES_LEFT.format(n=len(self.kb.causes()) - len(rows))
            return [Reply(text, [*rows, [_diagnose_button()]])]

    def command(self, chat_id: Hashable, text: str) -> list[Reply]:
        """A command typed as text (``/start``, ``/help``, ``/causes``, ``/diagnose``,
        ``/forget``)."""
        return self._in_script(chat_id, self._command(chat_id, text))

    def _command(self, chat_id: Hashable, text: str) -> list[Reply]:
        name = text.split()[0][1:].split("@")[0].lower()
        if name == "start":
            with self._lock:  # a new start: nothing is ruled out any more
                state = self._state(chat_id)
                state.rejected.clear()
                state.offered = [e.slug for e in self.kb.causes()]
            return self.start()
        if name == "help":
            return self.help()
        if name == "causes":
            return self._causes_for(chat_id)
        if name == "diagnose":
            return self._diagnose(chat_id)
        if name == "forget":
            return self.forget(chat_id)
        return [Reply(texts.UNKNOWN_COMMAND)]

    # -- free text ------------------------------------------------------------------------

    def _follow_up(
        self, state: _ChatState, folded: str, match: Match
    ) -> tuple[list[Reply], str | None] | None:
        """A short question about the cause discussed last, answered about that cause."""
        if len(folded) > TOPIC_FOLLOW_UP_MAX_CHARS:
            return None
        topics = self.followups.topics(folded)
        if len(topics) > 1 and "next" in topics:
            topics.remove("next")  # "还清了就能用吗": the repaying answer says what comes next
        cause = self.kb.entry(state.last_cause) if state.last_cause else None
        if cause is None or not cause.is_cause:
            general = match.intent is None or (match.intent == "overview" and state.last_overview)
            if topics and set(topics) <= {"wait", "next", "call"} and general:
                # "要等多久" with no cause discussed yet (or right after the overview, which
                # would only repeat itself): what decides, in general.
                parts = [esc(self.followups.general[t]) for t in topics]
                rows = [[_causes_button()], [_diagnose_button()]]
                return [Reply("\n\n".join(parts), rows, None, match.score)], None
            return None
        if match.intent is not None and not match.ambiguous and match.intent != cause.slug:
            entry = self.kb.entry(match.intent)
            if entry is not None and entry.is_cause:
                return None  # a cause named outright is a new question
            if (
                entry is not None
                and entry.kind == "redirect"
                and (match.score >= CLEAR_REDIRECT or entry.slug == SCAM_SLUG)
            ):
                return None  # so is a clear near miss ("借呗逾期会不会打电话给我家人")
        if topics:
            parts = [esc(texts.FOLLOW_UP_ABOUT.format(title=cause.title))]
            for topic in topics[:2]:
                answer, general = self.followups.answer(cause.slug, topic)
                parts.append(esc(answer.format(title=cause.title) if general else answer))
        elif len(folded) <= FOLLOW_UP_MAX_CHARS and any(c in folded for c in FOLLOW_UP_CUES):
            parts = [esc(texts.FOLLOW_UP.format(title=cause.title))]
            parts.append(esc(cause.solution or cause.explanation))
            note = self._closing_note()
            if note and note not in cause.solution:
                parts.append(esc(note))
        else:
            return None
        reply = self._cause_reply(state, cause, None, "\n\n".join(parts))
        return [Reply(reply.text_html, reply.buttons, cause.slug, match.score)], cause.slug

    def on_text(self, chat_id: Hashable, text: str) -> list[Reply]:
        """A message from the user: answer it (in the user's script), and log the question
        (masked)."""
        raw = text.strip()
        text = mask(raw)
        script = detect_script(text)
        if script is not None:
            with self._lock:
                self._state(chat_id).script = None if script == SIMPLIFIED else script
        replies = self._on_text(chat_id, text)
        if replies and PLACEHOLDER_RE.search(text) and not PLACEHOLDER_RE.search(raw):
            # The user typed a personal number "so you can check": say once, above the
            # answer, that the bot cannot look anything up and that numbers are not needed.
            first = replies[0]
            note = esc(texts.NUMBERS_NOT_NEEDED)
            replies = [replace(first, text_html=f"{note}\n\n{first.text_html}"), *replies[1:]]
        return self._in_script(chat_id, replies)

    def _on_text(self, chat_id: Hashable, text: str) -> list[Reply]:
        if not text:
            return [Reply(texts.EMPTY)]
        if text.startswith("/"):
            return self._command(chat_id, text)
        bare = _PUNCTUATION.sub("", normalise_basic(text)) or text
        rejected: tuple[list[Reply], _Answered | None] | None = None
        with self._lock:
            state = self._state(chat_id)
            typed = TYPED_ANSWERS.get(bare)
            session = self._session(state)
            if session is not None and typed is not None:
                return self._answer(state, session, typed, edit=False)
            rejection = _typed_rejection(bare)
            if rejection is not None:
                last = state.last_cause if rejection != "all" else None
                answered = next(
                    (a for a in reversed(state.answers.values()) if last and a.slug == last), None
                )
                replies = self._typed_rejection(state, rejection == "all")
                if replies is not None:
                    rejected = (replies, self._correcting(answered))
        if rejected is not None:
            replies, answered = rejected
            if answered is not None:  # typed "这不是我的情况": as the button
                record = partial(self._record_correction, "not_mine", chat_id, answered)
                self._store_write(state, record)
            return replies
        match = self.kb.match(text)
        with self._lock:
            state = self._state(chat_id)
            previous = state.last_answer
            replies, logged = self._answer_text(state, text, match)
            reworded = self._reworded(state, previous, text, logged)
            correction = self._take_correction(state) if reworded else None
        self._log_question(chat_id, text, logged, match.score)
        if reworded is not None and logged is not None:
            if correction is not None:  # "这不是我的情况", then asked again: that is where
                self._store_write(state, partial(self._went_to, correction, logged))
            else:
                suggest = partial(self._suggest, "rephrase", *reworded, logged, chat_id)
                self._store_write(state, suggest)
        return replies

    def _reworded(
        self,
        state: _ChatState,
        previous: tuple[str, str, float] | None,
        text: str,
        logged: str | None,
    ) -> tuple[str, str] | None:
        """(earlier question, its answer) when ``text`` reworded a question answered just
        before and landed on another cause; caller holds the lock."""
        answered = state.last_answer if state.last_answer is not previous else None
        if answered is None:
            state.last_answer = None  # not a cause answer: a later question is no rewording
        if previous is None or logged is None or logged == previous[1]:
            return None
        if answered is None or answered[1] != logged:  # landed on no cause, or a follow-up
            return None
        if self.clock() - previous[2] > REPHRASE_WINDOW or previous[0] == text:
            return None
        return previous[0], previous[1]

    def _answer_text(
        self, state: _ChatState, text: str, match: Match
    ) -> tuple[list[Reply], str | None]:
        """Replies to a matched message, and the intent to log it under."""
        entry = self.kb.entry(match.intent) if match.intent else None
        folded = _PUNCTUATION.sub("", self.kb.pipeline.normalise(text))
        follow_up = self._follow_up(state, folded, match)
        if follow_up is not None:
            state.last_overview = False
            return follow_up
        if match.intent is None and state.stopped:
            # A second message ("我就是上个月换了个新手机号") read in the light of the first:
            # 借呗 stopped. Only a cause found that way is taken.
            again = self.kb.match(STOPPED_CONTEXT + text)
            found = self.kb.entry(again.intent) if again.intent else None
            if found is not None and found.is_cause:
                match, entry = again, found
        state.last_overview = entry is not None and entry.kind == "overview"
        if entry is not None and (entry.is_cause or entry.kind == "overview"):
            state.stopped = True
        if entry is not None and match.ambiguous:
            rows = []
            offered = []
            for candidate in match.close_causes():
                close = self.kb.entry(candidate.slug)
                if close is not None and close.slug not in state.rejected:
                    rows.append([_entry_button(close)])
                    offered.append(close.slug)
            if len(rows) >= 2:
                state.offered = offered
                state.choice = (text, match.intent, tuple(offered), self.clock())
                rows += [[_causes_button()], [_diagnose_button()]]
                return [Reply(texts.AMBIGUOUS, rows, match.intent, match.score)], match.intent
        if (entry is None or not entry.is_cause) and SCAM_CONCEPT in match.tokens:
            # Safety first: words of a fee offer, and the warning close behind what won.
            scam = next((c for c in match.candidates if c.slug == SCAM_SLUG), None)
            if scam is not None and match.score - scam.score <= SCAM_GAP:
                entry = self.kb.entry(SCAM_SLUG) or entry
        product = self._other_product(folded, entry)
        if product is not None:
            logged = entry.slug if entry is not None else None
            rows = [[_causes_button()], [_diagnose_button()]]
            return [Reply(product, rows, logged, match.score)], logged
        if entry is not None:
            if entry.is_cause:
                state.last_answer = (text, entry.slug, self.clock())
            return [self._entry_reply(state, entry, match, question=text)], entry.slug
        top = match.candidates[0] if match.candidates else None
        best = (top.slug, round(top.score, 1)) if top is not None else None  # for the log
        concepts = {t for t in match.tokens if t.isascii() and t.isupper()}
        if not concepts - CHAT_CONCEPTS and folded not in TYPED_ANSWERS:
            # Chat about something else: say what the bot is for, without the whole list.
            rows = [[_causes_button()], [_diagnose_button()]]
            return [Reply(texts.OFF_TOPIC, rows, None, match.score, best=best)], None
        rows = [*self._cause_rows(state), [_diagnose_button()]]
        return [Reply(texts.NO_MATCH, rows, None, match.score, best=best)], None

    @staticmethod
    def _other_product(folded: str, entry: Entry | None) -> str | None:
        """For a question about another product and not about 借呗 (that no cause or the
        overview answered): a reply naming that product."""
        if entry is not None and (entry.is_cause or entry.kind == "overview"):
            return None
        if "借呗" in folded:
            return None
        for surfaces, name, where in texts.OTHER_PRODUCTS:
            if any(s in folded for s in surfaces):
                return texts.OTHER_PRODUCT.format(product=esc(name), where=esc(where))
        return None

    # -- "这不是我的情况" -----------------------------------------------------------------------

    def _remaining(self, state: _ChatState, candidates: tuple[str, ...] = ()) -> Reply:
        """After a rejection: the likeliest causes not rejected yet, else every one left, else
        the way to official customer service. Caller holds the lock."""
        left = [
            e
            for s in candidates
            if (e := self.kb.entry(s)) is not None and e.is_cause and s not in state.rejected
        ][:4]
        if left:
            state.offered = [e.slug for e in left]
            rows = [[_entry_button(e)] for e in left]
            return Reply(texts.NOT_MINE, [*rows, [_causes_button()], [_diagnose_button()]])
        rows = self._cause_rows(state)
        if rows:
            return Reply(texts.NOT_MINE_NONE, [*rows, [_diagnose_button()]])
        return Reply(texts.NOT_MINE_NOTHING_LEFT, [[_diagnose_button(again=True)]])

    def _reject(self, state: _ChatState, slugs: list[str]) -> None:
        causes = [s for s in slugs if (e := self.kb.entry(s)) is not None and e.is_cause]
        state.reject(causes)
        if state.last_cause in state.rejected:
            state.last_cause = None

    def _typed_rejection(self, state: _ChatState, none_of_these: bool) -> list[Reply] | None:
        """A typed "这不是我的情况" (the cause answered last) or "都不是" (everything offered
        last). None when there is nothing it could refer to."""
        last = state.last_cause
        if last is not None and not none_of_these:
            answered = next((a for a in reversed(state.answers.values()) if a.slug == last), None)
            self._reject(state, [last])
            return [self._remaining(state, answered.others if answered else ())]
        if state.offered or last is not None:
            self._reject(state, [*([last] if last else []), *state.offered])
            return [self._remaining(state)]
        if state.rejected and not self._open_causes(state):
            return [self._remaining(state)]  # everything is ruled out already: say so again
        if none_of_these or state.rejected:
            return [Reply(texts.NOT_MINE_NOTHING_SHOWN, [[_causes_button()], [_diagnose_button()]])]
        return None

    # -- buttons --------------------------------------------------------------------------

    def on_button(self, chat_id: Hashable, data: str) -> list[Reply]:
        """A pressed button. A reply with ``edit`` set replaces the pressed message."""
        return self._in_script(chat_id, self._on_button(chat_id, data))

    def _on_button(self, chat_id: Hashable, data: str) -> list[Reply]:
        if (
            not data.startswith(USER_PREFIX)
            or len(data.encode("utf-8", "replace")) > MAX_CALLBACK_BYTES
        ):
            return self._stale()
        parts = data[len(USER_PREFIX) :].split(":")
        kind, args = parts[0], parts[1:]
        if kind == "c" and not args:
            return self._causes_for(chat_id)
        if kind == "ds" and not args:
            return self._diagnose(chat_id)
        if kind == "e" and len(args) == 1:
            return self._show_entry(chat_id, args[0])
        if kind == "d" and len(args) in (2, 3):
            return self._diagnosis_button(chat_id, args)
        if kind == "o" and len(args) == 2:
            return self._not_mine(chat_id, args[0], args[1])
        if kind == "f" and len(args) == 3 and args[1] in ("y", "n"):
            return self._feedback(chat_id, args[0], args[1] == "y", args[2])
        if kind == "fg" and len(args) == 2 and args[1] in ("y", "n"):
            return self._forget_button(chat_id, args[0], args[1] == "y")
        return self._stale()

    def _show_entry(self, chat_id: Hashable, slug: str) -> list[Reply]:
        entry = self.kb.entry(slug)
        if entry is None:
            return self._stale(texts.ENTRY_GONE)
        with self._lock:
            state = self._state(chat_id)
            correction = self._take_correction(state) if entry.is_cause else None
            choice, state.choice = state.choice, None
            if choice is not None and (
                slug not in choice[2] or self.clock() - choice[3] > CORRECTION_TTL
            ):
                choice = None
            replies = [self._entry_reply(state, entry)]
        if correction is not None:
            self._went_to(correction, slug)
        elif choice is not None:
            self._suggest("choice", choice[0], None, slug, chat_id)
        return replies

    def _not_mine(self, chat_id: Hashable, ref: str, slug: str) -> list[Reply]:
        with self._lock:
            state = self._state(chat_id)
            answered = state.answered(ref, slug)
            correcting = self._correcting(answered)
            self._reject(state, [slug])
            reply = self._remaining(state, answered.others if answered else ())
        if correcting is not None:
            self._record_correction("not_mine", chat_id, correcting)
        return [reply]

    @staticmethod
    def _correcting(answered: _Answered | None) -> _Answered | None:
        """The answer a "这不是我的情况" corrects, marked, if it is to be recorded (an answer
        to a question, not recorded before); caller holds the lock."""
        if answered is None or not answered.question or answered.corrected:
            return None
        answered.corrected = True
        return answered

    def _record_correction(self, kind: str, chat_id: Hashable, answered: _Answered) -> None:
        """A suggestion for /review ("not_mine" or "unhelpful" on ``answered``); where the
        user goes next fills it in."""
        suggestion = self._suggest(kind, answered.question, answered.slug, None, chat_id)
        if suggestion is not None:
            with self._lock:
                self._state(chat_id).correction = (suggestion, self.clock())

    def _feedback(self, chat_id: Hashable, ref: str, helpful: bool, slug: str) -> list[Reply]:
        if not SLUG_RE.match(slug) or self.kb.entry(slug) is None:
            return self._stale()
        with self._lock:
            answered = self._state(chat_id).answered(ref, slug)
            if answered is None:
                # Only an answer this chat really got (and still remembers) can be rated:
                # replayed or forged buttons never reach the statistics.
                return self._stale()
            if answered.feedback:
                return [Reply(texts.FEEDBACK_DONE)]
            answered.feedback = True
        self._record_feedback(slug, helpful, chat_id)
        if not helpful:
            self._record_correction("unhelpful", chat_id, answered)
        if helpful:
            return [Reply(texts.FEEDBACK_THANKS)]
        return [Reply(texts.FEEDBACK_SORRY, [[_diagnose_button()], [_causes_button()]])]

    # -- forgetting -----------------------------------------------------------------------

    def forget(self, chat_id: Hashable) -> list[Reply]:
        """/forget: ask for confirmation before deleting what is stored about the chat."""
        token = secrets.token_hex(4)
        with self._lock:
            self._state(chat_id).forget_token = token
        rows = [
            _row(
                Button(texts.BTN_FORGET_YES, f"u:fg:{token}:y"),
                Button(texts.BTN_FORGET_NO, f"u:fg:{token}:n"),
            )
        ]
        return [Reply(texts.FORGET_CONFIRM.format(days=self.retention_days), rows)]

    def _forget_button(self, chat_id: Hashable, token: str, confirmed: bool) -> list[Reply]:
        with self._lock:
            state = self._state(chat_id)
            if state.forget_token != token:
                return self._stale()
            state.forget_token = None
        if not confirmed:
            return [Reply(texts.FORGET_CANCELLED, edit=True)]
        script = state.script  # the last thing about the user: the reply is in their script
        try:
            deleted = self.forget_now(chat_id)
        except (StoreError, sqlite3.Error):  # the store is busy or broken: say so, not "done"
            log.warning("could not delete a chat's stored rows", exc_info=True)
            done = Reply(texts.FORGET_FAILED, edit=True)
        else:
            done = Reply(texts.forget_done(deleted, self.retention_days), edit=True)
        return [done if script is None else to_script(done, script)]

    def forget_now(self, chat_id: Hashable) -> dict[str, int]:
        """Delete everything stored about the chat: its rows in the store (questions,
        feedback, suggestions, its saved state) and its state in memory. In a private chat
        (a key that is the user's id) the user's state and rows in groups go too. Returns
        the rows deleted per table."""
        private = not isinstance(chat_id, tuple)
        with self._persist_lock:  # a flush under way must not write the state back
            with self._lock:
                gone = [
                    key
                    for key in self._chats
                    if key == chat_id or (private and isinstance(key, tuple) and key[-1] == chat_id)
                ]
                states = [self._chats[key] for key in gone]
                for key in gone:
                    del self._chats[key]
                    self._dirty.discard(key)
                # Writes held back for these chats are never done.
                self._writes = [w for w in self._writes if not any(w[0] is s for s in states)]
            if not self.store_writes:
                return {}
            return self.kb.store.forget(chat_key(chat_id), groups_of_user=private)

    # -- guided diagnosis -----------------------------------------------------------------

    def diagnose(self, chat_id: Hashable) -> list[Reply]:
        """/diagnose: start a new diagnosis (buttons of an earlier one stop working)."""
        return self._in_script(chat_id, self._diagnose(chat_id))

    def _diagnose(self, chat_id: Hashable) -> list[Reply]:
        with self._lock:
            state = self._state(chat_id)
            # Causes already rejected start less likely (never ruled out: people misremember).
            prior = {c: REJECTED_PRIOR if c in state.rejected else 1.0 for c in CAUSE_SLUGS}
            d = Diagnosis.start(self.questions, prior if state.rejected else None)
            session = _Session(secrets.token_hex(4), d, self.clock())
            state.session = session
            intro = texts.DIAG_INTRO.format(max=MAX_QUESTIONS)
            return [self._question_reply(state, session, intro=intro)]

    def _titles(self, slugs: tuple[str, ...] | list[str]) -> list[str]:
        return [esc(e.title) for s in slugs if (e := self.kb.entry(s)) is not None]

    def _question_reply(
        self, state: _ChatState, session: _Session, *, intro: str = "", edit: bool = False
    ) -> Reply:
        d = session.diagnosis
        assert d.current is not None
        parts = [intro] if intro else []
        if d.step:
            v = verdict(d, state.rejected)
            if v.kind == "clear":  # only a cause a 是 answer points at
                entry = self.kb.entry(v.causes[0])
                if entry is not None:
                    parts.append(texts.DIAG_LEADING.format(title=esc(entry.title)))
        parts.append(texts.DIAG_QUESTION.format(n=d.step + 1, text=esc(d.current.text)))
        prefix = f"u:d:{session.token}:{d.step}:"
        rows = [
            _row(
                Button(texts.BTN_YES, prefix + "y"),
                Button(texts.BTN_NO, prefix + "n"),
                Button(texts.BTN_UNSURE, prefix + "u"),
            ),
            _row(Button(texts.BTN_CANCEL, f"u:d:{session.token}:x")),
        ]
        return Reply("\n\n".join(parts), rows, edit=edit)

    def _session(self, state: _ChatState) -> _Session | None:
        """The chat's diagnosis in progress; one left unanswered too long has ended (and is
        dropped). Caller holds the lock."""
        session = state.session
        if session is not None and self.clock() - session.started > self.diagnosis_ttl:
            state.session = session = None
        return session

    def _diagnosis_button(self, chat_id: Hashable, args: list[str]) -> list[Reply]:
        token = args[0]
        with self._lock:
            state = self._state(chat_id)
            session = self._session(state)
            if session is None or session.token != token:
                return [Reply(texts.DIAG_ENDED, [[_diagnose_button(again=True)]])]
            if args[1:] == ["x"]:
                state.session = None
                return [
                    Reply(
                        texts.DIAG_CANCELLED,
                        [[_causes_button()], [_diagnose_button(again=True)]],
                        edit=True,
                    )
                ]
            if len(args) != 3 or args[2] not in _ANSWER_CODES or not args[1].isdigit():
                return self._stale()
            if int(args[1]) != session.diagnosis.step:
                current = self._question_reply(state, session)
                return [Reply(f"{texts.DIAG_ANSWERED}\n\n{current.text_html}", current.buttons)]
            return self._answer(state, session, _ANSWER_CODES[args[2]], edit=True)

    def _answer(
        self, state: _ChatState, session: _Session, answer: Answer, *, edit: bool
    ) -> list[Reply]:
        """Apply an answer; the next question, or the result. Caller holds the lock."""
        session.diagnosis.answer(answer)
        if not session.diagnosis.done:
            return [self._question_reply(state, session, edit=edit)]
        state.session = None
        return [self._result_reply(state, session.diagnosis, edit=edit)]

    def _result_reply(self, state: _ChatState, d: Diagnosis, *, edit: bool) -> Reply:
        """The end of a diagnosis: what the answers allow us to say, and no more."""
        v = verdict(d, state.rejected)
        parts = [texts.DIAG_RESULT]
        shown: list[str] = []
        top: Entry | None = None
        if v.kind == "clear" and (top := self.kb.entry(v.causes[0])) is not None:
            shown.append(top.slug)
            parts.append(
                texts.DIAG_CLEAR.format(
                    title=esc(top.title), confidence=texts.DIAG_CONFIDENCE[v.confidence or "low"]
                )
            )
            advice = texts.DIAG_ADVICE.format(title=esc(top.title))
            parts.append(f"{advice}\n{esc(top.solution)}")
            note = self._closing_note()
            if note:
                parts.append(esc(note))
            unasked = [s for s in v.unasked if s != top.slug]
            if unasked and v.confidence != "high":
                parts.append(texts.DIAG_UNASKED.format(titles=self._joined(unasked)))
                shown += unasked[:2]
            state.last_cause = top.slug
            correction = self._take_correction(state)
            if correction is not None:  # a small write (under the chat's lock, unless deferred)
                self._store_write(state, partial(self._went_to, correction, top.slug))
        elif v.kind == "several":
            lines = [texts.DIAG_TITLE_LINE.format(title=t) for t in self._titles(v.causes)]
            titles = "\n".join(lines)
            parts.append(texts.DIAG_SEVERAL.format(titles=titles))
            shown += list(v.causes)
        else:
            answers = {a for _, a in d.asked}
            if "yes" in answers:
                why = "yes"
            elif answers == {"no"}:
                why = "no"
            elif answers <= {"unsure"}:
                why = "unsure"
            else:
                why = "mixed"
            parts.append(texts.DIAG_NONE.format(why=texts.DIAG_NONE_WHY[why]))
            if v.mixed:
                parts.append(texts.DIAG_MIXED.format(titles=self._joined(v.mixed)))
            if v.unasked:
                parts.append(texts.DIAG_UNASKED.format(titles=self._joined(v.unasked)))
            if v.unsure:
                parts.append(texts.DIAG_UNSURE.format(titles=self._joined(v.unsure)))
            parts.append(texts.DIAG_NONE_NEXT)
            shown += list(v.causes[:4])
        rows = [[_entry_button(e)] for s in shown if (e := self.kb.entry(s)) is not None]
        if rows:
            state.offered = [s for s in shown if self.kb.entry(s) is not None]
            if v.kind == "clear":
                parts.append(texts.DIAG_RESULT_MORE)
        rows += [[_diagnose_button(again=True)], [_causes_button()]]
        score = round(d.ranked()[0][1] * 100, 1)
        return Reply("\n\n".join(parts), rows, top.slug if top else None, score, edit=edit)

    def _joined(self, slugs: tuple[str, ...] | list[str]) -> str:
        return texts.DIAG_TITLE_SEP.join(self._titles(slugs))
