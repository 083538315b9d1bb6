"""Admin commands through a real ``Application``; only the Bot API's network is replaced.

The knowledge base is a real SQLite file with a small document of our own, matched by a real
jieba + rapidfuzz pipeline (with a small test lexicon, so that edits elsewhere in the shipped
data cannot move these tests).
"""

from __future__ import annotations

import json
import logging
import re
import time
from html.parser import HTMLParser
from typing import Any

import pytest
from telegram.ext import Application

from bot import admin
from bot.admin import REFUSED
from bot.config import Settings
from knowledge.base import KnowledgeBase
from knowledge.entries import parse_document
from knowledge.store import Store, StoreError
from knowledge.text import Lexicon, TextPipeline
from tests.tgfake import TOKEN, Call, Harness, RecordingRequest, buttons

ADMIN = 1001
ADMIN2 = 1002
OTHER = 2002
GROUP = -100200

DOC: dict[str, Any] = {
    "version": 1,
    "entries": [
        # No keywords: ties between equal examples go to the earlier entry, which is what
        # lets the safety-net test pull an example of a later entry over to an earlier one.
        {
            "slug": "closed",
            "title": "借呗被关",
            "explanation": "总说明",
            "solution": "看原因",
            "examples": ["借呗被关了怎么办", "借呗突然停了"],
        },
        {
            "slug": "overdue",
            "title": "花呗逾期",
            "explanation": "逾期会影响借呗",
            "solution": "还清欠款",
            "examples": ["花呗逾期了借呗被关", "花呗晚还借呗停了"],
        },
        {
            "slug": "risk",
            "title": "账户风险",
            "explanation": "账户异常",
            "solution": "换设备",
            "examples": ["账号异常借呗用不了", "账户有风险"],
        },
        {"slug": "hello", "title": "你好", "kind": "smalltalk", "examples": ["你好", "在吗"]},
    ],
}
DOC_TEXT = json.dumps(DOC, ensure_ascii=False)


class FileNamesRequest(RecordingRequest):
    """Also keeps the file names of uploads (the base class keeps only their bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.file_names: list[str] = []

    async def do_request(
        self, url: str, method: str, request_data: Any = None, *args: Any, **kw: Any
    ) -> tuple[int, bytes]:
        if request_data is not None and request_data.contains_files:
            for item in request_data.multipart_data.values():
                if isinstance(item, tuple):
                    self.file_names.append(item[0])
        return await super().do_request(url, method, request_data, *args, **kw)


@pytest.fixture(scope="session")
def pipeline() -> TextPipeline:
    lexicon = Lexicon(
        concepts={"JIEBEI": ["借呗", "接呗"], "HUABEI": ["花呗"], "OVERDUE": ["逾期", "晚还"]},
        stopwords=["的", "吗"],
    )
    return TextPipeline(lexicon)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "kb.db", seed=False)
    s.import_document(DOC_TEXT, actor="test")
    yield s
    s.close()


@pytest.fixture
def kb(store, pipeline) -> KnowledgeBase:
    return KnowledgeBase(store, pipeline)


@pytest.fixture
async def app(kb):
    request = FileNamesRequest()
    application = (
        Application.builder()
        .token(TOKEN)
        .request(request)
        .get_updates_request(RecordingRequest())
        .build()
    )
    application.bot_data["kb"] = kb
    application.bot_data["settings"] = Settings(admin_ids=frozenset({ADMIN, ADMIN2}))
    errors: list[BaseException] = []

    async def record(update: object, context: Any) -> None:
        errors.append(context.error)

    application.add_error_handler(record)
    application.bot_data["errors"] = errors
    admin.register(application)
    await application.initialize()
    yield application
    await application.shutdown()
    assert errors == [], errors
    for call in request.calls:  # every reply is well-formed HTML within Telegram's limit
        if call.method in ("sendMessage", "editMessageText"):
            text = call.params["text"]
            assert 0 < len(text) <= 4096
            if call.params.get("parse_mode") == "HTML":
                check_html(text)


@pytest.fixture
def h(app) -> Harness:
    return Harness(app, app.bot.request)


@pytest.fixture
def req(app) -> FileNamesRequest:
    return app.bot.request


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        assert tag in ("b", "i", "code", "pre", "a"), f"unexpected tag <{tag}>"
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, f"unbalanced </{tag}>"

    def handle_entityref(self, name: str) -> None:
        assert name in ("lt", "gt", "amp", "quot"), name


def check_html(text: str) -> None:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.open == [], text


def texts(calls: list[Call]) -> str:
    return "\n".join(
        c.params.get("text", "") for c in calls if c.method in ("sendMessage", "editMessageText")
    )


def last_sent(h: Harness, chat_id: int = ADMIN) -> dict[str, Any]:
    return h.last_message(chat_id)


def callback(calls: list[Call], prefix: str) -> str:
    for call in reversed(calls):
        for _, data in buttons(call):
            if data.startswith(prefix):
                return data
    raise AssertionError(f"no button {prefix!r} in {[buttons(c) for c in calls]}")


def message_with(h: Harness, data: str, chat_id: int = ADMIN) -> dict[str, Any]:
    """The bot's message (current state) that carries a button with ``data``."""
    for (chat, _), msg in reversed(h.request.messages.items()):
        if chat == chat_id and any(d == data for _, d in buttons(msg)):
            return msg
    raise AssertionError(data)


def answers(calls: list[Call]) -> list[dict[str, Any]]:
    return [c.params for c in calls if c.method == "answerCallbackQuery"]


# -- reading ------------------------------------------------------------------------------


