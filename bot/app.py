"""The Telegram front end: the ``Application``, its thin handlers, and running it.

Handlers parse the update, call :class:`~bot.conversation.Conversation` and send its
replies. Text and commands are answered on the event loop: the conversation matches in memory
and only queues the question; a full batch of questions is written from a worker thread
(``"question_flush"``); the rare suggestion an answer records is written from a worker thread
before the next update is handled. Buttons may record feedback in SQLite, so they run in a
worker thread.
``app.bot_data`` holds ``"kb"`` (the KnowledgeBase), ``"settings"`` and ``"conversation"``;
``"refresh_task"`` is the background task that picks up edits made by another process,
writes the queued questions and the changed conversation state every ``REFRESH_SECONDS``
(each in a worker thread), and deletes stored questions and feedback older than
``QUESTION_RETENTION_DAYS`` at start and every ``PRUNE_SECONDS``; ``"monitor"`` (when the
bot runs for real) is the :class:`~bot.health.BotApiMonitor` that the request layer tells how
its calls to the Bot API go, for the heartbeat that ``jiebei-bot health`` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Hashable
from typing import Any
from urllib.parse import urlparse

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot import admin, texts
from bot.config import Settings
from bot.conversation import Conversation
from bot.health import BotApiMonitor, Heartbeat, heartbeat_path
from bot.render import Reply, split
from knowledge.base import KnowledgeBase

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
PRUNE_SECONDS = 3600.0
# Handler groups run in order, before the admin module's (admin.ADMIN_GROUP, -1); neither of
# these stops the update.
WEBHOOK_GROUP = -3
ADMIN_READ_LOG_GROUP = -2
ADMIN_READS = ("entries", "export", "stats")
SEND_ATTEMPTS = 5
MAX_SEND_PAUSE = 30.0
USER_COMMAND_NAMES = [name for name, _ in texts.USER_COMMANDS]


# -- helpers ------------------------------------------------------------------------------


class RetryingRequest(HTTPXRequest):
    """PTB's HTTP layer, retrying the calls that carry an answer to a user (``send*``,
    ``edit*``, ``answer*``) instead of dropping the answer at the first hiccup.

    A network error, a timeout or a 5xx answer is retried after a growing pause,
    ``SEND_ATTEMPTS`` tries in all. Telegram's refusals (400, 403) are final, and a 429 goes up
    to the rate limiter, which waits its ``retry_after``. Other calls are left alone: the
    updater retries ``getUpdates`` and the start-up calls in loops of its own. A call that
    timed out may have arrived, so a retried message can, rarely, arrive twice: better than an
    unanswered question.

    With a ``monitor``, the other calls (``getUpdates``, the start-up calls, the webhook check)
    report to it: a completed ``getUpdates`` is the bot's heartbeat, a failed call counts
    towards the "Bot API unreachable" warning.
    """

    RETRIED = ("send", "edit", "answer")

    def __init__(
        self,
        attempts: int = SEND_ATTEMPTS,
        monitor: BotApiMonitor | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("connection_pool_size", 256)  # what ApplicationBuilder would use
        super().__init__(**kwargs)
        self.attempts = attempts
        self.monitor = monitor

    async def _monitored(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        monitor = self.monitor
        if monitor is None:
            return await super().post(url, *args, **kwargs)
        try:
            result = await super().post(url, *args, **kwargs)
        except TelegramError as exc:
            monitor.failed(method, exc)
            raise
        if method == "getUpdates":
            monitor.heard(method)
        elif method != "getWebhookInfo":  # the webhook check decides for itself
            monitor.reached(method)
        return result

    async def post(self, url: str, *args: Any, **kwargs: Any) -> Any:
        method = url.rsplit("/", 1)[-1]  # never log the URL: it holds the token
        if not method.startswith(self.RETRIED):
            return await self._monitored(method, url, *args, **kwargs)
        pause = 1.0
        for attempt in range(1, self.attempts + 1):
            try:
                return await super().post(url, *args, **kwargs)
            except BadRequest:
                raise
            except NetworkError as exc:  # TimedOut, 5xx, connection refused or dropped
                if attempt == self.attempts:
                    raise
                log.warning(
                    "Telegram: %s on %s: %s; again in %.0fs", type(exc).__name__, method, exc, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_SEND_PAUSE)
        raise AssertionError("unreachable")


def build_keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The reply's button rows as an inline keyboard (None when it has no buttons)."""
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.data) for b in row]
            for row in reply.buttons
        ]
    )


