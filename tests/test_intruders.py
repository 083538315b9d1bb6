"""Intruders: everything a user who is not an admin can try, through the real Application
(``build_application``; only the network is replaced by tests/tgfake.py).

- Every admin command and every admin button is refused for non-admins (and for admins
  outside a private chat), including forged ``a:...`` callback data and an admin's own
  buttons pressed by someone else; nothing changes (export, revision, every table).
- Callback data never reaches another user's conversation state: user B pressing a copy of
  user A's diagnosis, feedback or "not mine" button affects only B.
- HTML in entries or in user text never breaks or injects markup: every reply parses as
  Telegram parses HTML (tests/botapi.py) and shows the text literally.
- The token never appears in logs, error replies or exported documents.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from click.testing import CliRunner

from bot import admin, texts
from bot.app import build_application
from bot.cli import cli
from bot.config import Settings, setup_logging
from knowledge.base import KnowledgeBase
from tests.botapi import format_text
from tests.tgfake import BOT_USERNAME, TOKEN, Call, Harness, RecordingRequest, buttons

ADMIN = 42
ADMIN2 = 43
USER_A = 1001
USER_B = 1002
GROUP = -100777
BOT_TAGS = {"bold", "italic", "code", "pre"}  # the only markup the bot itself writes


@pytest.fixture
async def h(kb):
    request = RecordingRequest()
    settings = Settings(token=TOKEN, admin_ids=frozenset({ADMIN, ADMIN2}))
    app = build_application(settings, kb, request=request, get_updates_request=RecordingRequest())
    errors: list[BaseException] = []

    async def record(update: object, context: Any) -> None:
        errors.append(context.error)

    app.add_error_handler(record)
    await app.initialize()
    harness = Harness(app, request)
    yield harness
    await app.shutdown()
    if not app.bot_data.get("errors_expected"):
        assert errors == [], errors
    for call in request.calls:  # every reply, whoever asked: well-formed, no foreign markup
        if call.method in ("sendMessage", "editMessageText"):
            check_html(call.params["text"], call.params.get("parse_mode"))
            assert TOKEN not in call.params["text"]


def check_html(text: str, parse_mode: str | None) -> tuple[str, list[dict]]:
    plain, entities = format_text(text, parse_mode, None)  # raises on markup Telegram refuses
    assert 0 < len(plain) <= 4096
    assert {e["type"] for e in entities} <= BOT_TAGS, entities
    return plain, entities


def snapshot(kb: KnowledgeBase) -> tuple[str, int, str]:
    kb.store.flush_questions()
    return kb.store.export(), kb.store.revision(), "\n".join(kb.store.db.conn.iterdump())


def sent(calls: list[Call]) -> list[str]:
    return [c.params["text"] for c in calls if c.method in ("sendMessage", "editMessageText")]


def alerts(calls: list[Call]) -> list[dict]:
    return [c.params for c in calls if c.method == "answerCallbackQuery"]


def data_of(calls: list[Call], prefix: str) -> str:
    for call in reversed(calls):
        for _, data in buttons(call):
            if data.startswith(prefix):
                return data
    raise AssertionError(f"no {prefix!r} button in {[buttons(c) for c in calls]}")


def message_with(h: Harness, chat: int, data: str) -> dict[str, Any]:
    for (chat_id, _), msg in reversed(h.request.messages.items()):
        if chat_id == chat and data in [d for _, d in buttons(msg)]:
            return msg
    raise AssertionError(data)


def copy_in(msg: dict[str, Any], chat: int, chat_type: str = "private") -> dict[str, Any]:
    """The same message (text and buttons) as if it were in another chat: a forged press."""
    return {**msg, "chat": {"id": chat, "type": chat_type}}


# -- admin commands ---------------------------------------------------------------------------

COMMANDS = {
    "entries": "/entries",
    "entry": "/entry overview",
    "add": "/add intruder 入侵者的条目",
    "set": "/set overview title 被改了",
    "example": "/example overview 入侵者的例句",
    "unexample": "/unexample overview 借呗被关了",
    "delete": "/delete overview",
    "test": "/test 借呗被关了",
    "export": "/export",
    "import": "/import",
    "history": "/history",
    "undo": "/undo",
    "unmatched": "/unmatched",
    "review": "/review",
    "stats": "/stats",
}


def test_the_list_covers_every_admin_command():
    assert set(COMMANDS) == {name for name, _ in admin.ADMIN_COMMANDS}


WHO_WHERE = [
    (USER_A, "private"),
    (USER_A, "group"),
    (ADMIN, "group"),  # an admin, but not in a private chat
    (USER_A, "addressed"),  # /cmd@botname in a group
]


async def test_admin_commands_are_refused_and_change_nothing(h, kb):
    """Every admin command, from a non-admin in private and in a group, and from an admin in
    a group: one refusal, nothing else (no download, no document), nothing changed."""
    await h.send(ADMIN, "/example overview 管理员先改一次")  # so /undo would have work to do
    kb.store.queue_question("一个没匹配上的问题", None, 0)
    before = snapshot(kb)
    for name, command in COMMANDS.items():
        for user, where in WHO_WHERE:
            kw: dict[str, Any] = {}
            if where != "private":
                kw = {"chat_id": GROUP, "chat_type": "group"}
            text = command
            if where == "addressed":
                first, *rest = command.split(" ", 1)
                text = " ".join([f"{first}@{BOT_USERNAME}", *rest])
            calls = await h.send(user, text, **kw)
            assert sent(calls) == [admin.REFUSED], (name, user, where)
            assert [c.method for c in calls] == ["sendMessage"], (name, user, where)
            assert snapshot(kb) == before, (name, user, where)


async def test_an_import_document_from_a_non_admin_is_never_downloaded(h, kb):
    before = snapshot(kb)
    doc = json.dumps({"version": 1, "entries": [{"slug": "pwned", "title": "x"}]}).encode()
    calls = await h.send_document(USER_A, doc, caption="/import")
    h.request.files["in_group"] = doc
    document = {"file_id": "in_group", "file_unique_id": "in_group", "file_name": "kb.json"}
    in_group = h.message(ADMIN, None, chat_id=GROUP, chat_type="group", document=document,
                         caption="/import", caption_entities=[
                             {"type": "bot_command", "offset": 0, "length": 7}])  # fmt: skip
    start = len(h.request.calls)
    await h.feed({"message": in_group})
    calls += h.request.calls[start:]
    # /import sent in reply to a document: the same refusal
    calls += await h.send(USER_A, "/import", reply_to_message=in_group)
    assert sent(calls) == [admin.REFUSED] * 3
    assert not [c for c in calls if c.method == "getFile"]
    assert snapshot(kb) == before


async def test_edited_messages_never_run_admin_commands(h, kb):
    before = snapshot(kb)
    msg = h.message(ADMIN, "/add edited_in 事后改成的命令")
    await h.feed({"edited_message": {**msg, "edit_date": msg["date"] + 1}})
    assert snapshot(kb) == before
    assert kb.entry("edited_in") is None


# -- admin buttons ----------------------------------------------------------------------------


async def admin_buttons(h: Harness, kb: KnowledgeBase) -> dict[str, tuple[str, dict]]:
    """Real admin buttons, as the admin received them: data -> the message carrying it."""
    out: dict[str, tuple[str, dict]] = {}
    calls = await h.send(ADMIN, "/delete id_expired")
    for prefix in ("a:del:", "a:no:"):
        data = data_of(calls, prefix)
        out[prefix] = (data, message_with(h, ADMIN, data))
    document = json.loads(kb.store.export())
    document["entries"] = document["entries"][:-1]
    calls = await h.send_document(ADMIN, json.dumps(document).encode(), caption="/import")
    data = data_of(calls, "a:imp:")
    out["a:imp:"] = (data, message_with(h, ADMIN, data))
    # an unmatched question, grouped with a one-tap assignment button
    kb.store.queue_question("我的芝麻分被清零了怎么回事", None, 0)
    calls = await h.send(ADMIN, "/unmatched")
    data = data_of(calls, "a:as:")
    out["a:as:"] = (data, message_with(h, ADMIN, data))
    await h.send(ADMIN, "/set overview solution 先等等")
    change = kb.store.history(limit=1)[0].id
    out["a:undo:"] = (f"a:undo:{change}", h.last_message(ADMIN))
    return out


FORGED = [
    "a:",
    "a:del",
    "a:del:",
    "a:del:nope:extra",
    "a:imp:" + "A" * 58,
    "a:no:../../etc",
    "a:undo:1",
    "a:undo:-1",
    "a:undo:99999999999999999999",
    "a:as:1:overview",
    "a:as:1:Bad Slug",
    "a:\x00:\u202e",
    "a:whatever:1:2:3",
]


async def test_admin_buttons_pressed_by_anyone_else_are_refused(h, kb):
    real = await admin_buttons(h, kb)
    before = snapshot(kb)
    presses: list[tuple[int, dict, str]] = []
    for data, msg in real.values():
        presses += [
            (USER_A, copy_in(msg, USER_A), data),  # a forged copy in the intruder's own chat
            (USER_A, msg, data),  # the admin's very message
            (USER_A, copy_in(msg, GROUP, "group"), data),
            (ADMIN, copy_in(msg, GROUP, "group"), data),  # the admin, but not in private
        ]
    some_msg = h.last_message(ADMIN)
    presses += [(USER_A, copy_in(some_msg, USER_A), data) for data in FORGED]
    for user, msg, data in presses:
        calls = await h.press(user, msg, data)
        assert [c.method for c in calls] == ["answerCallbackQuery"], (user, data)
        [answer] = alerts(calls)
        assert answer["text"] == admin.REFUSED and answer["show_alert"] in (True, "true")
        assert snapshot(kb) == before, (user, data)
    # the admin's own buttons were not used up by any of it
    data, msg = real["a:del:"]
    await h.press(ADMIN, msg, data)
    assert kb.store.get("id_expired") is None


async def test_another_admins_confirmation_is_stale_for_a_second_admin(h, kb):
    real = await admin_buttons(h, kb)
    before = snapshot(kb)
    for prefix in ("a:del:", "a:imp:", "a:no:"):
        data, msg = real[prefix]
        calls = await h.press(ADMIN2, copy_in(msg, ADMIN2), data)
        assert admin.STALE in "\n".join(sent(calls))
        assert snapshot(kb) == before
    data, msg = real["a:del:"]
    await h.press(ADMIN, msg, data)  # still the first admin's to confirm
    assert kb.store.get("id_expired") is None


async def test_forged_admin_data_from_an_admin_changes_nothing(h, kb):
    before = snapshot(kb)
    msg = copy_in(h.message(ADMIN, "x"), ADMIN)
    for data in FORGED:
        if data == "a:undo:1":
            continue  # an admin may undo by id: not a forgery
        calls = await h.press(ADMIN, msg, data)
        assert sent(calls), data
        assert snapshot(kb) == before, data


# -- one user's state is out of another's reach -------------------------------------------------


def yes_of(msg: dict) -> str:
    return next(d for label, d in buttons(msg) if label == texts.BTN_YES)


def diagnosis_step(h: Harness, key: Any) -> int | None:
    state = h.app.bot_data["conversation"]._chats.get(key)
    if state is None or state.session is None:
        return None
    return state.session.diagnosis.step


async def test_a_copy_of_another_users_diagnosis_button_is_stale(h):
    await h.send(USER_A, "/diagnose")
    a_msg = h.last_message(USER_A)
    a_yes = yes_of(a_msg)
    # B presses A's button (a copy in B's own chat): B has no such diagnosis
    calls = await h.press(USER_B, copy_in(a_msg, USER_B), a_yes)
    assert sent(calls) == [texts.DIAG_ENDED]
    assert diagnosis_step(h, USER_A) == 0 and diagnosis_step(h, USER_B) is None
    # B's own diagnosis is not disturbed by A's token either
    await h.send(USER_B, "/diagnose")
    b_msg = h.last_message(USER_B)
    calls = await h.press(USER_B, copy_in(a_msg, USER_B), a_yes)
    assert sent(calls) == [texts.DIAG_ENDED]
    assert diagnosis_step(h, USER_B) == 0
    # both carry on with their own buttons
    await h.press(USER_A, a_msg, a_yes)
    assert diagnosis_step(h, USER_A) == 1
    await h.press(USER_B, b_msg, yes_of(b_msg))
    assert diagnosis_step(h, USER_B) == 1 and diagnosis_step(h, USER_A) == 1
    # forged steps and answers for A's token from B change nothing of A's
    token = a_yes.split(":")[2]
    for data in (f"u:d:{token}:1:y", f"u:d:{token}:x", f"u:d:{token}:0:n", "u:d:0:0:y"):
        await h.press(USER_B, copy_in(a_msg, USER_B), data)
    assert diagnosis_step(h, USER_A) == 1 and diagnosis_step(h, USER_B) == 1


async def test_in_a_group_one_users_button_is_not_anothers(h):
    await h.send(USER_A, f"/diagnose@{BOT_USERNAME}", chat_id=GROUP, chat_type="group")
    msg = h.last_message(GROUP)
    data = yes_of(msg)
    calls = await h.press(USER_B, msg, data)
    assert sent(calls) == [texts.DIAG_ENDED]
    assert diagnosis_step(h, (GROUP, USER_A)) == 0
    assert diagnosis_step(h, (GROUP, USER_B)) is None
    cancel = next(d for label, d in buttons(msg) if label == texts.BTN_CANCEL)
    await h.press(USER_B, msg, cancel)  # B cannot cancel A's diagnosis
    assert diagnosis_step(h, (GROUP, USER_A)) == 0


async def test_feedback_and_not_mine_buttons_of_another_user_affect_only_the_presser(h, kb):
    calls = await h.send(USER_A, "花呗逾期了，借呗也用不了了")
    answer = next(c for c in calls if any(d.startswith("u:f:") for _, d in buttons(c)))
    a_msg = message_with(h, USER_A, data_of([answer], "u:f:"))
    helpful = data_of([answer], "u:f:")
    not_mine = data_of([answer], "u:o:")
    # B's "not mine" on A's answer: B gets the general list, not A's other candidates
    calls = await h.press(USER_B, copy_in(a_msg, USER_B), not_mine)
    assert sent(calls)[0] == texts.NOT_MINE_NONE
    # B's feedback on A's answer is not counted (B never got that answer) and does not use
    # up A's
    calls = await h.press(USER_B, copy_in(a_msg, USER_B), helpful)
    assert sent(calls) == [texts.STALE_BUTTON]
    calls = await h.press(USER_A, a_msg, helpful)
    assert sent(calls) == [texts.FEEDBACK_THANKS]
    calls = await h.press(USER_A, a_msg, helpful)
    assert sent(calls) == [texts.FEEDBACK_DONE]
    chats = [r["chat"] for r in kb.store.db.query("SELECT chat FROM feedback ORDER BY id")]
    assert chats == [str(USER_A)]


# -- HTML --------------------------------------------------------------------------------------

EVIL = [
    '<b>粗</b><a href="http://evil.example/">点我</a>',
    "</b></i><i>未闭合",
    "<script>alert(1)</script> & &amp; &lt; &#0; &#x110000; &bogus;",
    "<tg-spoiler>剧透</tg-spoiler><tg-emoji emoji-id='1'>😀</tg-emoji>",
    "<pre><code class='language-x'>代码</pre>",
    "< b >不是标签< /b > <<>> &",
]


def evil_document(kb: KnowledgeBase) -> dict[str, Any]:
    """The shipped knowledge base with markup in every title, explanation and solution."""
    document = json.loads(kb.store.export())
    for i, entry in enumerate(document["entries"]):
        evil = EVIL[i % len(EVIL)]
        entry["title"] = (evil + entry["title"])[:60]
        entry["explanation"] = f"{evil}\n{entry['explanation']}\n{evil}"
        entry["solution"] = f"{entry['solution']}\n{evil}"
    return document


async def test_markup_in_entries_is_shown_as_text_in_every_reply(h, kb):
    document = evil_document(kb)
    kb.write(lambda s: s.import_document(json.dumps(document), actor="test"))
    by_slug = {e["slug"]: e for e in document["entries"]}
    calls = []
    calls += await h.send(USER_A, "/start")
    calls += await h.send(USER_A, "/causes")
    for slug in ("huabei_overdue", "overview", "id_expired"):
        calls += await h.press(USER_A, h.last_message(USER_A), f"u:e:{slug}")
        shown = sent(calls)[-1]
        plain, _ = check_html(shown, "HTML")
        assert plain.startswith(kb.entry(slug).title)  # the markup, as text
        assert by_slug[slug]["explanation"].split("\n")[0] in plain
    calls += await h.send(USER_A, "花呗逾期了，借呗也用不了了")
    calls += await h.send(USER_A, "那怎么办")  # the follow-up quotes the title
    await h.send(USER_A, "/diagnose")
    for _ in range(10):  # answer "yes" until the result, which lists titles
        msg = h.last_message(USER_A)
        yes = [d for label, d in buttons(msg) if label == texts.BTN_YES]
        if not yes:
            break
        calls += await h.press(USER_A, msg, yes[0])
    assert any(texts.DIAG_RESULT in check_html(t, "HTML")[0] for t in sent(calls))
    for text in sent(calls):
        check_html(text, "HTML")


async def test_a_huge_entry_of_markup_characters_is_split_into_valid_messages(h, kb):
    document = json.loads(kb.store.export())
    for entry in document["entries"]:
        if entry["slug"] == "huabei_overdue":
            entry["title"] = "标题<b>\n\n第二段</b>"  # a blank line inside the bold title
            entry["explanation"] = "<&>" * 1000
            entry["solution"] = "&amp;<b>" * 375
    kb.write(lambda s: s.import_document(json.dumps(document), actor="test"))
    calls = await h.press(USER_A, h.message(USER_A, "x"), "u:e:huabei_overdue")
    parts = sent(calls)
    assert len(parts) >= 3
    plain = "".join(check_html(t, "HTML")[0] for t in parts)
    assert plain.count("<&>") == 1000 and plain.count("&amp;<b>") == 375


async def test_markup_in_user_text_never_reaches_a_reply_as_markup(h, kb):
    evil_question = '<a href="tg://user?id=1">点我</a></b><pre>借呗 &amp; 为什么被关'
    calls = await h.send(USER_A, evil_question)
    calls += await h.send(USER_A, "<b>" * 500 + "&" * 500)
    for text in sent(calls):
        check_html(text, "HTML")
    # the question reaches the admins' inbox and their /test as text, not markup
    kb.store.queue_question(evil_question, None, 0)
    for command in ("/unmatched", f"/test {evil_question}"):
        calls = await h.send(ADMIN, command)
        plain, _ = check_html(sent(calls)[0], "HTML")
        assert '<a href="tg://user?id=1">点我</a></b><pre>' in plain


async def test_admin_edits_with_markup_are_echoed_as_text(h, kb):
    for command in (
        f"/add evil_one {EVIL[0][:50]}",
        f"/set evil_one explanation {EVIL[2]}",
        f"/example evil_one {EVIL[1]}",
        "/entry evil_one",
        "/history evil_one",
        "/entries",
        "/undo",
    ):
        for text in sent(await h.send(ADMIN, command)):
            check_html(text, "HTML")


# -- the token ---------------------------------------------------------------------------------


@pytest.fixture
def real_logging():
    """The bot's own log setup (redaction included, at DEBUG), restored afterwards. Call it
    from the test, so that its handler writes to the captured stderr of the test itself."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    saved_levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    yield lambda: setup_logging(Settings(token=TOKEN, log_level="DEBUG"))
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, lvl in saved_levels.items():
        logging.getLogger(name).setLevel(lvl)