def test_admin_commands_match_registered_handlers(app):
    registered = set()
    for handler in app.handlers[admin.ADMIN_GROUP]:
        registered |= set(getattr(handler, "commands", ()))
    names = [name for name, _ in admin.ADMIN_COMMANDS]
    assert set(names) == registered
    assert len(names) == len(set(names))
    assert all(name.islower() and 0 < len(desc) <= 256 for name, desc in admin.ADMIN_COMMANDS)


async def test_entries_lists_slug_title_and_examples(h):
    reply = texts(await h.send(ADMIN, "/entries"))
    for entry in DOC["entries"]:
        assert entry["slug"] in reply and entry["title"] in reply
    assert "2 例" in reply


async def test_entries_pages(h, kb):
    many = {
        "version": 1,
        "entries": [
            {"slug": f"e{i:02d}", "title": f"条目{i}", "examples": [f"例句{i}"]} for i in range(45)
        ],
    }
    kb.write(lambda s: s.import_document(json.dumps(many), actor="test"))
    first = texts(await h.send(ADMIN, "/entries"))
    assert "e00" in first and "e39" in first and "e40" not in first
    assert "/entries 2" in first
    second = texts(await h.send(ADMIN, "/entries 2"))
    assert "e44" in second and "e00" not in second


async def test_entry_shows_everything_escaped(h, kb):
    await h.send(ADMIN, "/add esc 标题<i>&*_[x](y)")
    await h.send(ADMIN, "/set esc explanation 第一行 <script>alert(1)</script> & *粗* _斜_\n第二行")
    entry = kb.store.get("esc")
    assert entry.title == "标题<i>&*_[x](y)"  # stored as written
    assert entry.explanation == "第一行 <script>alert(1)</script> & *粗* _斜_\n第二行"
    calls = await h.send(ADMIN, "/entry esc")
    reply = texts(calls)
    assert calls[-1].params["parse_mode"] == "HTML"
    assert "标题&lt;i&gt;&amp;*_[x](y)" in reply
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; *粗* _斜_\n第二行" in reply


async def test_long_entry_is_split_within_limits(h, kb):
    phrase = "长句&" * 60  # 180 characters; escaped, each "&" grows to "&amp;"
    doc = {
        "version": 1,
        "entries": [
            {
                "slug": "long",
                "title": "长",
                "explanation": "<&>" * 1000,
                "examples": [f"{i:03d}{phrase}" for i in range(100)],
            }
        ],
    }
    kb.write(lambda s: s.import_document(json.dumps(doc), actor="test"))
    calls = await h.send(ADMIN, "/entry long")
    sent = [c for c in calls if c.method == "sendMessage"]
    assert 1 < len(sent) <= admin.MAX_PARTS
    assert all(len(c.params["text"]) <= 4096 for c in sent)  # and valid HTML: fixture


def test_split_message_never_cuts_an_entity():
    text = "a" * 10 + "&amp;" * 3000
    chunks = admin.split_message(text, parts=10)
    assert "".join(chunks) == text
    assert all(len(c) <= 4096 and c.count("&") == c.count("&amp;") for c in chunks)
    many = "\n".join(f"行{i} " + "x" * 100 for i in range(1000))
    cut = admin.split_message(many)
    assert len(cut) == admin.MAX_PARTS and cut[-1].endswith(admin.TRUNCATED)


async def test_test_shows_candidates_margin_and_tokens(h, kb):
    reply = texts(await h.send(ADMIN, "/test 花呗逾期了借呗被关"))
    match = kb.match("花呗逾期了借呗被关")
    assert match.intent == "overdue"
    assert "overdue" in reply and f"{match.score:.1f}" in reply
    assert "HUABEI" in reply and "OVERDUE" in reply and "JIEBEI" in reply
    assert "前两名差距" in reply
    assert f"{match.margin:.1f}" in reply
    nothing = texts(await h.send(ADMIN, "/test 今天天气不错"))
    assert "未匹配" in nothing
    # both bars, as the matcher has them: causes and the overview have the lower one
    assert f"{kb.matcher.answer_threshold:g}" in nothing and f"{kb.matcher.threshold:g}" in nothing


async def test_export_sends_the_document_with_a_dated_name(h, req, store):
    calls = await h.send(ADMIN, "/export")
    docs = [c for c in calls if c.method == "sendDocument"]
    assert len(docs) == 1
    assert next(iter(docs[0].files.values())).decode() == store.export("json")
    name = req.file_names[-1]
    assert re.fullmatch(r"jiebei-kb-\d{8}-\d{6}\.json", name), name
    assert name[10:18] == time.strftime("%Y%m%d") or time.strftime("%H%M") == "0000"


async def test_seeded_store_lists_the_shipped_causes(tmp_path, pipeline):
    kb = KnowledgeBase(Store(tmp_path / "seeded.db"), pipeline)
    request = RecordingRequest()
    application = Application.builder().token(TOKEN).request(request).build()
    application.bot_data.update(kb=kb, settings=Settings(admin_ids=frozenset({ADMIN})))
    admin.register(application)
    await application.initialize()
    try:
        reply = texts(await Harness(application, request).send(ADMIN, "/entries"))
    finally:
        await application.shutdown()
    assert "huabei_overdue" in reply and "overview" in reply


# -- writing ------------------------------------------------------------------------------


