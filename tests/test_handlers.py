"""bot/app.py: a real ``Application`` from ``build_application``; only the network is fake.

Updates are real ``Update`` objects built from Telegram-shaped JSON (tests/tgfake.py); every
Bot API call the bot makes is recorded and answered in memory.
"""

from __future__ import annotations

import logging
import re
import threading

import pytest
from telegram.constants import ParseMode

from bot import texts
from bot.app import (
    build_application,
    build_keyboard,
    check_webhook,
    post_init,
    post_shutdown,
    refresh_once,
    send_html,
)
from bot.config import Settings
from bot.conversation import Conversation
from bot.health import BotApiMonitor
from bot.render import MAX_MESSAGE_CHARS, Button, Reply
from knowledge.store import Store
from tests.tgfake import BOT_ID, BOT_USERNAME, TOKEN, Harness, RecordingRequest, buttons

ADMIN = 42
USER = 1001
GROUP = -100500
CAUSE_QUESTION = "花呗逾期了，借呗也用不了了"


def make_settings(**kw) -> Settings:
    return Settings(token=TOKEN, admin_ids=frozenset({ADMIN}), **kw)


@pytest.fixture
async def h(kb):
    request = RecordingRequest()
    app = build_application(
        make_settings(), kb, request=request, get_updates_request=RecordingRequest()
    )
    await app.initialize()
    yield Harness(app, request)
    await app.shutdown()


def sent_texts(calls) -> list[str]:
    return [c.params["text"] for c in calls if c.method in ("sendMessage", "editMessageText")]


def feedback_rows(kb) -> list[tuple]:
    return [
        (r["slug"], r["helpful"], r["chat"])
        for r in kb.store.db.query("SELECT slug, helpful, chat FROM feedback")
    ]


def press_label(h: Harness, user: int, label: str, chat: int | None = None):
    message = h.last_message(chat if chat is not None else user)
    [data] = [d for text, d in buttons(message) if text == label]
    return h.press(user, message, data)


# -- wiring ---------------------------------------------------------------------------------


async def test_bot_data_holds_the_knowledge_base_settings_and_conversation(h, kb):
    data = h.app.bot_data
    assert data["kb"] is kb
    assert data["settings"].token == TOKEN
    assert isinstance(data["conversation"], Conversation)


async def test_base_urls_come_from_the_settings(kb):
    settings = make_settings(api_base_url="http://127.0.0.1:8081/bot")
    app = build_application(
        settings, kb, request=RecordingRequest(), get_updates_request=RecordingRequest()
    )
    assert app.bot.base_url == f"http://127.0.0.1:8081/bot{TOKEN}"
    assert app.bot.base_file_url == f"http://127.0.0.1:8081/file/bot{TOKEN}"


async def test_post_init_sets_command_menus_and_starts_refreshing(h):
    await post_init(h.app)
    try:
        menus = h.request.sent("setMyCommands")
        assert [c.params.get("scope") for c in menus] == [None, {"type": "chat", "chat_id": ADMIN}]
        everyone = [c["command"] for c in menus[0].params["commands"]]
        assert everyone == [name for name, _ in texts.USER_COMMANDS]
        admins = [c["command"] for c in menus[1].params["commands"]]
        assert set(everyone) < set(admins) and "entries" in admins
        task = h.app.bot_data["refresh_task"]
        assert not task.done()
    finally:
        await post_shutdown(h.app)
    assert task.cancelled()
    assert "refresh_task" not in h.app.bot_data


async def test_a_failed_admin_menu_names_the_admin_only_with_log_user_ids(h, caplog):
    ok = (200, {"ok": True, "result": True})
    refused = (400, {"ok": False, "description": "Bad Request: chat not found"})
    h.request.fail["setMyCommands"] = [ok, refused]
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        await post_init(h.app)
        await post_shutdown(h.app)
    [line] = [r.getMessage() for r in caplog.records if "admin command menu" in r.getMessage()]
    assert "an admin" in line and str(ADMIN) not in line
    caplog.clear()
    h.app.bot_data["settings"] = make_settings(log_user_ids=True)
    h.request.fail["setMyCommands"] = [ok, refused]
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        await post_init(h.app)
        await post_shutdown(h.app)
    [line] = [r.getMessage() for r in caplog.records if "admin command menu" in r.getMessage()]
    assert f"admin {ADMIN}" in line


async def test_edits_from_another_process_are_picked_up(h, kb):
    assert not await refresh_once(kb)
    other = Store(kb.store.path)  # as the `jiebei-bot kb` CLI would
    other.set_field("misuse", "title", "资金用途违规", actor="cli")
    other.close()
    assert await refresh_once(kb)
    calls = await h.send(USER, "/causes")
    assert ("资金用途违规", "u:e:misuse") in buttons(calls[-1])