def keyboard_json(reply: Reply) -> dict[str, Any] | None:
    """The same keyboard as :func:`build_keyboard`, as the Bot API's JSON ``reply_markup``."""
    if not reply.buttons:
        return None
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": b.data} for b in row] for row in reply.buttons
        ]
    }


async def send_html(bot: Bot, chat_id: int, reply: Reply) -> None:
    """What ``bot.send_message(chat_id, reply.text_html, parse_mode=HTML,
    reply_markup=build_keyboard(reply))`` sends, without the two parts of it nothing here
    uses, which cost about a quarter of handling a text update: building PTB keyboard objects
    only to serialise them, and parsing the message Telegram sends back into a ``Message``.

    ``Bot._post`` is the door every ``Bot`` method goes through (``do_api_request`` too, but
    that warns for methods PTB has a shortcut for): the same parameters go out through the
    same rate limiter, request layer (:class:`RetryingRequest`) and errors. It is not PTB's
    public API: PTB is pinned to 22.x, and a test compares what this sends with what
    ``send_message`` sends, so an upgrade that changes it fails there, not in production.
    Measured in one run: the public ``send_message`` with the same JSON keyboard gave
    950-1,200 updates/s, this 1,390-1,460 (``jiebei-bot bench``'s updates figure).
    """
    await bot._post(
        "sendMessage",
        {
            "chat_id": chat_id,
            "text": reply.text_html,
            "parse_mode": ParseMode.HTML,
            "reply_markup": keyboard_json(reply),  # None (no buttons) is left out
        },
    )


def _conversation(context: ContextTypes.DEFAULT_TYPE) -> Conversation:
    return context.bot_data["conversation"]


def _state_key(update: Update) -> Hashable:
    """Whose conversation this is: the chat, or in a group the user within the chat."""
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None
    if chat.type == ChatType.PRIVATE or user is None:
        return chat.id
    return (chat.id, user.id)


def _addressed(message: Message, bot_id: int, username: str) -> bool:
    """In groups the bot answers only messages that mention it or reply to it."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    mention = f"@{username}".lower()
    found = {
        **message.parse_entities([MessageEntity.MENTION]),
        **message.parse_caption_entities([MessageEntity.MENTION]),
    }
    return any(text.lower() == mention for text in found.values())


def _without_mention(text: str, username: str) -> str:
    return re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.IGNORECASE).strip()


async def _deliver(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    replies: list[Reply],
    *,
    pressed: Message | None = None,
    quote: Message | None = None,
) -> None:
    """Send the replies; a reply marked ``edit`` replaces the pressed message instead."""
    for reply in replies:
        for part in split(reply):
            if part.edit and pressed is not None:
                try:
                    await pressed.edit_text(
                        part.text_html, parse_mode=ParseMode.HTML, reply_markup=build_keyboard(part)
                    )
                    continue
                except BadRequest as exc:
                    if "not modified" in str(exc).lower():
                        continue
                    log.info("could not edit the pressed message (%s); sending instead", exc)
            if quote is not None and quote.chat.type != ChatType.PRIVATE:
                # PTB's shortcut: reply_parameters, and the topic or business chat to answer in
                await quote.reply_text(
                    part.text_html,
                    parse_mode=ParseMode.HTML,
                    reply_markup=build_keyboard(part),
                    do_quote=True,
                )
                quote = None  # quote the user's message once
                continue
            await send_html(context.bot, chat_id, part)


def _log_update(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    kind: str,
    replies: list[Reply],
    started: float,
) -> None:
    """One INFO line per handled update: intent, score and latency (user ids if allowed); for
    a question that matched nothing, the best candidate and its score too."""
    intent, score, best = None, 0.0, None
    for reply in replies:
        if reply.intent is not None:
            intent, score = reply.intent, reply.score
            break
        if best is None and reply.best is not None:
            best = reply.best
    fields: dict[str, object] = {
        "kind": kind,
        "intent": intent,
        "score": score,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    settings: Settings = context.bot_data["settings"]
    if settings.log_user_ids:
        fields["user_id"] = update.effective_user.id if update.effective_user else None
        fields["chat_id"] = update.effective_chat.id if update.effective_chat else None
    shown = ""
    if best is not None and intent is None:
        fields["best"], fields["best_score"] = best
        shown = f" best={best[0]} best_score={best[1]}"
    log.info(
        "handled %s intent=%s score=%s%s latency=%sms",
        kind,
        intent,
        score,
        shown,
        fields["latency_ms"],
        extra={"fields": fields},
    )


# -- handlers -----------------------------------------------------------------------------


async def _command(update: Update, context: ContextTypes.DEFAULT_TYPE, name: str) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    started = time.perf_counter()
    conv = _conversation(context)
    replies = conv.command(_state_key(update), f"/{name}")
    try:
        await _deliver(context, chat.id, replies, quote=message)
    finally:
        await write_pending(conv)
    _log_update(update, context, f"/{name}", replies, started)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: greet, say what the bot does, offer the causes and the diagnosis."""
    await _command(update, context, "start")


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: how to use the bot; for an admin, the admin commands too."""
    await _command(update, context, "help")
    await admin.admin_help(update, context)


async def causes(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/causes: every cause as a button."""
    await _command(update, context, "causes")