async def test_add_set_example_unexample(h, kb, store):
    reply = texts(await h.send(ADMIN, "/add phone 换了手机号"))
    assert "phone" in reply
    assert store.get("phone").title == "换了手机号"
    await h.send(ADMIN, "/set phone solution 1. 先换回原手机号\n2. 再试")
    assert kb.entry("phone").solution == "1. 先换回原手机号\n2. 再试"
    await h.send(ADMIN, "/set phone kind redirect")
    assert kb.entry("phone").kind == "redirect"
    reply = texts(await h.send(ADMIN, "/set phone title 手机号变更"))
    assert "换了手机号" in reply and "手机号变更" in reply  # old → new
    await h.send(ADMIN, "/example phone 我换了个新手机号码")
    assert kb.entry("phone").examples == ["我换了个新手机号码"]
    reply = texts(await h.send(ADMIN, "/unexample phone 我换了个新手机号码"))
    assert "phone" in reply
    assert store.get("phone").examples == []
    actions = [c.action for c in store.history(limit=10)]
    assert actions[:6] == ["unexample", "example", "set", "set", "set", "add"]
    assert all(c.actor == f"tg:{ADMIN}" for c in store.history(limit=6))


async def test_example_is_live_for_matching_at_once(h, kb):
    text = "我想换个手机号码"
    assert kb.match(text).intent != "risk"
    reply = texts(await h.send(ADMIN, f"/example risk {text}"))
    assert "立即生效" in reply
    assert kb.match(text).intent == "risk"


@pytest.fixture
def ties_to_the_earlier_entry(monkeypatch):
    """The learned entry model off: equal examples tie and the earlier entry wins, which is
    what these tests use to pull an example over to another entry."""
    from knowledge import matcher as matcher_module

    monkeypatch.setattr(matcher_module, "MODEL_WEIGHT", 0.0)
    monkeypatch.setattr(matcher_module, "MODEL_EVIDENCE", 2.0)


async def test_example_warns_when_it_matches_elsewhere(h, kb, ties_to_the_earlier_entry):
    # "closed" comes first, so it wins the tie for overdue's own example phrase.
    reply = texts(await h.send(ADMIN, "/example overdue 借呗被关了怎么办"))
    assert "注意" in reply and "closed" in reply


async def test_safety_net_names_displaced_examples_and_undoes(
    h, kb, store, ties_to_the_earlier_entry
):
    before = store.export()
    assert kb.match("账号异常借呗用不了").intent == "risk"
    calls = await h.send(ADMIN, "/example closed 账号异常借呗用不了")
    reply = texts(calls)
    assert "⚠️" in reply and "risk" in reply and "账号异常借呗用不了" in reply
    assert kb.match("账号异常借呗用不了").intent == "closed"
    data = callback(calls, "a:undo:")
    assert data == f"a:undo:{store.history(limit=1)[0].id}"
    msg = message_with(h, data)
    calls = await h.press(ADMIN, msg, data)
    assert store.export() == before
    assert kb.match("账号异常借呗用不了").intent == "risk"
    assert "已撤销" in texts(calls)
    assert buttons(msg) == []  # the button is gone from the message
    # A second press of the same (stale) button changes nothing.
    calls = await h.press(ADMIN, message_with_id(h, data), data)
    assert store.export() == before
    assert "未撤销" in texts(calls)


def message_with_id(h: Harness, data: str) -> dict[str, Any]:
    """A copy of the latest bot message to ADMIN with a button ``data`` put back on it."""
    msg = dict(h.last_message(ADMIN))
    msg["reply_markup"] = {"inline_keyboard": [[{"text": "x", "callback_data": data}]]}
    return msg


async def test_undo_button_does_not_take_back_a_later_change(h, kb, store):
    calls = await h.send(ADMIN, "/example closed 账号异常借呗用不了")
    data = callback(calls, "a:undo:")
    await h.send(ADMIN, "/set hello title 您好")
    after = store.export()
    calls = await h.press(ADMIN, message_with(h, data), data)
    assert "未撤销" in texts(calls)
    assert store.export() == after


async def test_undo_is_exact_and_repeatable(h, store):
    snapshots = [store.export()]
    for command in (
        "/add phone 换号",
        "/set phone explanation 说明<&>",
        "/example phone 我换了手机号",
        "/set closed title 借呗关闭",
        "/unexample risk 账户有风险",
    ):
        await h.send(ADMIN, command)
        snapshots.append(store.export())
    assert len(set(snapshots)) == len(snapshots)
    for expected in reversed(snapshots[:-1]):
        reply = texts(await h.send(ADMIN, "/undo"))
        assert "已撤销" in reply
        assert store.export() == expected
    # The fixture's import: a whole import is taken back only after a confirmation.
    calls = await h.send(ADMIN, "/undo")
    assert "整体导入" in texts(calls) and "删除 4" in texts(calls)
    assert store.export() == snapshots[0]
    confirm = callback(calls, "a:und:")
    calls = await h.press(ADMIN, message_with(h, confirm), confirm)
    assert "已撤销" in texts(calls)
    assert store.entries() == []
    again = await h.press(ADMIN, last_sent(h), confirm)
    assert admin.STALE in texts(again)
    assert texts(await h.send(ADMIN, "/undo")) == admin.UNDO_NOTHING


async def test_undo_says_what_was_undone(h, store):
    await h.send(ADMIN, "/set closed title 新标题")
    reply = texts(await h.send(ADMIN, "/undo"))
    assert "set closed.title" in reply and "新标题 → 借呗被关" in reply
    assert store.get("closed").title == "借呗被关"


