"""Tests of the fake Bot API server (tests/botapi.py), driven by a real PTB ``Bot``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import threading
import time
import warnings

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from tests.botapi import FakeBotAPI, format_text, parse_request

USER = 42


@pytest.fixture
def server():
    with FakeBotAPI() as srv:
        yield srv


@pytest.fixture
async def bot(server):
    async with Bot(server.token, base_url=server.base_url, base_file_url=server.base_file_url) as b:
        yield b


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d)] for t, d in pairs])


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that this becomes a timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


# ---------------------------------------------------------------- basics


async def test_get_me(bot, server):
    me = await bot.get_me()
    assert me.id == 123456
    assert me.is_bot is True
    assert me.username == server.username == "jiebei_test_bot"
    assert server.base_url == f"http://127.0.0.1:{server.port}/bot"


async def test_wrong_token_raises_invalid_token(server):
    wrong = Bot("999:WRONG", base_url=server.base_url)
    with pytest.raises(InvalidToken):
        await wrong.get_me()
    await wrong.shutdown()


async def test_send_message_with_inline_keyboard(bot, server):
    server.send_text(USER, "/start")
    markup = keyboard(("查看原因", "why"), ("恢复额度", "restore"))
    sent = await bot.send_message(USER, "借呗额度为什么停了？", reply_markup=markup)

    assert sent.message_id > 0
    assert sent.chat.id == USER
    assert sent.chat.type == "private"
    assert sent.from_user.id == 123456 and sent.from_user.is_bot
    assert sent.text == "借呗额度为什么停了？"
    assert sent.reply_markup == markup
    assert isinstance(sent.date, dtm.datetime)

    [stored] = server.bot_messages(USER)
    assert stored["message_id"] == sent.message_id
    assert stored["reply_markup"]["inline_keyboard"][1][0] == {
        "text": "恢复额度",
        "callback_data": "restore",
    }
    method, params = server.calls("sendMessage")[0]
    assert method == "sendMessage" and params["chat_id"] == USER
    assert server.wait_for_messages(USER, 1, timeout=1) == [stored]


async def test_message_ids_are_per_chat_and_shared_with_user_messages(bot, server):
    first = server.send_text(USER, "hi")
    sent = await bot.send_message(USER, "hello")
    second = server.send_text(USER, "again", reply_to=sent.message_id)
    assert (first["message_id"], sent.message_id, second["message_id"]) == (1, 2, 3)
    assert second["reply_to_message"]["text"] == "hello"
    other = server.send_text(7, "hi")
    assert other["message_id"] == 1


async def test_unknown_chat_and_blocked_user(bot, server):
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(777, "hello?")
    server.send_text(USER, "hi")
    server.set_blocked(USER)
    with pytest.raises(Forbidden, match=r"(?i)blocked"):
        await bot.send_message(USER, "hello?")
    server.set_blocked(USER, False)
    await bot.send_message(USER, "hello!")


async def test_message_too_long(bot, server):
    server.add_chat(USER)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    # the limit counts characters, not bytes or UTF-16 units
    ok = await bot.send_message(USER, "借" * 4096)
    assert len(ok.text) == 4096
    with pytest.raises(BadRequest, match=r"(?i)text is empty"):
        await bot.send_message(USER, "  \n ")
    assert [c[0] for c in server.calls(ok=False)] == ["sendMessage", "sendMessage"]


async def test_unknown_method_is_bad_request(bot, server):
    with pytest.raises(BadRequest, match=r"(?i)method not found"):
        await bot.do_api_request("fooBar", api_kwargs={"x": 1})
    assert server.calls("fooBar") == [("fooBar", {"x": 1})]


async def test_method_names_are_case_insensitive(bot, server):
    me = await bot.do_api_request("GETME")
    assert me["id"] == 123456
    assert server.calls("getMe")[-1][0] == "getMe"


# ---------------------------------------------------------------- updates


async def test_long_polling_returns_as_soon_as_a_message_arrives(bot, server):
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await server.wait_until_polling_async()
    sent = server.send_text(USER, "/start@jiebei_test_bot 你好", first_name="小明", username="xm")
    updates = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 5

    [update] = updates
    assert isinstance(update, Update)
    msg = update.message
    assert msg.message_id == sent["message_id"]
    assert msg.text == "/start@jiebei_test_bot 你好"
    assert msg.from_user.first_name == "小明" and msg.from_user.username == "xm"
    assert msg.chat.id == USER and msg.chat.type == "private"
    [entity] = msg.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 22)
    assert msg.parse_entities() == {entity: "/start@jiebei_test_bot"}

    # unconfirmed updates are delivered again; offset confirms them
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [update.update_id]
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert server.pending_updates() == []


async def test_get_updates_timeout_limit_and_negative_offset(bot, server):
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 5

    for i in range(5):
        server.send_text(USER, f"m{i}")
    assert [u.message.text for u in await bot.get_updates(limit=2)] == ["m0", "m1"]
    last = await bot.get_updates(offset=-1)
    assert [u.message.text for u in last] == ["m4"]
    assert len(server.pending_updates()) == 1


async def test_command_entity_only_for_telegram_commands(bot, server):
    assert "entities" not in server.send_text(USER, "/帮助")
    assert "entities" not in server.send_text(USER, "hello /start")
    assert server.send_text(USER, "/help_me 1")["entities"] == [
        {"type": "bot_command", "offset": 0, "length": 8}
    ]


async def test_second_poller_terminates_the_first_with_conflict(bot, server):
    # a second bot instance with the same token, like a bot started twice
    async with Bot(server.token, base_url=server.base_url) as twin:
        first = asyncio.create_task(bot.get_updates(timeout=20))
        await server.wait_until_polling_async()
        second = asyncio.create_task(twin.get_updates(timeout=20))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates"):
            await asyncio.wait_for(first, 5)
        server.send_text(USER, "hi")
        assert len(await asyncio.wait_for(second, 5)) == 1


async def test_non_text_messages(bot, server):
    server.send_sticker(USER)
    server.send_photo(USER, caption="截图")
    updates = await bot.get_updates()
    sticker, photo = (u.message for u in updates)
    assert sticker.sticker.emoji == "👍" and sticker.text is None
    assert photo.photo[-1].width == 800 and photo.caption == "截图"
    data = await (await photo.photo[-1].get_file()).download_as_bytearray()
    assert data.startswith(b"\xff\xd8")


# ---------------------------------------------------------------- callback queries


async def test_callback_query_round_trip(bot, server):
    server.send_text(USER, "/start")
    sent = await bot.send_message(USER, "选一个", reply_markup=keyboard(("原因", "why")))
    [shown] = server.wait_for_messages(USER, 1, timeout=1)

    with pytest.raises(ValueError):
        server.press_button(USER, shown, "not-a-button")
    query = server.press_button(USER, shown, text="原因")
    assert query["data"] == "why"

    updates = await bot.get_updates(offset=-1)
    cq = updates[-1].callback_query
    assert cq.id == query["id"]
    assert cq.data == "why"
    assert cq.from_user.id == USER
    assert cq.message.message_id == sent.message_id
    assert cq.message.reply_markup == keyboard(("原因", "why"))
    assert cq.chat_instance

    assert await cq.answer("好的")
    assert server.callback_answers() == [{"callback_query_id": cq.id, "text": "好的"}]
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await cq.answer()

    edited = await cq.edit_message_text("原因是……")
    assert edited.text == "原因是……" and edited.reply_markup is None
    state = server.wait_for_edit(USER, sent.message_id, timeout=1)
    assert state["text"] == "原因是……"
    assert "reply_markup" not in state  # editMessageText without markup drops it
    assert "edit_date" in state
    with pytest.raises(ValueError):
        server.press_button(USER, state, "why")
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_text("原因是……", chat_id=USER, message_id=sent.message_id)


async def test_edit_reply_markup_and_delete(bot, server):
    server.add_chat(USER)
    sent = await bot.send_message(USER, "x", reply_markup=keyboard(("a", "a")))
    await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=keyboard(("b", "b")))
    assert server.wait_for_edit(USER, sent.message_id, 1)["reply_markup"]["inline_keyboard"] == [
        [{"text": "b", "callback_data": "b"}]
    ]
    assert await bot.delete_message(USER, sent.message_id)
    assert server.bot_messages(USER) == []
    assert server.deleted_messages() == [(USER, sent.message_id)]
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("y", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(USER, sent.message_id)


async def test_callback_data_over_64_bytes_is_rejected(bot, server):
    server.add_chat(USER)
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(USER, "x", reply_markup=keyboard(("长", "借" * 22)))  # 66 bytes
    await bot.send_message(USER, "x", reply_markup=keyboard(("ok", "借" * 21)))  # 63 bytes


# ---------------------------------------------------------------- files


async def test_send_document_get_file_download(bot, server):
    server.add_chat(USER)
    payload = b"\x00binary\r\n--not-a-boundary\r\n\xff" * 100
    sent = await bot.send_document(
        USER, document=payload, filename='报"告 1.csv', caption="<b>结果</b>", parse_mode="HTML"
    )
    doc = sent.document
    assert doc.file_name == '报"告 1.csv'
    assert doc.file_size == len(payload)
    assert doc.mime_type == "text/csv"
    assert doc.file_id and doc.file_unique_id
    assert sent.caption == "结果" and sent.caption_entities[0].type == "bold"
    assert server.uploaded_file(doc.file_id) == payload
    assert server.calls("sendDocument")[0][1]["document"] == {
        "filename": '报"告 1.csv',
        "mime_type": "text/csv",
        "size": len(payload),
    }

    file = await bot.get_file(doc.file_id)
    assert file.file_path.startswith(server.base_file_url)
    assert bytes(await file.download_as_bytearray()) == payload

    # re-sending by file_id does not upload again
    again = await bot.send_document(USER, document=doc.file_id)
    assert again.document.file_id == doc.file_id
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")


async def test_user_uploaded_document(bot, server):
    content = "身份证,姓名\n1,张三\n".encode()
    server.send_document(USER, content, "资料.csv", caption="/upload now", mime_type="text/csv")
    [update] = await bot.get_updates()
    msg = update.message
    assert msg.document.file_name == "资料.csv" and msg.document.mime_type == "text/csv"
    assert msg.caption == "/upload now"
    assert msg.caption_entities[0].type == "bot_command"
    file = await msg.document.get_file()
    assert bytes(await file.download_as_bytearray()) == content


# ---------------------------------------------------------------- formatting, commands


async def test_parse_modes(bot, server):
    server.add_chat(USER)
    html = await bot.send_message(
        USER, '<b>借呗</b> &lt;3 <a href="https://example.com">链接</a>', parse_mode="HTML"
    )
    assert html.text == "借呗 <3 链接"
    assert [(e.type, e.offset, e.length) for e in html.entities] == [
        ("bold", 0, 2),
        ("text_link", 6, 2),
    ]
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER, "额度 1 < 2", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await bot.send_message(USER, "a<br>b", parse_mode="HTML")

    md = await bot.send_message(USER, "*粗体* 1\\.5%", parse_mode="MarkdownV2")
    assert md.text == "粗体 1.5%" and md.entities[0].type == "bold"
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await bot.send_message(USER, "利率 1.5%", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)can't find end of"):
        await bot.send_message(USER, "*未闭合", parse_mode="MarkdownV2")


def test_format_text_entities_use_utf16_offsets():
    text, entities = format_text("😀 <i>x</i>", "HTML", None)
    assert text == "😀 x"
    assert entities == [{"type": "italic", "offset": 3, "length": 1}]
    text, entities = format_text("  <b>a</b>  ", "HTML", None)
    assert (text, entities) == ("a", [{"type": "bold", "offset": 0, "length": 1}])


async def test_commands_and_chat_action(bot, server):
    server.add_chat(USER)
    commands = [BotCommand("start", "开始"), BotCommand("why", "额度为什么停了")]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands(commands[:1], scope=BotCommandScopeAllPrivateChats())
    assert server.commands() == [
        {"command": "start", "description": "开始"},
        {"command": "why", "description": "额度为什么停了"},
    ]
    assert server.commands({"type": "all_private_chats"}) == [
        {"command": "start", "description": "开始"}
    ]
    assert await bot.get_my_commands() == tuple(commands)
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest):
        await bot.set_my_commands([BotCommand("帮助", "x")])

    assert await bot.send_chat_action(USER, "typing")
    assert server.chat_actions(USER) == ["typing"]


async def test_webhook_blocks_polling_until_deleted(bot, server):
    assert await bot.set_webhook("https://example.com/hook")
    assert server.webhook_url == "https://example.com/hook"
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == ()
    assert await bot.log_out() and await bot.close()


# ---------------------------------------------------------------- fault injection


async def test_fail_next_429_raises_retry_after(bot, server, monkeypatch):
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # opt in to PTB 23 behaviour, no warning
    server.add_chat(USER)
    server.fail_next("sendMessage", 1, retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(USER, "hi")
    assert retry_seconds(info.value) == 7
    await bot.send_message(USER, "hi")  # only the next call failed
    statuses = [r["status"] for r in server.requests() if r["method"] == "sendMessage"]
    assert statuses == [429, 200]


async def test_fail_next_500_delay_and_any_method(bot, server):
    server.fail_next("getMe", 2, status=500)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.get_me()
    assert (await bot.get_me()).id == 123456

    server.fail_next("*", 1, status=400, description="Bad Request: injected")
    with pytest.raises(BadRequest, match=r"(?i)injected"):
        await bot.get_me()

    server.fail_next("getMe", 1, status=None, delay=3)  # slow but successful
    with pytest.raises(TimedOut):
        await bot.get_me(read_timeout=0.3)


@pytest.mark.parametrize("mode", ["close", "502"])
async def test_set_down_is_a_network_error_and_cuts_long_polls(bot, server, mode):
    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await server.wait_until_polling_async()
    server.set_down(True, mode=mode)
    with pytest.raises(NetworkError):
        await asyncio.wait_for(poll, 5)
    with pytest.raises(NetworkError):
        await bot.get_me()
    server.set_down(False)
    assert (await bot.get_me()).id == 123456


async def test_restart_and_offline_keep_port_and_state(bot, server):
    port = server.port
    server.send_text(USER, "queued before restart")
    poll = asyncio.create_task(bot.get_updates(offset=10**9, timeout=20))
    await server.wait_until_polling_async()
    server.go_offline()
    with pytest.raises(NetworkError):
        await asyncio.wait_for(poll, 5)
    with pytest.raises(NetworkError):
        await bot.get_me()  # connection refused
    server.go_online()
    assert server.port == port
    assert (await bot.get_me()).id == 123456

    server.send_text(USER, "still here")
    server.restart()
    assert server.port == port
    assert [u.message.text for u in await bot.get_updates()] == ["still here"]


# ---------------------------------------------------------------- test-side waiting, raw HTTP


def test_sync_wait_for_messages_and_raw_http_bodies(server):
    url = f"{server.base_url}{server.token}"
    server.send_text(USER, "hi")

    def bot_side():
        with httpx.Client() as client:
            # JSON body with a nested object, the way non-PTB clients talk
            client.post(f"{url}/sendMessage", json={"chat_id": USER, "text": "one"})
            # form body, every non-string value JSON-encoded (what PTB sends)
            client.post(
                f"{url}/sendMessage",
                data={
                    "chat_id": str(USER),
                    "text": "123",
                    "reply_markup": '{"inline_keyboard": [[{"text": "t", "callback_data": "d"}]]}',
                },
            )
            client.get(f"{url}/sendMessage", params={"chat_id": USER, "text": "three"})

    thread = threading.Thread(target=bot_side)
    thread.start()
    one, two = server.wait_for_messages(USER, 2, timeout=10)
    [three] = server.wait_for_messages(USER, 1, timeout=10)
    thread.join()
    assert (one["text"], two["text"], three["text"]) == ("one", "123", "three")
    assert two["reply_markup"] == {"inline_keyboard": [[{"text": "t", "callback_data": "d"}]]}
    with pytest.raises(TimeoutError, match="recent bot requests"):
        server.wait_for_messages(USER, 1, timeout=0.2)

    assert server.wait_for_call("sendMessage", 1)["text"] == "one"
    assert server.wait_for_call("sendMessage", 1)["text"] == "123"

    r = httpx.post(f"{url}/noSuchMethod")
    assert r.status_code == 400
    assert r.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: method not found",
    }
    r = httpx.post(f"{server.base_url}1:BAD/getMe")
    assert (r.status_code, r.json()["description"]) == (401, "Unauthorized")
    r = httpx.get(f"{server.base_file_url}{server.token}/documents/missing.txt")
    assert r.status_code == 404
    assert server.server_errors() == []


def test_parse_request_keeps_strings_and_decodes_json_fields():
    params, files = parse_request(
        "application/x-www-form-urlencoded",
        b"chat_id=-100123&text=true&show_alert=true&offset=5&allowed_updates=%5B%22message%22%5D",
    )
    assert params == {
        "chat_id": -100123,
        "text": "true",
        "show_alert": True,
        "offset": 5,
        "allowed_updates": ["message"],
    }
    assert files == {}


# ---------------------------------------------------------------- whole-bot integration


async def test_ptb_application_polling_against_the_fake(server):
    from telegram.ext import Application, CallbackQueryHandler, CommandHandler

    async def start(update, context):
        await update.message.reply_text("选一个", reply_markup=keyboard(("原因", "why")))

    async def button(update, context):
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(f"你选了 {update.callback_query.data}")

    app = (
        Application.builder()
        .token(server.token)
        .base_url(server.base_url)
        .base_file_url(server.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(button))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=5)
        try:
            server.send_text(USER, "/start")
            [menu] = await server.wait_for_messages_async(USER, 1)
            assert menu["text"] == "选一个"
            server.press_button(USER, menu, "why")
            edited = await server.wait_for_edit_async(USER, menu["message_id"])
            assert edited["text"] == "你选了 why"
            assert len(server.callback_answers()) == 1
            await server.wait_for_updates_consumed_async()
        finally:
            await app.updater.stop()
            await app.stop()
    assert server.calls("deleteWebhook")  # what PTB does before polling
    assert server.server_errors() == []


def test_main_serves_and_prints_the_port():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("botapi.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/bot123456:TEST"
        assert httpx.get(f"{url}/getMe").json()["result"]["id"] == 123456
        proc.stdin.write("你好\n")
        proc.stdin.flush()
        updates = httpx.post(f"{url}/getUpdates", data={"timeout": "10"}, timeout=15).json()
        assert updates["result"][0]["message"]["text"] == "你好"
    finally:
        proc.kill()
        proc.wait(timeout=10)