async def diagnose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/diagnose: start the guided yes/no questions."""
    await _command(update, context, "diagnose")


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: delete what is stored about this chat, after a confirmation button."""
    await _command(update, context, "forget")


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot does not know."""
    message = update.effective_message
    if message is None or not _addressed(message, context.bot.id, context.bot.username):
        return
    await message.reply_text(texts.UNKNOWN_COMMAND, do_quote=message.chat.type != ChatType.PRIVATE)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Free text: the answer that matches it."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    if not _addressed(message, context.bot.id, context.bot.username):
        return
    started = time.perf_counter()
    text = _without_mention(message.text, context.bot.username)
    conv = _conversation(context)
    replies = conv.on_text(_state_key(update), text)
    try:
        await _deliver(context, message.chat.id, replies, quote=message)
    finally:
        await write_pending(conv)  # before the next update: it may build on what is written
    _log_update(update, context, "text", replies, started)


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice, documents...: ask politely for text."""
    message = update.effective_message
    if message is None or not _addressed(message, context.bot.id, context.bot.username):
        return
    started = time.perf_counter()
    if not await admin.document_hint(update, context):  # an admin sending a file: how to import
        await message.reply_text(texts.NOT_TEXT, do_quote=message.chat.type != ChatType.PRIVATE)
    _log_update(update, context, "other", [], started)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A pressed inline button (user buttons; ``a:`` buttons belong to the admin module)."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    chat = update.effective_chat
    if chat is None:  # a button on an inline-mode message: not ours
        return
    started = time.perf_counter()
    conv = _conversation(context)
    # In a worker thread: feedback and /forget buttons write to SQLite.
    replies = await asyncio.to_thread(_press, conv, _state_key(update), query.data or "")
    message = query.message
    # Messages older than 48 hours come as inaccessible (date 0): they cannot be edited.
    pressed = message if isinstance(message, Message) and message.is_accessible else None
    await _deliver(context, chat.id, replies, pressed=pressed)
    _log_update(update, context, "button", replies, started)


def _press(conv: Conversation, key: Hashable, data: str) -> list[Reply]:
    """A button, and the writes it asked for (in the calling worker thread)."""
    replies = conv.on_button(key, data)
    conv.write_pending()
    return replies