async def test_delete_needs_confirmation(h, kb, store):
    calls = await h.send(ADMIN, "/delete hello")
    assert store.get("hello") is not None
    confirm, cancel = callback(calls, "a:del:"), callback(calls, "a:no:")
    assert len(confirm.encode()) <= 64
    calls = await h.press(ADMIN, message_with(h, cancel), cancel)
    assert "已取消" in texts(calls)
    assert store.get("hello") is not None
    calls = await h.press(ADMIN, last_sent(h), confirm)  # cancelled: the token is gone
    assert admin.STALE in texts(calls)
    assert store.get("hello") is not None

    before = store.export()
    calls = await h.send(ADMIN, "/delete hello")
    confirm = callback(calls, "a:del:")
    calls = await h.press(ADMIN, message_with(h, confirm), confirm)
    assert answers(calls)  # answered first
    assert "已删除" in texts(calls)
    assert store.get("hello") is None and kb.entry("hello") is None
    assert kb.match("你好").intent != "hello"
    again = await h.press(ADMIN, last_sent(h), confirm)
    assert admin.STALE in texts(again)
    await h.send(ADMIN, "/undo")
    assert store.export() == before


async def test_pending_confirmation_expires(h, store, monkeypatch):
    monkeypatch.setattr(admin.admin_core, "PENDING_TTL", 0.0)
    calls = await h.send(ADMIN, "/delete hello")
    confirm = callback(calls, "a:del:")
    calls = await h.press(ADMIN, message_with(h, confirm), confirm)
    assert admin.STALE in texts(calls)
    assert store.get("hello") is not None


async def test_foreign_or_forged_token_changes_nothing(h, store):
    calls = await h.send(ADMIN, "/delete hello")
    confirm = callback(calls, "a:del:")
    msg = message_with(h, confirm)
    other_admin = {**msg, "chat": {"id": ADMIN2, "type": "private"}}
    calls = await h.press(ADMIN2, other_admin, confirm)
    assert admin.STALE in texts(calls)
    calls = await h.press(ADMIN, msg, "a:del:not-a-token")
    assert admin.STALE in texts(calls)
    calls = await h.press(ADMIN, msg, "a:imp:" + confirm.split(":")[2])  # wrong kind
    assert admin.STALE in texts(calls)
    assert store.get("hello") is not None
    calls = await h.press(ADMIN, msg, "a:bogus:1")
    assert admin.UNKNOWN_BUTTON in texts(calls)
    calls = await h.press(ADMIN, msg, confirm)  # still the admin's own, still valid
    assert store.get("hello") is None


# -- import -------------------------------------------------------------------------------


def new_doc() -> dict[str, Any]:
    doc = json.loads(DOC_TEXT)
    doc["entries"] = [e for e in doc["entries"] if e["slug"] != "hello"]
    doc["entries"][0]["title"] = "借呗关闭了"
    doc["entries"].append({"slug": "phone", "title": "换手机号", "examples": ["换了手机号"]})
    return doc


async def test_import_previews_then_replaces_everything(h, kb, store):
    doc = new_doc()
    calls = await h.send_document(
        ADMIN, json.dumps(doc, ensure_ascii=False).encode(), caption="/import"
    )
    preview = texts(calls)
    assert "新增 1：phone" in preview
    assert "修改 1：closed（title）" in preview
    assert "删除 1：hello" in preview
    assert store.get("hello") is not None  # nothing yet
    confirm = callback(calls, "a:imp:")
    assert len(confirm.encode()) <= 64
    calls = await h.press(ADMIN, message_with(h, confirm), confirm)
    assert "已导入 4 条" in texts(calls)
    assert [e.to_dict() for e in store.entries()] == [
        e.to_dict() for e in parse_document(json.dumps(doc))
    ]
    assert kb.match("换了手机号").intent == "phone"
    assert store.history(limit=1)[0].action == "import"


async def test_import_by_replying_to_a_document_and_yaml(h, store):
    content = store.export("yaml").replace("title: 你好", "title: 您好").encode()
    h.request.files["yaml1"] = content
    document_message = h.message(
        ADMIN,
        None,
        document={
            "file_id": "yaml1",
            "file_unique_id": "yaml1",
            "file_name": "kb.yaml",
            "file_size": len(content),
        },
    )
    calls = await h.send(ADMIN, "/import", reply_to_message=document_message)
    assert "修改 1：hello（title）" in texts(calls)
    confirm = callback(calls, "a:imp:")
    await h.press(ADMIN, message_with(h, confirm), confirm)
    assert store.get("hello").title == "您好"


async def test_import_of_the_same_document_asks_nothing(h, store):
    calls = await h.send_document(ADMIN, store.export().encode(), caption="/import")
    assert admin.IMPORT_SAME in texts(calls)
    assert not [b for c in calls for b in buttons(c)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json: [", "既不是有效的 JSON，也不是有效的 YAML"),
        (b"version: 1\nentries:\n  - slug: a\n   title: [\n", "第 4 行"),
        (b'{"version": 2, "entries": []}', "未知的文件版本 2"),
        ("\xff\xfe".encode("latin-1") + "借呗".encode("utf-16-le"), "不是 UTF-8"),
        (
            json.dumps({"version": 1, "entries": [DOC["entries"][0], DOC["entries"][0]]}).encode(),
            "与第 1 条重复",
        ),
        (json.dumps({"version": 1, "entries": [{"slug": "x1"}]}).encode(), "字段 title"),
        # valid entries first, an invalid one half-way: nothing of it is stored
        (
            json.dumps(
                {
                    "version": 1,
                    "entries": [
                        *DOC["entries"][:2],
                        {"slug": "Bad Slug", "title": "t"},
                        DOC["entries"][3],
                    ],
                }
            ).encode(),
            "第 3 条（Bad Slug）",
        ),
        (b"x" * (2 * 1024 * 1024 + 1), "文件太大"),
    ],
)
async def test_import_refusals_change_nothing(h, kb, store, content, reason, caplog):
    before = store.export()
    matcher = kb.matcher
    caplog.set_level(logging.INFO)
    calls = await h.send_document(ADMIN, content, caption="/import")
    assert reason in texts(calls)
    # Who did what, for the operator; the admin's id only with LOG_USER_IDS.
    assert "admin (id hidden): import refused" in caplog.text
    assert str(ADMIN) not in caplog.text
    assert not [b for c in calls for b in buttons(c)]
    assert store.export() == before
    assert kb.matcher is matcher