# -- commands -------------------------------------------------------------------------------


async def test_start_greets_with_cause_and_diagnosis_buttons(h, kb):
    [call] = await h.send(USER, "/start")
    assert call.method == "sendMessage" and call.params["parse_mode"] == "HTML"
    assert call.params["text"] == texts.START
    datas = [d for _, d in buttons(call)]
    assert datas == [f"u:e:{e.slug}" for e in kb.causes()] + ["u:ds"]


async def test_help_causes_and_unknown_commands(h):
    assert sent_texts(await h.send(USER, "/help")) == [texts.HELP]
    assert sent_texts(await h.send(USER, "/causes")) == [texts.CAUSES]
    assert sent_texts(await h.send(USER, "/frobnicate")) == [texts.UNKNOWN_COMMAND]


# -- free text ------------------------------------------------------------------------------


async def test_free_text_gets_the_answer_in_html(h, kb):
    [call] = await h.send(USER, CAUSE_QUESTION)
    entry = kb.entry("huabei_overdue")
    assert call.params["parse_mode"] == "HTML"
    assert call.params["text"].startswith(f"<b>{entry.title}</b>")
    labels = [label for label, _ in buttons(call)]
    assert texts.BTN_NOT_MINE in labels and texts.BTN_HELPFUL in labels
    assert all(d.startswith("u:") and len(d.encode()) <= 64 for _, d in buttons(call))


@pytest.mark.parametrize(
    "rows", [[], [[Button("甲 <b>", "u:e:a")], [Button("乙", "u:c"), Button("丙", "u:ds")]]]
)
async def test_send_html_puts_on_the_wire_what_bot_send_message_would(h, rows):
    reply = Reply("<b>标题</b>\n\n说明 &amp; 办法 “引号” 😀", rows)
    await send_html(h.app.bot, USER, reply)
    await h.app.bot.send_message(
        USER, reply.text_html, parse_mode=ParseMode.HTML, reply_markup=build_keyboard(reply)
    )
    ours, ptbs = h.request.sent()
    assert ours.params == ptbs.params
    assert ("reply_markup" in ours.params) == bool(rows)


async def test_entry_text_is_escaped(h, kb):
    kb.write(
        lambda s: s.set_field(
            "id_expired", "explanation", "<script>alert(1)</script> & <b>", actor="t"
        )
    )
    [call] = await h.send(USER, "身份证过期了，借呗就用不了了")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in call.params["text"]
    assert "<script>" not in call.params["text"]


async def test_a_5000_character_answer_is_split(h, kb):
    def lengthen(store):
        store.set_field("misuse", "explanation", "说明。" * 950, actor="t")
        store.set_field("misuse", "solution", "办法。" * 950, actor="t")

    kb.write(lengthen)
    calls = await h.press(
        USER, {"message_id": 1, "date": 1, "chat": {"id": USER, "type": "private"}}, "u:e:misuse"
    )
    sends = h.request.sent()
    assert calls[0].method == "answerCallbackQuery"
    assert len(sends) == 2
    assert sum(len(c.params["text"]) for c in sends) > 5000
    assert all(len(c.params["text"]) <= MAX_MESSAGE_CHARS for c in sends)
    assert sends[0].params["text"].endswith("说明。")  # cut between paragraphs
    assert "reply_markup" not in sends[0].params and buttons(sends[1])


async def test_question_is_logged_and_unmatched_kept_for_admins(h, kb):
    await h.send(USER, "明天天气如何")
    assert [q["text"] for q in kb.store.unmatched()] == ["明天天气如何"]


def written_questions(kb) -> list[str]:
    """Questions in SQLite, read directly (the store's own reads write the queue first)."""
    return [r[0] for r in kb.store.db.execute("SELECT text FROM questions ORDER BY id")]


QUESTIONS = [CAUSE_QUESTION, "明天天气如何", "身份证过期了", "借呗额度没了"]