async def write_pending(conv: Conversation) -> None:
    """The store writes an answer asked for (a suggestion, rarely), off the event loop."""
    if conv.writes_pending():
        await asyncio.to_thread(conv.write_pending)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every error; transient network trouble at WARNING (PTB retries it). A failed poll
    (no update) is the monitor's to report, once a minute at most, not once per try."""
    error = context.error
    if update is None and isinstance(error, NetworkError) and "monitor" in context.bot_data:
        log.debug("Telegram: %s while polling: %s", type(error).__name__, error)
        return
    if isinstance(error, RetryAfter | NetworkError | Forbidden):
        log.warning("Telegram: %s: %s", type(error).__name__, error)
        return
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, texts.ERROR)


def _user_callback(data: object) -> bool:
    """Every callback but the admin module's ``a:`` ones."""
    return not (isinstance(data, str) and data.startswith("a:"))


# -- lifecycle ----------------------------------------------------------------------------


async def refresh_once(kb: KnowledgeBase) -> bool:
    """Rebuild the matcher if another process (the ``kb`` CLI) changed the store."""
    try:
        changed = await asyncio.to_thread(kb.refresh)
    except Exception:  # keep refreshing: one failed read must not stop it for good
        log.warning("could not refresh the knowledge base", exc_info=True)
        return False
    if changed:
        log.info("knowledge base reloaded (revision %s)", kb.revision)
    return changed


async def flush_questions(kb: KnowledgeBase) -> None:
    """Write the questions queued since the last flush (they are batched off the hot path)."""
    try:
        await asyncio.to_thread(kb.store.flush_questions)
    except Exception:  # the next flush tries again; answering goes on
        log.warning("could not write the question log", exc_info=True)


async def flush_states(conversation: Conversation) -> None:
    """Write the conversation state changed since the last flush (off the event loop)."""
    try:
        await asyncio.to_thread(conversation.flush_states)
    except Exception:  # the next flush tries again
        log.warning("could not write the conversation state", exc_info=True)


async def prune(kb: KnowledgeBase, days: int) -> None:
    """Delete stored questions and feedback older than the retention period."""
    try:
        deleted = await asyncio.to_thread(kb.store.prune, days)
    except Exception:  # tried again at the next round
        log.warning("could not delete old questions", exc_info=True)
        return
    if any(deleted.values()):
        counts = ", ".join(f"{n} {table}" for table, n in deleted.items() if n)
        log.info("deleted rows older than %d days: %s", days, counts)


def _write_questions_soon(app: Application) -> None:
    """A full batch of questions waits: write it from a worker thread now (unless a write is
    under way already), not on the event loop and not only at the next periodic flush."""
    running = app.bot_data.get("question_flush")
    if running is not None and not running.done():
        return
    app.bot_data["question_flush"] = asyncio.get_running_loop().create_task(
        flush_questions(app.bot_data["kb"])
    )


async def _refresh_loop(app: Application, interval: float = REFRESH_SECONDS) -> None:
    kb: KnowledgeBase = app.bot_data["kb"]
    settings: Settings = app.bot_data["settings"]
    loop = asyncio.get_running_loop()
    await prune(kb, settings.retention_days)
    pruned = loop.time()
    while True:
        await asyncio.sleep(interval)
        await refresh_once(kb)
        await flush_questions(kb)
        await flush_states(app.bot_data["conversation"])
        if loop.time() - pruned >= PRUNE_SECONDS:
            await prune(kb, settings.retention_days)
            pruned = loop.time()


async def post_init(app: Application) -> None:
    """Command menus for everyone and for admins; start the refresh task."""
    settings: Settings = app.bot_data["settings"]
    commands = [BotCommand(name, text) for name, text in texts.USER_COMMANDS]
    try:
        await app.bot.set_my_commands(commands)
    except TelegramError as exc:
        log.warning("could not set the command menu: %s", exc)
    admin_commands = commands + [BotCommand(name, text) for name, text in admin.ADMIN_COMMANDS]
    for admin_id in sorted(settings.admin_ids):
        try:
            await app.bot.set_my_commands(admin_commands, scope=BotCommandScopeChat(admin_id))
        except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
            who = f"admin {admin_id}" if settings.log_user_ids else "an admin"
            log.warning("could not set the admin command menu for %s: %s", who, exc)
    app.bot_data["refresh_task"] = asyncio.create_task(_refresh_loop(app))
    monitor: BotApiMonitor | None = app.bot_data.get("monitor")
    if monitor is not None and monitor.mode == "webhook":
        interval = settings.health_max_poll_age / 4
        app.bot_data["webhook_check"] = asyncio.create_task(_webhook_check_loop(app, interval))