async def test_import_too_large_is_refused_before_download(h, store):
    h.request.files["big"] = b"{}"
    big = h.message(
        ADMIN,
        None,
        document={
            "file_id": "big",
            "file_unique_id": "big",
            "file_name": "kb.json",
            "file_size": 3 * 2**20,
        },
    )
    calls = await h.send(ADMIN, "/import", reply_to_message=big)
    assert "文件太大" in texts(calls)
    assert not [c for c in calls if c.method == "getFile"]


async def test_import_failing_while_writing_leaves_the_kb_exactly_as_before(
    h, kb, store, monkeypatch
):
    before = store.export()
    calls = await h.send_document(ADMIN, json.dumps(new_doc()).encode(), caption="/import")
    confirm = callback(calls, "a:imp:")
    real = Store._write_entry
    written: list[str] = []

    def failing(self: Store, entry: Any, position: Any = None) -> None:
        written.append(entry.slug)
        if len(written) == 3:
            raise StoreError("disk full")
        real(self, entry, position)

    monkeypatch.setattr(Store, "_write_entry", failing)
    calls = await h.press(ADMIN, message_with(h, confirm), confirm)
    assert "disk full" in texts(calls)
    assert len(written) == 3
    monkeypatch.undo()
    assert store.export() == before
    assert kb.entry("hello") is not None


async def test_import_after_the_kb_moved_on_is_refused(h, store):
    calls = await h.send_document(ADMIN, json.dumps(new_doc()).encode(), caption="/import")
    confirm = callback(calls, "a:imp:")
    await h.send(ADMIN, "/example hello 哈喽")
    before = store.export()
    calls = await h.press(ADMIN, message_with(h, confirm), confirm)
    assert admin.IMPORT_MOVED_ON in texts(calls)
    assert store.export() == before


async def test_import_without_a_document_explains(h, store):
    assert admin.USAGE["import"] in texts(await h.send(ADMIN, "/import"))


# -- history ------------------------------------------------------------------------------


async def test_history_shows_who_what_when_and_old_to_new(h, store):
    await h.send(ADMIN, "/set risk solution 新<b>办法</b>")
    await h.send(ADMIN2, "/example risk 号被风控了")
    reply = texts(await h.send(ADMIN, "/history"))
    assert f"tg:{ADMIN}" in reply and f"tg:{ADMIN2}" in reply
    assert "（solution）：换设备 → 新&lt;b&gt;办法&lt;/b&gt;" in reply
    assert "+ 示例「号被风控了」" in reply
    assert time.strftime("%Y-%m-%d") in reply
    only = texts(await h.send(ADMIN, "/history hello"))
    assert "risk" not in only and admin.HISTORY_NONE in only


async def test_history_pages(h, store):
    for i in range(12):
        await h.send(ADMIN, f"/example hello 问候{i}")
    first = texts(await h.send(ADMIN, "/history hello"))
    assert "问候11" in first and "问候2」" in first and "问候1」" not in first
    assert "/history hello 2" in first
    second = texts(await h.send(ADMIN, "/history hello 2"))
    assert "问候1」" in second and "问候0」" in second and "问候11" not in second


async def test_undone_changes_are_marked_in_history(h):
    await h.send(ADMIN, "/set hello title 嗨")
    await h.send(ADMIN, "/undo")
    reply = texts(await h.send(ADMIN, "/history hello"))
    assert admin.HISTORY_UNDONE in reply and "undo #" in reply


# -- unmatched and stats ------------------------------------------------------------------


async def test_unmatched_groups_alike_questions_and_assigns_a_group(h, kb, store):
    q1 = store.log_question("信用卡还不上了怎么整", None, 10)
    q2 = store.log_question("信用卡还不上了咋整啊", None, 10)
    lone = store.log_question("你们客服电话多少", None, 0)
    q3 = store.log_question("信用卡还不上了咋整", None, 10)
    calls = await h.send(ADMIN, "/unmatched")
    reply = texts(calls)
    assert "×3「信用卡还不上了咋整」" in reply and "×1「你们客服电话多少」" in reply
    assert "候选：无" in reply  # nothing shares a word with the lone question
    data = callback(calls, f"a:as:{q3}:")
    assert len(data.encode()) <= 64
    slug = data.split(":")[3]
    before = kb.match("信用卡还不上了咋整").intent
    calls = await h.press(ADMIN, message_with(h, data), data)
    assert answers(calls)
    assert f"已将 3 条问题归入 <code>{slug}</code>" in texts(calls)
    assert "信用卡还不上了咋整" in store.get(slug).examples
    assert kb.match("信用卡还不上了咋整").intent == slug != before
    left = [q["id"] for q in store.unmatched()]
    assert left == [lone]
    assert {store.question(q)["assigned"] for q in (q1, q2, q3)} == {slug}
    # the group's row of buttons is gone; a second tap on it changes nothing
    assert not [d for _, d in buttons(h.last_message(ADMIN)) if d.startswith(f"a:as:{q3}:")]
    examples = store.get(slug).examples
    calls = await h.press(ADMIN, message_with_id(h, data), data)
    assert "未修改" in texts(calls)
    assert store.get(slug).examples == examples