async def test_text_is_answered_on_the_loop_and_a_full_batch_written_off_it(h, kb, monkeypatch):
    import knowledge.store as store_module

    monkeypatch.setattr(store_module, "QUESTION_BATCH", 3)
    loop_thread = threading.get_ident()
    answered_in: list[int] = []
    written_in: list[int] = []
    conversation = h.app.bot_data["conversation"]
    on_text, flush = conversation.on_text, kb.store.flush_questions

    def recording_on_text(*args):
        answered_in.append(threading.get_ident())
        return on_text(*args)

    def recording_flush():
        written_in.append(threading.get_ident())
        return flush()

    monkeypatch.setattr(conversation, "on_text", recording_on_text)
    monkeypatch.setattr(kb.store, "flush_questions", recording_flush)
    for text in QUESTIONS[:3]:
        assert sent_texts(await h.send(USER, text))
    await h.app.bot_data["question_flush"]
    assert answered_in == [loop_thread] * 3
    assert written_in and loop_thread not in written_in  # SQLite only from a worker thread
    assert written_questions(kb) == QUESTIONS[:3]


async def test_queued_questions_are_written_at_shutdown(h, kb, monkeypatch):
    import knowledge.store as store_module

    monkeypatch.setattr(store_module, "QUESTION_BATCH", 3)
    for text in QUESTIONS:  # a full batch of three, then one more
        await h.send(USER, text)
    await post_shutdown(h.app)
    assert "question_flush" not in h.app.bot_data
    assert written_questions(kb) == QUESTIONS


# -- buttons --------------------------------------------------------------------------------


async def test_a_button_is_answered_first_then_shows_the_entry(h, kb):
    await h.send(USER, "/causes")
    calls = await press_label(h, USER, kb.entry("inactive").title)
    assert [c.method for c in calls] == ["answerCallbackQuery", "sendMessage"]
    assert kb.entry("inactive").title in calls[1].params["text"]


async def test_diagnosis_edits_the_question_message(h):
    await h.send(USER, "/diagnose")
    question = h.last_message(USER)
    calls = await press_label(h, USER, texts.BTN_NO)
    assert [c.method for c in calls] == ["answerCallbackQuery", "editMessageText"]
    assert int(calls[1].params["message_id"]) == question["message_id"]
    assert "问题 2" in calls[1].params["text"]
    calls = await press_label(h, USER, texts.BTN_CANCEL)
    assert calls[1].params["text"] == texts.DIAG_CANCELLED


async def test_an_old_inaccessible_message_gets_a_new_message_instead_of_an_edit(h):
    await h.send(USER, "/diagnose")
    message = dict(h.last_message(USER))
    data = next(d for label, d in buttons(message) if label == texts.BTN_YES)
    old = {"message_id": message["message_id"], "chat": message["chat"], "date": 0}
    calls = await h.press(USER, old, data)
    assert [c.method for c in calls] == ["answerCallbackQuery", "sendMessage"]


async def test_stale_buttons_get_a_clear_answer(h):
    message = {"message_id": 5, "date": 1, "chat": {"id": USER, "type": "private"}}
    for data in ("u:e:deleted_long_ago", "u:nonsense", "u:d:deadbeef:0:y"):
        calls = await h.press(USER, message, data)
        assert calls[0].method == "answerCallbackQuery"
        assert sent_texts(calls) in ([texts.ENTRY_GONE], [texts.STALE_BUTTON], [texts.DIAG_ENDED])


async def test_admin_buttons_are_left_to_the_admin_module(h):
    message = {"message_id": 5, "date": 1, "chat": {"id": USER, "type": "private"}}
    calls = await h.press(USER, message, "a:undo:1")
    assert texts.STALE_BUTTON not in sent_texts(calls)


async def test_feedback_is_stored_in_sqlite(h, kb):
    await h.send(USER, CAUSE_QUESTION)
    calls = await press_label(h, USER, texts.BTN_HELPFUL)
    assert calls[0].method == "answerCallbackQuery"
    assert sent_texts(calls) == [texts.FEEDBACK_THANKS]
    assert feedback_rows(kb) == [("huabei_overdue", 1, str(USER))]


# -- other messages and groups --------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        {
            "sticker": {
                "file_id": "s",
                "file_unique_id": "s",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        },
        {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 90, "height": 90}]},
        {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}},
        {"document": {"file_id": "d", "file_unique_id": "d", "file_name": "a.pdf"}},
    ],
    ids=["sticker", "photo", "voice", "document"],
)
async def test_non_text_messages_get_a_request_for_text(h, content):
    calls = await h.send_message(USER, **content)
    assert sent_texts(calls) == [texts.NOT_TEXT]


async def test_a_document_from_an_admin_without_the_caption_is_told_how_to_import(h, kb):
    before = kb.store.export()
    calls = await h.send_document(ADMIN, b'{"version": 1}')
    [text] = sent_texts(calls)
    assert "/import" in text and texts.NOT_TEXT not in text
    assert not [c for c in calls if c.method == "getFile"] and kb.store.export() == before
    sticker = {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 9, "height": 9}]}
    assert sent_texts(await h.send_message(ADMIN, **sticker)) == [texts.NOT_TEXT]