async def test_the_token_never_appears_in_logs_or_error_replies(h, kb, capfd, real_logging):
    real_logging()
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"

    def broken(chat_id: Any, text: str) -> Any:
        raise RuntimeError(f"request to {url} failed (token {TOKEN})")

    conversation = h.app.bot_data["conversation"]
    real = conversation.on_text
    conversation.on_text = broken
    calls = await h.send(USER_A, "借呗被关了")
    assert sent(calls) == [texts.ERROR]
    conversation.on_text = real
    h.request.fail["sendMessage"] = [(502, {"ok": False, "description": f"Bad Gateway {url}"})]
    await h.send(USER_A, "借呗被关了")
    await h.send(USER_A, "/refused_command")
    await h.send(USER_B, "/export")
    logging.getLogger("telegram").debug("debug line with the url %s", url)
    out, err = capfd.readouterr()
    assert "RuntimeError" in err and "<token>" in err  # it was logged, and redacted
    assert "Logging error" not in err
    h.app.bot_data["errors_expected"] = True
    assert TOKEN not in out + err
    assert TOKEN.split(":", 1)[1] not in out + err


async def test_the_token_is_in_no_exported_document(h, kb, tmp_path, monkeypatch):
    calls = await h.send(ADMIN, "/export")
    [upload] = [c for c in calls if c.method == "sendDocument"]
    content = b"".join(upload.files.values())
    assert json.loads(content)["entries"]
    assert TOKEN.encode() not in content and TOKEN not in (upload.params.get("caption") or "")
    assert TOKEN.split(":", 1)[1].encode() not in content
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("KNOWLEDGE_DB", str(kb.store.path))
    monkeypatch.chdir(tmp_path)
    for args in (["kb", "export"], ["kb", "export", "--format", "yaml"], ["kb", "list"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0 and TOKEN not in result.output