async def test_unmatched_empty(h):
    assert admin.UNMATCHED_NONE in texts(await h.send(ADMIN, "/unmatched"))


async def test_stats_per_intent_unmatched_share_and_feedback(h, store):
    for intent in ("overdue", "overdue", "risk", None):
        store.log_question("问题", intent, 80 if intent else 10)
    old = store.log_question("很久以前的问题", "hello", 90)
    store.db.execute("UPDATE questions SET at = ? WHERE id = ?", [time.time() - 20 * 86400, old])
    store.record_feedback("overdue", True, "c1")
    store.record_feedback("overdue", False, "c2")
    store.record_feedback("overdue", True, "c3")
    week = texts(await h.send(ADMIN, "/stats"))
    assert "最近 7 天" in week
    assert "提问 4，未匹配 1（25.0%）" in week
    assert "<code>overdue</code> 花呗逾期：2（50%）" in week
    assert "hello" not in week
    assert "<code>overdue</code>：2 / 1" in week
    month = texts(await h.send(ADMIN, "/stats 30"))
    assert "最近 30 天" in month and "提问 5" in month and "hello" in month


# -- who may ------------------------------------------------------------------------------

ALL_COMMANDS = [
    "/entries",
    "/entry closed",
    "/add new1 新条目",
    "/set closed title 改",
    "/example closed 新句",
    "/unexample closed 借呗突然停了",
    "/delete closed",
    "/test 借呗",
    "/export",
    "/import",
    "/history",
    "/undo",
    "/unmatched",
    "/review",
    "/stats",
]


@pytest.mark.parametrize("command", ALL_COMMANDS)
async def test_non_admins_are_refused_and_nothing_changes(h, store, caplog, command):
    store.log_question("未匹配的问题", None, 0)
    before, history = store.export(), store.history(limit=100)
    with caplog.at_level(logging.WARNING, logger="bot.admin"):
        calls = await h.send(OTHER, command)
    assert texts(calls) == REFUSED
    assert [c.method for c in calls] == ["sendMessage"]
    assert store.export() == before and store.history(limit=100) == history
    # The user is named only with LOG_USER_IDS (off here), like every other log line.
    assert str(OTHER) not in caplog.text and command.split()[0] in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


async def test_a_refusal_names_the_user_only_with_log_user_ids(app, h, caplog):
    with caplog.at_level(logging.WARNING, logger="bot.admin"):
        await h.send(OTHER, "/entries")
    assert "refused admin command /entries" in caplog.text and str(OTHER) not in caplog.text
    caplog.clear()
    app.bot_data["settings"] = Settings(admin_ids=frozenset({ADMIN}), log_user_ids=True)
    with caplog.at_level(logging.WARNING, logger="bot.admin"):
        await h.send(OTHER, "/entries")
    assert f"from user {OTHER}" in caplog.text


async def test_an_admins_edits_name_them_in_the_log_only_with_log_user_ids(app, h, store, caplog):
    with caplog.at_level(logging.INFO, logger="bot.admin_core"):
        await h.send(ADMIN, "/add logged1 第一条")
    assert "admin (id hidden) added entry logged1" in caplog.text
    assert str(ADMIN) not in caplog.text
    assert store.history()[0].actor == f"tg:{ADMIN}"  # the history still says who
    caplog.clear()
    app.bot_data["settings"] = Settings(admin_ids=frozenset({ADMIN}), log_user_ids=True)
    with caplog.at_level(logging.INFO, logger="bot.admin_core"):
        await h.send(ADMIN, "/add logged2 第二条")
    assert f"admin tg:{ADMIN} added entry logged2" in caplog.text


@pytest.mark.parametrize("command", ["/entries", "/delete closed", "/add new1 新条目"])
async def test_admins_are_refused_in_groups(h, store, command):
    before = store.export()
    calls = await h.send(ADMIN, command, chat_id=GROUP, chat_type="group")
    assert texts(calls) == REFUSED
    assert store.export() == before


async def test_import_document_from_non_admin_is_refused(h, store):
    before = store.export()
    calls = await h.send_document(OTHER, json.dumps(new_doc()).encode(), caption="/import")
    assert texts(calls) == REFUSED
    assert not [c for c in calls if c.method == "getFile"]
    assert store.export() == before