async def test_help_shows_an_admin_the_admin_commands_too(h):
    [user_help] = sent_texts(await h.send(USER, "/help"))
    assert "/review" not in user_help
    admin_help = sent_texts(await h.send(ADMIN, "/help"))
    assert admin_help[0] == user_help
    assert "/review" in admin_help[1] and "/unmatched" in admin_help[1]


async def test_a_document_with_an_admin_caption_is_not_asked_for_text(h):
    calls = await h.send_document(USER, b"{}", caption="/import")
    assert texts.NOT_TEXT not in sent_texts(calls)


async def test_group_messages_not_addressed_to_the_bot_get_no_reply(h):
    assert await h.send(USER, CAUSE_QUESTION, chat_id=GROUP, chat_type="group") == []
    sticker = {
        "file_id": "s",
        "file_unique_id": "s",
        "type": "regular",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
    }
    assert await h.send_message(USER, chat=h._chat(GROUP, "group"), sticker=sticker) == []


async def test_group_messages_that_mention_or_reply_to_the_bot_are_answered(h):
    mention = f"@{BOT_USERNAME}"
    calls = await h.send(
        USER,
        f"{mention} {CAUSE_QUESTION}",
        chat_id=GROUP,
        chat_type="group",
        entities=[{"type": "mention", "offset": 0, "length": len(mention)}],
    )
    [call] = calls
    assert int(call.params["chat_id"]) == GROUP
    assert call.params["reply_parameters"]["message_id"]  # quotes the user in a group
    assert "花呗" in call.params["text"]
    bot_message = h.last_message(GROUP)
    calls = await h.send(
        USER, "那怎么办", chat_id=GROUP, chat_type="group", reply_to_message=bot_message
    )
    assert len(calls) == 1 and "花呗" in calls[0].params["text"]
    assert bot_message["from"]["id"] == BOT_ID


async def test_group_commands_are_answered(h):
    calls = await h.send(USER, f"/start@{BOT_USERNAME}", chat_id=GROUP, chat_type="group")
    assert sent_texts(calls) == [texts.START]


async def test_in_a_group_each_user_has_their_own_diagnosis(h):
    await h.send(USER, "/diagnose", chat_id=GROUP, chat_type="group")
    theirs = h.last_message(GROUP)
    data = next(d for label, d in buttons(theirs) if label == texts.BTN_YES)
    calls = await h.press(USER + 1, theirs, data)
    assert sent_texts(calls) == [texts.DIAG_ENDED]
    calls = await h.press(USER, theirs, data)
    assert [c.method for c in calls] == ["answerCallbackQuery", "editMessageText"]


# -- errors and logging ---------------------------------------------------------------------


async def test_a_failing_handler_is_logged_and_the_user_told(h, caplog, monkeypatch):
    def broken(chat_id, text):
        raise RuntimeError("boom")

    monkeypatch.setattr(h.app.bot_data["conversation"], "on_text", broken)
    with caplog.at_level(logging.INFO, logger="bot.app"):
        calls = await h.send(USER, CAUSE_QUESTION)
    assert sent_texts(calls) == [texts.ERROR]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info[0] is RuntimeError


async def test_network_trouble_is_a_warning(h, caplog):
    h.request.fail["sendMessage"] = [(502, {"ok": False, "description": "Bad Gateway"})]
    with caplog.at_level(logging.INFO, logger="bot.app"):
        await h.send(USER, CAUSE_QUESTION)
    levels = [r.levelno for r in caplog.records if r.name == "bot.app"]
    assert logging.WARNING in levels and logging.ERROR not in levels


async def test_a_flood_wait_is_honoured_and_the_reply_sent_again(h, caplog):
    flood = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    h.request.fail["sendMessage"] = [(429, flood)]
    with caplog.at_level(logging.INFO):
        calls = await h.send(USER, CAUSE_QUESTION)
    sends = [c for c in calls if c.method == "sendMessage"]
    assert len(sends) == 2 and sends[0].params == sends[1].params  # the same reply, again
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_one_info_line_per_update_without_user_ids_by_default(h, caplog):
    with caplog.at_level(logging.INFO, logger="bot.app"):
        await h.send(USER, CAUSE_QUESTION)
    [record] = [r for r in caplog.records if r.name == "bot.app"]
    assert record.levelno == logging.INFO
    assert record.fields["intent"] == "huabei_overdue"
    assert record.fields["score"] >= 55 and record.fields["latency_ms"] >= 0
    assert "user_id" not in record.fields and str(USER) not in record.getMessage()