async def check_webhook(app: Application) -> None:
    """Webhook mode's heartbeat between webhook calls: ask Telegram whether it can deliver.
    Updates waiting with a delivery error newer than the last call received mean it cannot."""
    monitor: BotApiMonitor = app.bot_data["monitor"]
    try:
        info = await app.bot.get_webhook_info()
    except TelegramError:  # counted and reported by the request layer
        return
    last_call = app.bot_data.get("last_webhook_call", monitor.started)
    error_at = info.last_error_date.timestamp() if info.last_error_date else None
    if info.pending_update_count and error_at is not None and error_at > last_call:
        monitor.failed(
            "webhook delivery",
            RuntimeError(
                f"Telegram cannot deliver updates: {info.last_error_message} "
                f"({info.pending_update_count} waiting)"
            ),
        )
        return
    monitor.heard("getWebhookInfo")


async def _webhook_check_loop(app: Application, interval: float) -> None:
    while True:
        await check_webhook(app)
        await asyncio.sleep(interval)


async def _webhook_called(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Webhook mode: every update that arrives is Telegram reaching the bot (the heartbeat)."""
    context.bot_data["monitor"].heard("webhook")
    context.bot_data["last_webhook_call"] = time.time()


async def _log_admin_read(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An admin reading the knowledge base (/entries, /export, /stats): who did what.
    Refusals are logged by the admin module."""
    user, chat, message = update.effective_user, update.effective_chat, update.effective_message
    settings: Settings = context.bot_data["settings"]
    if user is None or chat is None or message is None or user.id not in settings.admin_ids:
        return
    if chat.type != ChatType.PRIVATE:
        return
    command = (message.text or "").split(None, 1)[0].split("@", 1)[0]
    who = f"admin {user.id}" if settings.log_user_ids else "an admin"
    log.info("%s ran %s", who, command, extra={"fields": {"admin_read": command}})


async def post_shutdown(app: Application) -> None:
    """Stop the background tasks; write the queued questions and the conversation state."""
    for name in ("refresh_task", "webhook_check"):
        task = app.bot_data.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    running = app.bot_data.pop("question_flush", None)
    if running is not None:
        await running
    await flush_questions(app.bot_data["kb"])
    await flush_states(app.bot_data["conversation"])


def build_application(
    settings: Settings,
    kb: KnowledgeBase,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    monitor: BotApiMonitor | None = None,
) -> Application:
    """The bot, wired: handlers, error handler, admin module, lifecycle hooks. With a
    ``monitor``, the HTTP requests this builds report to it (see :class:`RetryingRequest`)."""
    builder = (
        Application.builder()
        .token(settings.token or "")
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if settings.api_base_url:
        builder = builder.base_url(settings.api_base_url.rstrip("/"))
        builder = builder.base_file_url(settings.file_base_url or "")
    # 429 RetryAfter: wait as told and send again (up to 3 times), so no answer is lost.
    # Towards Telegram itself, also stay under its documented flood limits (30 messages a
    # second, 20 a minute per group); other servers (a local Bot API server, tests) are not
    # throttled ahead of time.
    to_telegram = settings.api_base_url is None and request is None
    builder = builder.rate_limiter(
        AIORateLimiter(
            overall_max_rate=30 if to_telegram else 0,
            group_max_rate=20 if to_telegram else 0,
            max_retries=3,
        )
    )
    builder = builder.request(request if request is not None else RetryingRequest(monitor=monitor))
    if get_updates_request is None and monitor is not None:
        # PTB's own default for getUpdates is one connection; this one also reports.
        get_updates_request = RetryingRequest(monitor=monitor, connection_pool_size=1)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    app = builder.build()
    conversation = Conversation(
        kb,
        on_full_batch=lambda: _write_questions_soon(app),
        persist=True,
        retention_days=settings.retention_days,
        defer_writes=True,
    )
    app.bot_data.update(kb=kb, settings=settings, conversation=conversation)
    if monitor is not None:
        app.bot_data["monitor"] = monitor
        if monitor.mode == "webhook":
            app.add_handler(TypeHandler(Update, _webhook_called), WEBHOOK_GROUP)
    app.add_handler(
        CommandHandler(ADMIN_READS, _log_admin_read, filters=filters.UpdateType.MESSAGE),
        ADMIN_READ_LOG_GROUP,
    )

    # The admin handlers sit in an earlier group and stop further handling, so admin
    # commands, document imports and "a:" buttons never reach the user handlers below.
    admin.register(app)
    message = filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("start", start, filters=message))
    app.add_handler(CommandHandler("help", help_command, filters=message))
    app.add_handler(CommandHandler("causes", causes, filters=message))
    app.add_handler(CommandHandler("diagnose", diagnose, filters=message))
    app.add_handler(CommandHandler("forget", forget, filters=message))
    app.add_handler(MessageHandler(message & filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(MessageHandler(message & filters.COMMAND, unknown_command))
    app.add_handler(
        MessageHandler(
            message & ~filters.TEXT & ~filters.StatusUpdate.ALL & ~filters.CaptionRegex(r"^\s*/"),
            on_other,
        )
    )
    app.add_handler(CallbackQueryHandler(on_button, pattern=_user_callback))
    app.add_error_handler(on_error)
    return app


def run_bot(
    settings: Settings,
    kb: KnowledgeBase,
    webhook_url: str | None = None,
    listen: str = "0.0.0.0",
    port: int = 8443,
) -> int:
    """Run until SIGINT/SIGTERM; long polling, or a webhook when ``webhook_url`` is given.

    A Bot API server that is down at start is retried (``bootstrap_retries=-1``); network
    errors and flood waits while running are retried by PTB's updater (``getUpdates``) and by
    :class:`RetryingRequest` (the answers). The heartbeat file next to the knowledge base
    says, while it runs, when it last heard from Telegram (bot/health.py).
    """
    monitor = BotApiMonitor("webhook" if webhook_url else "polling", token=settings.token)
    app = build_application(settings, kb, monitor=monitor)
    entries = kb.entries()
    mode = (
        f"webhook at {urlparse(webhook_url).netloc}, listening on {listen}:{port}"
        if webhook_url
        else "long polling"
    )
    log.info(
        "starting: knowledge base %s (%d entries, %d examples), %s scorer, %s segmenter, "
        "%d admin%s, %s",
        kb.store.path.resolve(),
        len(entries),
        sum(len(e.examples) for e in entries),
        kb.matcher.engine,
        kb.pipeline.backend,
        len(settings.admin_ids),
        "" if len(settings.admin_ids) == 1 else "s",
        mode,
    )
    if kb.matcher.engine != "compiled":
        log.warning(
            "matching with the %s scorer: knowledge._scan was not built at install time "
            "(no C compiler?); same answers, several times slower",
            kb.matcher.engine,
        )
    heartbeat = Heartbeat(heartbeat_path(settings.knowledge_db), monitor)
    heartbeat.start()
    try:
        _run(app, webhook_url, settings, listen, port)
    finally:
        heartbeat.stop()
    log.info("stopped")
    return 0


def _run(
    app: Application, webhook_url: str | None, settings: Settings, listen: str, port: int
) -> None:
    if webhook_url:
        app.run_webhook(
            listen=listen,
            port=port,
            url_path=urlparse(webhook_url).path.lstrip("/"),
            webhook_url=webhook_url,
            secret_token=settings.webhook_secret,
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=False,
            bootstrap_retries=-1,
        )
    else:
        app.run_polling(
            allowed_updates=Update.ALL_TYPES, drop_pending_updates=False, bootstrap_retries=-1
        )