@pytest.mark.parametrize(
    "forged",
    [
        "a:del:{token}",
        "a:undo:{change}",
        "a:as:{question}:risk",
        "a:imp:{token}",
        "a:no:{token}",
        "a:und:{token}",
        "a:ud:{question}",
        "a:ra:{suggestion}",
        "a:rp:{suggestion}",
        "a:rt:{suggestion}:risk",
        "a:rd:{suggestion}",
        "a:whatever",
    ],
)
async def test_forged_callbacks_from_non_admins_are_refused(h, store, caplog, forged):
    qid = store.log_question("号被封了", None, 0)
    calls = await h.send(ADMIN, "/delete closed")
    token = callback(calls, "a:del:").split(":")[2]
    await h.send(ADMIN, "/example closed 账号异常借呗用不了")
    sid = store.add_suggestion("not_mine", "号被封了借呗没了", "closed", "risk", "5")
    data = forged.format(
        token=token, change=store.history(limit=1)[0].id, question=qid, suggestion=sid
    )
    before, history = store.export(), store.history(limit=100)
    msg = {**h.last_message(ADMIN), "chat": {"id": OTHER, "type": "private"}}
    with caplog.at_level(logging.WARNING, logger="bot.admin"):
        calls = await h.press(OTHER, msg, data)
    assert answers(calls) == [
        {
            "callback_query_id": answers(calls)[0]["callback_query_id"],
            "text": REFUSED,
            "show_alert": "true",
        }
    ]
    assert [c.method for c in calls] == ["answerCallbackQuery"]
    assert store.export() == before and store.history(limit=100) == history
    assert store.question(qid)["assigned"] is None
    assert store.suggestion(sid)["status"] == "open"
    assert "refused admin command a:" in caplog.text
    assert str(OTHER) not in caplog.text and token not in caplog.text
    # the admin's own confirmation still works
    msg = message_with(h, f"a:del:{token}")
    await h.press(ADMIN, msg, f"a:del:{token}")
    assert store.get("closed") is None


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/entry", admin.USAGE["entry"]),
        ("/entry nope", "没有条目 <code>nope</code>"),
        ("/entry <b>x</b>", "&lt;b&gt;x&lt;/b&gt;"),
        ("/entry closed risk", admin.USAGE["entry"]),
        ("/entries x", admin.USAGE["entries"]),
        ("/add", admin.USAGE["add"]),
        ("/add only_slug", admin.USAGE["add"]),
        ("/add closed 重复", "已存在"),
        ("/add Bad-Slug 标题", "条目名 <code>Bad-Slug</code> 无效"),
        ("/add <i>x</i> 标题", "&lt;i&gt;x&lt;/i&gt;"),
        ("/add new1 " + "长" * 61, "标题太长"),
        ("/set", "用法：/set"),
        ("/set closed", "用法：/set"),
        ("/set closed title", "用法：/set"),
        ("/set closed color 红", "没有字段 <code>color</code>"),
        ("/set nope title 标题", "没有条目"),
        ("/set closed kind weird", "kind must be one of"),
        ("/set closed explanation " + "长" * 3001, "explanation太长"),
        ("/example", admin.USAGE["example"]),
        ("/example closed", admin.USAGE["example"]),
        ("/example nope 句子", "没有条目"),
        ("/example closed " + "长" * 2000, "示例太长（2000 字"),
        ("/example closed 借呗突然停了", "has that example already"),
        ("/unexample closed 不存在的句子", "has no such example"),
        ("/unexample nope 句子", "没有条目"),
        ("/delete", admin.USAGE["delete"]),
        ("/delete nope", "没有条目"),
        ("/delete closed risk", admin.USAGE["delete"]),
        ("/test", admin.USAGE["test"]),
        ("/history closed x", admin.USAGE["history"]),
        ("/history Bad!", admin.USAGE["history"]),
        ("/stats abc", admin.USAGE["stats"]),
        ("/stats 0", admin.USAGE["stats"]),
    ],
)
async def test_malformed_commands_get_usage_and_change_nothing(h, kb, store, command, expected):
    before, history, matcher = store.export(), store.history(limit=100), kb.matcher
    calls = await h.send(ADMIN, command)
    assert expected in texts(calls)
    assert not [b for c in calls for b in buttons(c)]
    assert store.export() == before and store.history(limit=100) == history
    if "has" not in expected and "kind" not in expected:
        assert kb.matcher is matcher  # refused before any write


async def test_text_with_html_and_markdown_is_stored_as_written(h, kb):
    phrase = "借呗<b>关</b>了 & *怎么* _办_ `code`"
    await h.send(ADMIN, f"/example closed {phrase}")
    assert kb.entry("closed").examples[-1] == phrase
    reply = texts(await h.send(ADMIN, "/entry closed"))
    assert "借呗&lt;b&gt;关&lt;/b&gt;了 &amp; *怎么* _办_ `code`" in reply


# -- /review: suggestions from users ------------------------------------------------------


def suggest(
    store: Store, question: str, answered: str | None, went_to: str | None, kind="not_mine"
):
    return store.add_suggestion(kind, question, answered, went_to, "5005")


async def test_review_groups_by_where_users_went_and_one_tap_adds_an_example(h, kb, store):
    a = suggest(store, "我的号被人盗了借呗没了", "closed", "risk")
    b = suggest(store, "我的号被人盗了借呗没了吗", "closed", "risk", kind="rephrase")
    c = suggest(store, "晚还了一次花呗", "closed", "overdue", kind="unhelpful")
    suggest(store, "随便问问", "closed", None, kind="unhelpful")
    store.log_question("一个没人管的问题", None, 0)
    calls = await h.send(ADMIN, "/review")
    reply = texts(calls)
    assert "待审核的建议</b>：4 条，3 组" in reply
    assert "未匹配 1 条" in reply and "待审核建议 4 条" in reply
    assert "→ <code>risk</code> 账户风险 ×2「我的号被人盗了借呗没了吗」" in reply
    assert "原回答：<code>closed</code>（这不是我的情况 1，换个说法重问 1）" in reply
    assert "→ （用户没有去别的条目）×1「随便问问」" in reply
    assert reply.index("risk") < reply.index("overdue") < reply.index("随便问问")
    assert f"a:ra:{c}" in [d for c_ in calls for _, d in buttons(c_)]
    data = callback(calls, f"a:ra:{b}")
    assert kb.match("我的号被人盗了借呗没了吗").intent != "risk"
    calls = await h.press(ADMIN, message_with(h, data), data)
    assert "加为 <code>risk</code> 的示例（处理了 2 条建议）" in texts(calls)
    assert "我的号被人盗了借呗没了吗" in kb.entry("risk").examples
    assert kb.match("我的号被人盗了借呗没了吗").intent == "risk"
    change = store.history(limit=1)[0]
    assert (change.action, change.slug, change.actor) == ("example", "risk", f"tg:{ADMIN}")
    assert {store.suggestion(i)["status"] for i in (a, b)} == {"accepted"}
    assert store.suggestion(c)["status"] == "open"
    # the listing was re-drawn without the group; a second tap changes nothing
    edited = [c_ for c_ in calls if c_.method == "editMessageText"]
    assert (
        edited and "risk" not in edited[0].params["text"] and "overdue" in edited[0].params["text"]
    )
    examples = kb.entry("risk").examples
    calls = await h.press(ADMIN, message_with_id(h, data), data)
    assert "已经处理过了" in texts(calls) and kb.entry("risk").examples == examples
    # an ordinary edit: /undo takes it back
    assert "已撤销" in texts(await h.send(ADMIN, "/undo"))
    assert "我的号被人盗了借呗没了吗" not in kb.entry("risk").examples