async def test_user_ids_are_logged_only_when_allowed(kb, caplog):
    request = RecordingRequest()
    app = build_application(
        make_settings(log_user_ids=True),
        kb,
        request=request,
        get_updates_request=RecordingRequest(),
    )
    await app.initialize()
    try:
        with caplog.at_level(logging.INFO, logger="bot.app"):
            await Harness(app, request).send(USER, "/start")
    finally:
        await app.shutdown()
    [record] = [r for r in caplog.records if r.name == "bot.app"]
    assert record.fields["user_id"] == USER


# -- the operator's log lines -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/entries", "/export", "/stats"])
async def test_admin_reads_are_logged_with_the_user_id_only_when_allowed(h, command, caplog):
    caplog.set_level(logging.INFO, logger="bot.app")
    await h.send(ADMIN, command)
    assert f"an admin ran {command}" in caplog.text
    assert str(ADMIN) not in caplog.text
    caplog.clear()
    h.app.bot_data["settings"] = make_settings(log_user_ids=True)
    await h.send(ADMIN, command)
    assert f"admin {ADMIN} ran {command}" in caplog.text
    caplog.clear()
    await h.send(USER, command)  # not an admin: refused (and logged) by the admin module
    assert " ran /" not in caplog.text


async def test_an_unmatched_question_logs_its_best_candidate_and_score(h, caplog):
    caplog.set_level(logging.INFO, logger="bot.app")
    await h.send(USER, "借呗能不能帮我订一张去上海的机票")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("handled text")]
    assert "intent=None" in line, line
    best = re.search(r"best=(\w+) best_score=([\d.]+)", line)
    assert best is not None, line
    assert h.app.bot_data["kb"].entry(best.group(1)) is not None
    assert 0 < float(best.group(2)) <= 100


async def test_the_webhook_check_tells_undeliverable_updates_from_a_quiet_bot(kb):
    """Webhook mode's heartbeat: getWebhookInfo without a delivery problem counts as hearing
    from Telegram; updates waiting behind a delivery error newer than the last webhook call
    do not, and say why."""
    request = RecordingRequest()
    monitor = BotApiMonitor("webhook")
    app = build_application(
        make_settings(),
        kb,
        request=request,
        get_updates_request=RecordingRequest(),
        monitor=monitor,
    )
    info = {"url": "https://bot.example.test/hook", "has_custom_certificate": False}
    failing = {
        **info,
        "pending_update_count": 3,
        "last_error_date": int(monitor.started) + 1,
        "last_error_message": "Connection refused",
    }
    request.fail["getWebhookInfo"] = [
        (200, {"ok": True, "result": {**info, "pending_update_count": 0}}),
        (200, {"ok": True, "result": failing}),
        (200, {"ok": True, "result": failing}),
    ]
    await app.initialize()
    try:
        await check_webhook(app)  # quiet, but Telegram can deliver
        assert monitor.last_ok is not None and monitor.failures == 0
        heard = monitor.last_ok
        await check_webhook(app)  # three updates stuck behind a delivery error
        assert monitor.last_ok == heard and monitor.failures == 1
        assert "Telegram cannot deliver updates: Connection refused (3 waiting)" in str(
            monitor.last_error
        )
        app.bot_data["last_webhook_call"] = monitor.started + 2  # a call came in since
        await check_webhook(app)
        assert monitor.failures == 0 and monitor.last_ok >= heard
    finally:
        await app.shutdown()


# -- no SQLite on the event loop ----------------------------------------------------------


async def test_a_typed_not_mine_is_written_off_the_event_loop_before_the_next_update(h, kb):
    loop_thread = threading.get_ident()
    writers: list[int] = []
    add, went_to = kb.store.add_suggestion, kb.store.suggestion_went_to

    def recording(write):
        def call(*args, **kw):
            writers.append(threading.get_ident())
            return write(*args, **kw)

        return call

    kb.store.add_suggestion = recording(add)
    kb.store.suggestion_went_to = recording(went_to)
    question = "信用卡逾期一天借呗就关了"
    await h.send(USER, question)
    await h.send(USER, "这不是我的情况")
    [row] = kb.store.db.query("SELECT kind, question, went_to FROM suggestions")
    assert (row["kind"], row["question"], row["went_to"]) == ("not_mine", question, None)
    # Asked again in other words: where the user went, recorded on the same suggestion.
    await h.send(USER, "花呗晚还了几天，借呗就用不了了")
    [row] = kb.store.db.query("SELECT went_to FROM suggestions")
    assert row["went_to"] is not None
    assert len(writers) == 2 and loop_thread not in writers
