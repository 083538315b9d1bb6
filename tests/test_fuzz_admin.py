"""Command and document fuzzing: random and malformed admin commands and import documents,
through the real ``Application`` (``build_application``; only the network is replaced, by
tests/tgfake.py), and import documents through ``jiebei-bot kb import`` too.

Whatever an admin sends that is malformed gets a clear refusal, never an error, and the
knowledge base stays byte-for-byte the same: the export, the revision and a full SQL dump of
the file (history, questions and all) are compared before and after. Random commands that are
valid change the knowledge base only by one recorded, undoable change at a time.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from bot import admin, texts
from bot.app import build_application
from bot.cli import cli
from bot.config import Settings
from knowledge.base import KnowledgeBase
from knowledge.entries import (
    KINDS,
    MAX_DOCUMENT_BYTES,
    MAX_ENTRIES,
    SLUG_RE,
    DocumentError,
    clean_text,
    parse_document,
)
from knowledge.store import Store
from tests.botapi import command_entities, format_text
from tests.tgfake import TOKEN, Call, Harness, RecordingRequest, buttons

ADMIN = 4001
OTHER = 4002
# No shrinking for the tests that drive the bot: a failure is reported as found, at once,
# instead of after minutes of round trips.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

ADMIN_NAMES = {name for name, _ in admin.ADMIN_COMMANDS}
# Every way an admin command says "no": usage, refusals, "nothing was changed".
REFUSALS = ("用法", "未修改", "未做任何修改", "无效", "已存在", "太长", "没有字段", "没有条目")


# -- the bot, in process --------------------------------------------------------------------


@dataclass
class Bot:
    """A real Application over a real SQLite knowledge base, driven from a private loop."""

    runner: asyncio.Runner
    harness: Harness
    kb: KnowledgeBase
    errors: list[BaseException] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.kb.store

    def send(self, user: int, text: str) -> list[Call]:
        """``user`` sends ``text`` in a private chat, with the entities Telegram would add."""
        msg = self.harness.message(user, text)
        msg.pop("entities", None)
        if entities := command_entities(text):
            msg["entities"] = entities
        return self._feed({"message": msg})

    def send_document(self, user: int, content: bytes, name: str = "kb.json") -> list[Call]:
        return self.runner.run(
            self.harness.send_document(user, content, caption="/import", file_name=name)
        )

    def _feed(self, update: dict[str, Any]) -> list[Call]:
        calls = self.harness.request.calls
        start = len(calls)
        self.runner.run(self.harness.feed(update))
        return calls[start:]

    def snapshot(self) -> tuple[str, int, str]:
        """Export, revision, and every row of every table."""
        dump = "\n".join(self.store.db.conn.iterdump())
        return self.store.export(), self.store.revision(), dump


@contextmanager
def running_bot(path: Path, pipeline) -> Iterator[Bot]:
    kb = KnowledgeBase(Store(path), pipeline)
    request = RecordingRequest()
    settings_ = Settings(token=TOKEN, admin_ids=frozenset({ADMIN}))
    app = build_application(settings_, kb, request=request, get_updates_request=RecordingRequest())
    bot = Bot(asyncio.Runner(), Harness(app, request), kb)

    async def record(update: object, context: Any) -> None:
        bot.errors.append(context.error)

    app.add_error_handler(record)
    bot.runner.run(app.initialize())
    try:
        yield bot
    finally:
        bot.runner.run(app.shutdown())
        bot.runner.close()
        kb.store.close()


@pytest.fixture(scope="module")
def bot(tmp_path_factory, pipeline) -> Iterator[Bot]:
    """One bot for the tests that must change nothing."""
    with running_bot(tmp_path_factory.mktemp("fuzz") / "kb.db", pipeline) as b:
        b.store.log_question("一个没匹配上的问题", None, 0)  # so /unmatched has something
        yield b


def reply_text(calls: list[Call]) -> str:
    return "\n".join(
        c.params.get("text", "") or c.params.get("caption", "")
        for c in calls
        if c.method in ("sendMessage", "editMessageText", "sendDocument", "answerCallbackQuery")
    )


def check_replies(bot: Bot, calls: list[Call]) -> None:
    """The bot answered, without an error, in HTML Telegram accepts, within its limits."""
    assert bot.errors == [], bot.errors
    sent = [c for c in calls if c.method in ("sendMessage", "sendDocument", "editMessageText")]
    assert sent, [c.method for c in calls]
    for call in sent:
        if "text" not in call.params:
            continue
        text = call.params["text"]
        assert texts.ERROR not in text
        plain, _ = format_text(text, call.params.get("parse_mode"), None)  # raises if broken
        assert 0 < len(plain) <= 4096


def assert_unchanged(bot: Bot, before: tuple[str, int, str]) -> None:
    export, revision, dump = bot.snapshot()
    assert revision == before[1]
    assert export == before[0]
    assert dump == before[2]


# -- strategies -----------------------------------------------------------------------------

# No lone surrogates here: Telegram delivers admins' commands as valid UTF-8 (the user path,
# where a JSON "\ud800" is at least conceivable, is covered in tests/test_properties.py).
NASTY = (
    "\x00\x01\x1b\x7f\u200b\u200d\ufeff\u202e\ue000\U0010fffd"
    "😀🇨🇳\u0301<>&\"'/@*_`[](){}#\\借呗花呗逾期额度Ａ１"
)
chars = st.one_of(st.characters(), st.sampled_from(NASTY))
text_arg = st.one_of(
    st.lists(chars, max_size=80).map("".join),
    st.builds(
        lambda s, n: (s * n)[:5000],
        st.lists(chars, min_size=1, max_size=9).map("".join),
        st.integers(1, 5000),
    ),
)
# One argument word, as admin.arguments() splits it (no Unicode whitespace inside).
word = st.lists(chars, min_size=1, max_size=24).map("".join).filter(lambda w: w.split() == [w])
bad_slug = word.filter(lambda w: not SLUG_RE.match(w))
new_slug = st.from_regex(r"zz[a-z0-9_]{1,20}", fullmatch=True)  # no shipped slug starts zz
# Text that clean_text() empties: control and format characters only.
blank = st.lists(
    st.sampled_from("\x00\x01\x1b\x7f\u200b\u200d\ufeff\u202e"), min_size=1, max_size=8
).map("".join)


def long_text(limit: int) -> st.SearchStrategy[str]:
    """Printable text over ``limit`` characters (and never blank)."""
    return st.builds(
        lambda c, n: c * n, st.sampled_from("长x&<😀"), st.integers(limit + 1, limit + 500)
    )


def telegram_command(text: str) -> str | None:
    """The command Telegram sees at the start of ``text`` (``/undo\x00x`` is ``/undo``)."""
    m = re.match(r"/([A-Za-z0-9_]{1,64})(?![A-Za-z0-9_])", text)
    return m.group(1).lower() if m else None


@st.composite
def malformed_command(draw: st.DrawFn, slugs: list[str], examples: dict[str, list[str]]) -> str:
    """An admin command that must be refused (or, for /delete, only asks to confirm)."""
    slug = draw(st.sampled_from(slugs))
    missing = draw(st.one_of(bad_slug, new_slug))
    field_ = draw(st.sampled_from(["title", "explanation", "solution"]))
    forms = [
        f"/add {draw(bad_slug)} {draw(text_arg)}",
        f"/add {slug} {draw(text_arg)}",
        f"/add {draw(new_slug)} {draw(blank)}",
        f"/add {draw(new_slug)} {draw(long_text(60))}",
        f"/add {draw(new_slug)}",
        f"/set {missing} {field_} {draw(text_arg)}",
        f"/set {slug} {draw(word.filter(lambda w: w not in admin.SETTABLE))} {draw(text_arg)}",
        f"/set {slug} kind {draw(word.filter(lambda w: clean_text(w) not in KINDS))}",
        f"/set {slug} {field_} {draw(long_text(3000 if field_ != 'title' else 60))}",
        f"/set {slug} title {draw(blank)}",
        f"/set {slug} {field_}",
        f"/example {missing} {draw(text_arg)}",
        f"/example {slug} {draw(long_text(200))}",
        f"/example {slug} {draw(blank)}",
        f"/example {slug}",
        f"/unexample {missing} {draw(text_arg)}",
        f"/unexample {slug} {draw(text_arg.filter(lambda t: clean_text(t) not in examples[slug]))}",
        f"/delete {draw(text_arg)}",  # at most a confirmation button, never pressed
        f"/entries {draw(text_arg)}",
        f"/entry {draw(text_arg)}",
        f"/test {draw(text_arg)}",
        f"/history {draw(text_arg)}",
        f"/stats {draw(text_arg)}",
        f"/unmatched {draw(text_arg)}",
        f"/export {draw(text_arg)}",
        f"/import {draw(text_arg)}",
        f"/{draw(st.from_regex(r'[a-z_]{1,12}', fullmatch=True))} {draw(text_arg)}",
        f"/add@some_other_bot {draw(new_slug)} 标题",
        f"/{draw(word)}",
    ]
    # random command names must not be real admin commands (/undo would change things)
    forms[-4:] = [
        f for f in forms[-4:] if f.startswith("/add@") or telegram_command(f) not in ADMIN_NAMES
    ]
    return draw(st.sampled_from(forms))


# -- malformed commands ---------------------------------------------------------------------


def test_malformed_admin_commands_are_refused_and_change_nothing(bot):
    slugs = [e.slug for e in bot.kb.entries()]
    examples = {e.slug: e.examples for e in bot.kb.entries()}
    seen: set[str] = set()

    @FUZZ
    @given(command=malformed_command(slugs, examples))
    @example(command="/set overview explanation " + "长" * 3001)
    @example(command="/example overview " + "x" * 201)
    @example(command="/add overview 重复")
    @example(command="/add Bad-Slug 标题")
    @example(command="/add <b>x</b> 标题")
    @example(command="/set overview color 红")
    @example(command="/set overview kind <i>weird</i>")
    @example(command="/unexample overview 没有这句")
    @example(command="/history Bad! 2")
    @example(command="/stats 99999999999999999999999")
    @example(command="/entries 99999999999999999999999")
    @example(command="/history overview 999999999999999999999")
    @example(command="/delete " + "0" * 5000)  # once cut a <code> tag in two
    @example(command="/entry " + "<b>" * 2000)
    @example(command="/add " + "x" * 5000 + " 标题")
    @example(command="/set overview " + "f" * 5000 + " 内容")
    def check(command: str) -> None:
        before = bot.snapshot()
        calls = bot.send(ADMIN, command)
        check_replies(bot, calls)
        assert_unchanged(bot, before)
        name = command.split()[0][1:]
        if name in ("add", "set", "example", "unexample"):
            assert any(mark in reply_text(calls) for mark in REFUSALS), reply_text(calls)[:300]
        seen.add(name)

    check()
    assert {"add", "set", "example", "unexample", "delete"} <= seen


def test_random_commands_from_a_non_admin_are_refused(bot):
    @FUZZ
    @given(
        name=st.sampled_from([n for n, _ in admin.ADMIN_COMMANDS]),
        args=text_arg,
    )
    def check(name: str, args: str) -> None:
        before = bot.snapshot()
        calls = bot.send(OTHER, f"/{name} {args}")
        assert bot.errors == []
        assert [c.method for c in calls] == ["sendMessage"]
        assert calls[0].params["text"] == admin.REFUSED
        assert_unchanged(bot, before)

    check()


def test_random_admin_commands_change_only_by_recorded_changes(tmp_path, pipeline):
    """Anything an admin types, valid or not: an answer, and the knowledge base is either
    unchanged or changed by exactly one history row whose before/after is what changed."""
    commands = ["add", "set", "example", "unexample", "undo", "entry", "test", "history"]
    with running_bot(tmp_path / "kb.db", pipeline) as b:
        slugs = [e.slug for e in b.kb.entries()] + ["zznew"]
        changes: list[str] = []

        @settings(FUZZ, max_examples=60)
        @given(
            name=st.sampled_from(commands),
            slug=st.one_of(st.sampled_from(slugs), word),
            field_=st.sampled_from([*admin.SETTABLE, "color"]),
            text=st.one_of(text_arg, st.sampled_from(["借呗被关了怎么办", "redirect", "标题"])),
        )
        @example(name="add", slug="zznew", field_="title", text="新条目")
        @example(name="example", slug="zznew", field_="title", text="借呗被关了怎么办")
        @example(name="set", slug="overview", field_="title", text="<b>新</b>标题")
        @example(name="set", slug="overview", field_="kind", text="redirect")
        @example(name="unexample", slug="zznew", field_="title", text="借呗被关了怎么办")
        @example(name="undo", slug="", field_="title", text="")
        @example(name="undo", slug="", field_="title", text="")
        def check(name: str, slug: str, field_: str, text: str) -> None:
            args = {"set": f"{slug} {field_} {text}", "undo": "", "history": slug}
            command = f"/{name} {args.get(name, f'{slug} {text}')}"
            before_rows = b.store.history(limit=10**6)
            before = {e.slug: e.to_dict() for e in b.store.entries()}
            revision = b.store.revision()
            check_replies(b, b.send(ADMIN, command))
            rows = b.store.history(limit=10**6)
            after = {e.slug: e.to_dict() for e in b.store.entries()}
            parse_document(b.store.export())  # still a valid document
            if after == before:
                assert rows == before_rows and b.store.revision() == revision
                return
            changes.append(command)
            assert len(rows) == len(before_rows) + 1, command
            assert b.store.revision() == revision + 1
            change = rows[0]
            changed = {s for s in before.keys() | after.keys() if before.get(s) != after.get(s)}
            assert changed == {change.slug}
            assert change.before == before.get(change.slug)
            assert change.after == after.get(change.slug)
            assert b.kb.entries() == b.store.entries()  # the matcher was rebuilt from it

        check()
        assert changes  # the valid ones did change it
        assert b.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- import documents -------------------------------------------------------------------------


def shipped_doc(bot: Bot) -> dict[str, Any]:
    return json.loads(bot.store.export())


def doc(**fields: Any) -> bytes:
    return json.dumps({"version": 1, **fields}, ensure_ascii=False).encode()


def entries_doc(*entries: dict[str, Any], **fields: Any) -> bytes:
    return doc(entries=list(entries), **fields)


OK_ENTRY = {"slug": "ok_entry", "title": "好", "examples": ["借呗被关了"]}
SENTINEL = "jiebei-fuzz-sentinel"


def bad_documents(sentinel: Path) -> dict[str, bytes]:
    """name -> content of an import document that must be refused."""
    deep = 100_000
    big_list = "big: &big\n" + "".join(f"  - {'例' * 190}{i:04d}\n" for i in range(1000))
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 10):
        laughs += f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    return {
        # truncated, empty, not text
        "empty": b"",
        "blank": b"  \n\t\n",
        "bom only": "\ufeff".encode(),
        "json cut short": b'{"version": 1, "entries": [{"slug": "ok_entry", "title": "\xe5\xa5',
        "yaml cut in a quoted string": b'version: 1\nentries:\n  - slug: ok_entry\n    title: "ha',
        "nul bytes": b'{"version": 1, "entries": []}\x00\x00',
        "latin-1": "{'title': 'caf\xe9'}".encode("latin-1"),
        "utf-16": '{"version": 1}'.encode("utf-16"),
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
        "null": b"null",
        "a list": b"[1, 2, 3]",
        "a number": b"42",
        "a string": b'"version: 1"',
        # versions
        "no version": json.dumps({"entries": [OK_ENTRY]}).encode(),
        "version 2": doc(version=2, entries=[OK_ENTRY]),
        "version 0": doc(version=0, entries=[OK_ENTRY]),
        "version -1": doc(version=-1, entries=[OK_ENTRY]),
        "version '1'": doc(version="1", entries=[OK_ENTRY]),
        "version true": doc(version=True, entries=[OK_ENTRY]),
        "version null": doc(version=None, entries=[OK_ENTRY]),
        "version [1]": doc(version=[1], entries=[OK_ENTRY]),
        "version 1.5": doc(version=1.5, entries=[OK_ENTRY]),
        "version inf": b'{"version": 1e999, "entries": []}',
        "version NaN": b'{"version": NaN, "entries": []}',
        "version of 5000 digits": b'{"version": 1' + b"0" * 5000 + b', "entries": []}',
        "yaml version of 5000 digits": b"version: 1" + b"0" * 5000 + b"\nentries: []\n",
        # wrong types
        "entries an object": doc(entries={"slug": "ok_entry"}),
        "entries a string": doc(entries="ok_entry"),
        "entries empty": doc(entries=[]),
        "entry a number": entries_doc(1),
        "entry a list": entries_doc(["ok_entry", "好"]),
        "slug a number": entries_doc({**OK_ENTRY, "slug": 5}),
        "slug with capitals": entries_doc({**OK_ENTRY, "slug": "Bad_Slug"}),
        "slug with html": entries_doc({**OK_ENTRY, "slug": "<b>x</b>"}),
        "slug too long": entries_doc({**OK_ENTRY, "slug": "s" * 41}),
        "title missing": entries_doc({"slug": "ok_entry"}),
        "title a list": entries_doc({**OK_ENTRY, "title": ["好"]}),
        "title blank": entries_doc({**OK_ENTRY, "title": "\u200b\x00 "}),
        "explanation an object": entries_doc({**OK_ENTRY, "explanation": {"a": 1}}),
        "kind unknown": entries_doc({**OK_ENTRY, "kind": "weird"}),
        "kind a list": entries_doc({**OK_ENTRY, "kind": ["cause"]}),
        "examples a string": entries_doc({**OK_ENTRY, "examples": "借呗被关了"}),
        "examples of numbers": entries_doc({**OK_ENTRY, "examples": [1, 2]}),
        "examples with an empty one": entries_doc({**OK_ENTRY, "examples": ["a", " "]}),
        "examples nested": entries_doc({**OK_ENTRY, "examples": [["a"]]}),
        "keywords of objects": entries_doc({**OK_ENTRY, "keywords": [{}]}),
        "related unknown": entries_doc({**OK_ENTRY, "related": ["nowhere"]}),
        "related invalid": entries_doc({**OK_ENTRY, "related": ["Bad Slug"]}),
        "yaml date as title": b"version: 1\nentries:\n  - {slug: ok_entry, title: 2024-01-01}\n",
        "yaml bool as example": b"version: 1\nentries:\n  - {slug: ok_entry, title: t, "
        b"examples: [yes, no]}\n",
        "yaml set as examples": b"version: 1\nentries:\n  - {slug: ok_entry, title: t, "
        b"examples: !!set {a: null}}\n",
        "yaml binary as title": b"version: 1\nentries:\n  - {slug: ok_entry, "
        b"title: !!binary aGk=}\n",
        "yaml bad timestamp": b"version: 1\nentries:\n  - {slug: ok_entry, title: !!timestamp "
        b"2020-13-45}\n",
        "yaml empty int": b"version: !!int ''\n",
        "yaml empty bool": b"version: !!bool ''\n",
        # huge fields
        "title of 61": entries_doc({**OK_ENTRY, "title": "长" * 61}),
        "explanation of 3001": entries_doc({**OK_ENTRY, "explanation": "长" * 3001}),
        "solution of 3001": entries_doc({**OK_ENTRY, "solution": "x" * 3001}),
        "example of 201": entries_doc({**OK_ENTRY, "examples": ["长" * 201]}),
        "1001 examples": entries_doc({**OK_ENTRY, "examples": [f"例{i}" for i in range(1001)]}),
        "101 keywords": entries_doc({**OK_ENTRY, "keywords": [f"k{i}" for i in range(101)]}),
        "keyword of 41": entries_doc({**OK_ENTRY, "keywords": ["k" * 41]}),
        "21 related": entries_doc(
            {**OK_ENTRY, "related": [f"r{i:02d}" for i in range(21)]},
            *({"slug": f"r{i:02d}", "title": "t"} for i in range(21)),
        ),
        f"{MAX_ENTRIES + 1} entries": entries_doc(
            *({"slug": f"e{i}", "title": "t"} for i in range(MAX_ENTRIES + 1))
        ),
        # duplicates
        "duplicate slugs": entries_doc(OK_ENTRY, {**OK_ENTRY, "title": "另一个"}),
        "duplicate slug far apart": entries_doc(
            OK_ENTRY, *({"slug": f"e{i}", "title": "t"} for i in range(500)), OK_ENTRY
        ),
        "valid entries then a bad one": entries_doc(
            OK_ENTRY, {"slug": "second", "title": "t"}, {"slug": "third", "title": 3}
        ),
        # YAML that tries to build objects or run code
        "python/object/apply os.system": (
            f"!!python/object/apply:os.system ['touch {sentinel}']"
        ).encode(),
        "python/object/apply in a field": (
            "version: 1\nentries:\n  - slug: ok_entry\n    title: !!python/object/apply:os.system"
            f" ['touch {sentinel}']\n"
        ).encode(),
        "python/object/new": b"!!python/object/new:subprocess.Popen [[touch, x]]\n",
        "python/name": b"version: !!python/name:os.system\n",
        "python/module": b"version: !!python/module:os\n",
        "python/tuple": b"version: 1\nentries: !!python/tuple [1]\n",
        "unknown local tag": b"version: 1\nentries: !evil [1]\n",
        # expansion and nesting
        "billion laughs": laughs.encode() + b"version: 1\nentries: *j\n",
        "billion laughs in examples": laughs.encode()
        + b"version: 1\nentries:\n  - {slug: ok_entry, title: t, examples: *j}\n",
        "one big list aliased by 1000 entries": (
            big_list
            + "version: 1\nentries:\n"
            + "".join(f"  - {{slug: s{i:05d}, title: t, examples: *big}}\n" for i in range(1000))
        ).encode(),
        "merge key alias": b"base: &b {title: t}\nversion: 1\nentries:\n  - {<<: *b, slug: ok}\n",
        "deep json arrays": b"[" * deep + b"]" * deep,
        "deep json objects": b'{"a":' * deep + b"1" + b"}" * deep,
        "deep json in an entry": b'{"version": 1, "entries": [' + b"[" * deep + b"]" * deep + b"]}",
        "deep yaml flow": b"version: 1\nentries: " + b"[" * deep + b"]" * deep + b"\n",
        "deep yaml block": b"version: 1\nentries:\n"
        + b"".join(b"  " * i + b"- \n" for i in range(2000)),
    }


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> tuple[dict[str, bytes], Path]:
    sentinel = tmp_path_factory.mktemp("sentinel") / SENTINEL
    return bad_documents(sentinel), sentinel


def test_the_bad_documents_are_bad(documents):
    """Each document above is refused by the parser with a DocumentError, quickly."""
    docs, sentinel = documents
    for name, content in docs.items():
        started = time.perf_counter()
        with pytest.raises(DocumentError):
            parse_document(content)
        assert time.perf_counter() - started < 10, name  # a generous safety net
    assert not sentinel.exists()


def test_bad_documents_sent_to_the_bot_are_refused_and_change_nothing(bot, documents):
    docs, sentinel = documents
    for name, content in docs.items():
        before = bot.snapshot()
        calls = bot.send_document(ADMIN, content, name="kb.yaml")
        check_replies(bot, calls)
        reply = reply_text(calls)
        assert "未做任何修改" in reply, (name, reply[:300])
        assert not [b for c in calls for b in buttons(c)], name  # nothing to confirm
        assert_unchanged(bot, before)
    assert not sentinel.exists()


def test_a_document_over_the_limit_is_refused_before_download(bot):
    before = bot.snapshot()
    calls = bot.send_document(ADMIN, b"x" * (admin.MAX_IMPORT_BYTES + 1))
    assert "文件太大" in reply_text(calls)
    assert not [c for c in calls if c.method == "getFile"]
    assert_unchanged(bot, before)


def cli_import(db: Path, path: Path) -> Any:
    return CliRunner().invoke(
        cli, ["kb", "import", str(path)], env={"KNOWLEDGE_DB": str(db)}, catch_exceptions=False
    )


def test_bad_documents_through_the_cli_are_refused_and_change_nothing(tmp_path, documents):
    docs, sentinel = documents
    db = tmp_path / "kb.db"
    store = Store(db)
    try:
        for i, (name, content) in enumerate(
            [*docs.items(), ("over 20 MiB", b" " * (MAX_DOCUMENT_BYTES + 1))]
        ):
            before = (store.export(), store.revision(), "\n".join(store.db.conn.iterdump()))
            path = tmp_path / f"doc{i}.yaml"
            path.write_bytes(content)
            result = cli_import(db, path)
            assert result.exit_code == 1, (name, result.output)
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.output)
            assert "nothing was changed" in lines[0] and "Traceback" not in result.output
            after = (store.export(), store.revision(), "\n".join(store.db.conn.iterdump()))
            assert after == before, name
    finally:
        store.close()
    assert not sentinel.exists()


# -- documents cut short and random documents -------------------------------------------------


def test_truncated_documents(bot, tmp_path):
    """An export cut anywhere: the bot refuses it or (a YAML cut that is still a valid, shorter
    document) previews it and waits for a confirmation; either way nothing changes."""
    exports = {"json": bot.store.export("json"), "yaml": bot.store.export("yaml")}

    @FUZZ
    @given(fmt=st.sampled_from(["json", "yaml"]), cut=st.floats(0.0, 0.9999))
    @example(fmt="json", cut=0.5)
    @example(fmt="yaml", cut=0.5)
    def check(fmt: str, cut: float) -> None:
        full = exports[fmt].encode()
        content = full[: int(len(full) * cut)]
        try:
            parsed = [e.to_dict() for e in parse_document(content)]
            valid = True
        except DocumentError:
            valid = False
        same = valid and parsed == [e.to_dict() for e in bot.kb.entries()]
        assert not (fmt == "json" and valid and content.strip() != full.strip())
        before = bot.snapshot()
        calls = bot.send_document(ADMIN, content, name=f"kb.{fmt}")
        check_replies(bot, calls)
        offered = [d for c in calls for _, d in buttons(c)]
        if same:
            assert admin.IMPORT_SAME in reply_text(calls) and not offered
        elif valid:
            assert any(d.startswith("a:imp:") for d in offered)
        else:
            assert not offered and "未做任何修改" in reply_text(calls)
        assert_unchanged(bot, before)

    check()


FIELDS = ["version", "entries", "slug", "title", "examples", "kind", "related", "keywords"]
YAML_PIECES = [
    "!!int", "!!float", "!!timestamp", "!!binary", "!!set", "!!omap", "!!pairs", "!!str",
    "!!bool", "!!null", "!!python/object/apply:os.system", "!!python/name:os.system", "!foo",
    "<<: ", "&a ", "*a", "? ", "%YAML 1.1\n---\n", "---\n", "...\n", "{", "}", "[", "]", ": ",
    "- ", "\n", "  ", "version: 1\n", "entries:\n", "0x", "0o7", "1_000", "12:30:00",
    "2020-13-45", ".nan", "-.inf", "9" * 4400, "'", '"', "\\u", "\\x", "#", "|", ">", "\t",
    "slug: ab", "title: t", "examples: [a]", "\ufeff", "\x00", "\x85",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=5)), max_size=30).map(
            "".join
        ),
        st.binary(max_size=200),
        st.tuples(
            st.sampled_from([json.dumps, yaml.safe_dump]),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)
                ),
            ),
        ).map(lambda pair: pair[0](pair[1])),
    )
)
@example("!!int")
@example("!!bool")
@example("!!timestamp")
@example("2020-13-45")
def test_any_document_is_parsed_or_refused_with_a_document_error(data):
    try:
        entries = parse_document(data)
    except DocumentError as exc:
        assert str(exc)
    else:
        assert entries and all(SLUG_RE.match(e.slug) for e in entries)


def test_an_admin_pressing_confirm_on_a_refused_import_is_impossible(bot):
    """No confirmation button comes with a refusal; a forged one finds nothing pending."""
    before = bot.snapshot()
    msg = {
        **bot.harness.message(ADMIN, "x"),
        "from": {"id": 777000, "is_bot": True, "first_name": "bot"},
    }
    calls = bot.runner.run(bot.harness.press(ADMIN, msg, "a:imp:forged-token"))
    assert admin.STALE in reply_text(calls)
    assert_unchanged(bot, before)