async def test_review_adds_to_another_entry_or_dismisses(h, kb, store):
    sid = suggest(store, "在吗？有人在吗", "closed", None)
    other = suggest(store, "借呗关了是不是风控", "closed", "overdue")
    calls = await h.send(ADMIN, "/review")
    pick = callback(calls, f"a:rp:{sid}")
    calls = await h.press(ADMIN, message_with(h, pick), pick)
    assert "把「在吗？有人在吗」加为哪个条目的示例？" in texts(calls)
    target = callback(calls, f"a:rt:{sid}:hello")
    assert len(target.encode()) <= 64
    calls = await h.press(ADMIN, message_with(h, target), target)
    assert "在吗？有人在吗" in kb.entry("hello").examples
    assert store.suggestion(sid)["target"] == "hello"
    history = store.history(limit=100)
    calls = await h.send(ADMIN, "/review")
    dismiss = callback(calls, f"a:rd:{other}")
    calls = await h.press(ADMIN, message_with(h, dismiss), dismiss)
    assert "已忽略 1 条建议" in texts(calls)
    assert store.suggestion(other)["status"] == "dismissed"
    assert store.history(limit=100) == history  # dismissing is no edit of the knowledge
    assert "没有待审核的建议" in texts(await h.send(ADMIN, "/review"))


async def test_review_accepting_warns_when_it_pulls_other_examples(h, kb, store):
    sid = suggest(store, "账号异常借呗用不了", "risk", "closed")
    calls = await h.send(ADMIN, "/review")
    data = callback(calls, f"a:ra:{sid}")
    calls = await h.press(ADMIN, message_with(h, data), data)
    assert "⚠️" in texts(calls) and "<code>risk</code>「账号异常借呗用不了」" in texts(calls)
    assert callback(calls, "a:undo:") == f"a:undo:{store.history(limit=1)[0].id}"


async def test_unmatched_can_dismiss_a_group_and_redraws_its_message(h, kb, store):
    off = [store.log_question(t, None, 0) for t in ("今天股市怎么样", "今天股市怎么样啊")]
    keep = store.log_question("借呗额度怎么提高", None, 0)
    calls = await h.send(ADMIN, "/unmatched")
    assert "未匹配 3 条" in texts(calls)
    data = callback(calls, f"a:ud:{off[1]}")
    calls = await h.press(ADMIN, message_with(h, data), data)
    assert "已忽略 2 条问题" in texts(calls)
    assert [q["id"] for q in store.unmatched()] == [keep]
    [edited] = [c for c in calls if c.method == "editMessageText"]
    assert "股市" not in edited.params["text"] and "借呗额度怎么提高" in edited.params["text"]
    assert not [d for _, d in buttons(edited) if d.startswith(f"a:ud:{off[1]}")]
    assign = callback(calls, f"a:as:{keep}:")
    calls = await h.press(ADMIN, message_with(h, assign), assign)
    [edited] = [c for c in calls if c.method == "editMessageText"]
    assert edited.params["text"].startswith(admin.UNMATCHED_NONE)


async def test_set_to_the_same_value_writes_no_history(h, kb, store):
    history, revision = store.history(limit=100), store.revision()
    reply = texts(await h.send(ADMIN, "/set closed title 借呗被关"))
    assert "本来就是这个内容" in reply and "的标题（title）本来就是" in reply
    assert store.history(limit=100) == history and store.revision() == revision
    store.set_field("closed", "title", "借呗被关", actor="test")  # the store agrees
    assert store.history(limit=100) == history


async def test_field_names_are_shown_in_chinese_with_the_name_beside(h):
    entry = texts(await h.send(ADMIN, "/entry closed"))
    assert "<b>说明（explanation）</b>" in entry and "<b>解决办法（solution）</b>" in entry
    done = texts(await h.send(ADMIN, "/set closed solution 新办法"))
    assert done.startswith("已修改 <code>closed</code>.solution（解决办法）")
    assert "解决办法（solution）：看原因 → 新办法" in texts(await h.send(ADMIN, "/history closed"))
    assert "title（标题）" in texts(await h.send(ADMIN, "/set closed colour 红"))


async def test_a_missing_entry_on_a_read_only_command_promises_nothing(h):
    assert "未做任何修改" not in texts(await h.send(ADMIN, "/entry nope"))
    assert "未做任何修改" in texts(await h.send(ADMIN, "/delete nope"))
