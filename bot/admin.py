"""Admin commands on Telegram: who may, and the wiring. The commands themselves are in
:mod:`bot.admin_core` (``AdminDesk``), which knows nothing of Telegram.

Who may: the user ids in ``Settings.admin_ids``, in a private chat only. Anyone else gets one
line that says nothing about the knowledge base, nothing changes, and the attempt is logged at
WARNING (user id and command, never a token). An admin's actor in the history is
``tg:<user id>``.

The handlers sit in group ``ADMIN_GROUP`` (before the user conversation) and stop further
handlers, so an admin command, or a refusal, is never also answered as a user question. The
desk runs in a worker thread (it writes SQLite and rebuilds the matcher); what it returns is
sent here: replies (split under Telegram's limit, buttons on the last part), edits of the
message whose button was pressed, documents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import admin_core
from bot.admin_core import (  # noqa: F401  (names the tests and app use through this module)
    ADMIN_COMMANDS,
    BUTTON_ACTIONS,
    DOCUMENT_HINT,
    HISTORY_NONE,
    HISTORY_UNDONE,
    IMPORT_MOVED_ON,
    IMPORT_SAME,
    IMPORT_TOO_LARGE,
    MAX_IMPORT_BYTES,
    MAX_MESSAGE,
    MAX_PARTS,
    REFUSED,
    SETTABLE,
    STALE,
    TRUNCATED,
    UNDO_NOTHING,
    UNKNOWN_BUTTON,
    UNMATCHED_NONE,
    USAGE,
    Admin,
    AdminDesk,
    Document,
    Output,
    SetButtons,
    split_message,
)
from bot.render import Button, Reply

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
ADMIN_GROUP = -1
DESK_KEY = "admin_desk"


# -- who may -----------------------------------------------------------------------------


def is_admin(update: Update, context: Context) -> bool:
    """An admin, in a private chat."""
    user, chat = update.effective_user, update.effective_chat
    settings = context.bot_data.get("settings")
    return (
        user is not None
        and chat is not None
        and chat.type == ChatType.PRIVATE
        and settings is not None
        and user.id in settings.admin_ids
    )


def who(update: Update, context: Context) -> Admin:
    user_id = update.effective_user.id
    settings = context.bot_data.get("settings")
    shown = settings is not None and settings.log_user_ids
    logged = f"tg:{user_id}" if shown else "(id hidden)"
    return Admin(key=user_id, actor=f"tg:{user_id}", logged=logged)


def desk_of(context: Context) -> AdminDesk:
    desk = context.bot_data.get(DESK_KEY)
    if desk is None or desk.kb is not context.bot_data["kb"]:
        desk = context.bot_data[DESK_KEY] = AdminDesk(context.bot_data["kb"])
    return desk


async def refuse(update: Update, context: Context, command: str) -> None:
    """Refuse a non-admin; the log line names the user only with ``LOG_USER_IDS``."""
    user, chat = update.effective_user, update.effective_chat
    settings = context.bot_data.get("settings")
    if settings is not None and settings.log_user_ids:
        named = f"user {user.id if user else None}"
    else:
        named = "a non-admin"
    log.warning(
        "refused admin command %s from %s (chat type %s)",
        command,
        named,
        chat.type if chat else None,
    )
    if update.callback_query is not None:
        await update.callback_query.answer(REFUSED, show_alert=True)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(REFUSED)


async def guarded(
    update: Update,
    context: Context,
    command: str,
    func: Callable[[Update, Context], Awaitable[None]],
) -> None:
    """Run an admin handler for admins, refuse everyone else; then stop further handlers."""
    try:
        if not is_admin(update, context):
            await refuse(update, context, command)
        else:
            await func(update, context)
    except Exception as exc:  # reported by the application's error handler, then stop
        await context.application.process_error(update, exc)
    raise ApplicationHandlerStop


# -- sending what the desk returns --------------------------------------------------------


def keyboard(buttons: list[list[Button]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in buttons]
    )


async def say(
    update: Update, context: Context, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Send ``text`` (HTML) to the chat of ``update``, split if long; buttons on the last part."""
    chunks = split_message(text)
    for i, chunk in enumerate(chunks):
        await context.bot.send_message(
            update.effective_chat.id,
            chunk,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_markup=markup if i == len(chunks) - 1 else None,
        )


async def deliver(update: Update, context: Context, outputs: list[Output]) -> None:
    query = update.callback_query
    for out in outputs:
        if isinstance(out, Document):
            await context.bot.send_document(
                update.effective_chat.id, document=out.data, filename=out.filename,
                caption=out.caption,
            )  # fmt: skip
        elif isinstance(out, SetButtons):
            if query is not None:
                await query.edit_message_reply_markup(keyboard(out.buttons))
        elif out.edit and query is not None and len(out.text_html) <= MAX_MESSAGE:
            try:
                await query.edit_message_text(
                    out.text_html, parse_mode=ParseMode.HTML, reply_markup=keyboard(out.buttons)
                )
            except BadRequest as exc:
                if "not modified" not in str(exc).lower():
                    raise
        else:
            await say(update, context, out.text_html, keyboard(out.buttons))


# -- handlers ----------------------------------------------------------------------------


def command_handler(name: str) -> Callable[[Update, Context], Awaitable[None]]:
    async def handler(update: Update, context: Context) -> None:
        async def run(update: Update, context: Context) -> None:
            message = update.effective_message
            text = (message.text or message.caption or "") if message else ""
            outputs = await asyncio.to_thread(desk_of(context).command, who(update, context), text)
            await deliver(update, context, outputs)

        await guarded(update, context, f"/{name}", run)

    handler.__name__ = f"{name}_cmd"
    handler.__doc__ = f"/{name} (see bot.admin_core.AdminDesk)."
    return handler


async def import_cmd(update: Update, context: Context) -> None:
    """/import as the caption of a document, or in reply to one: preview, then confirm."""

    async def run(update: Update, context: Context) -> None:
        message = update.effective_message
        document = message.document
        if document is None and message.reply_to_message is not None:
            document = message.reply_to_message.document
        if document is None:
            await deliver(update, context, [Reply(USAGE["import"])])
            return
        too_large = IMPORT_TOO_LARGE.format(limit=MAX_IMPORT_BYTES // 2**20)
        if document.file_size and document.file_size > MAX_IMPORT_BYTES:
            log.info(
                "admin %s: import refused: %d bytes, over the limit",
                who(update, context).log_name,
                document.file_size,
            )
            await say(update, context, too_large)
            return
        tg_file = await document.get_file()
        data = bytes(await tg_file.download_as_bytearray())
        outputs = await asyncio.to_thread(
            desk_of(context).import_document, who(update, context), document.file_name or "", data
        )
        await deliver(update, context, outputs)

    await guarded(update, context, "/import", run)


async def on_button(update: Update, context: Context) -> None:
    """Every "a:" button: admins only, like the commands."""
    data = update.callback_query.data or ""
    parts = data.split(":")
    action = parts[1] if len(parts) > 1 and parts[1] in BUTTON_ACTIONS else "?"

    async def run(update: Update, context: Context) -> None:
        await update.callback_query.answer()
        outputs = await asyncio.to_thread(desk_of(context).button, who(update, context), data)
        await deliver(update, context, outputs)

    # Only the action is logged on refusal: the rest may be a confirmation token.
    await guarded(update, context, f"a:{action}", run)


async def admin_help(update: Update, context: Context) -> bool:
    """After the user /help: the admin commands, for an admin in a private chat. True if sent."""
    if not is_admin(update, context):
        return False
    await say(update, context, AdminDesk.help_text())
    return True


async def document_hint(update: Update, context: Context) -> bool:
    """A document from an admin without the /import caption: how to import. True if sent."""
    message = update.effective_message
    if message is None or message.document is None or not is_admin(update, context):
        return False
    await say(update, context, DOCUMENT_HINT)
    return True


def register(app: Application) -> None:
    """Add the admin handlers to ``app`` (group ADMIN_GROUP, before the user conversation)."""
    only_messages = filters.UpdateType.MESSAGE
    for name, _ in ADMIN_COMMANDS:
        callback = import_cmd if name == "import" else command_handler(name)
        app.add_handler(CommandHandler(name, callback, filters=only_messages), ADMIN_GROUP)
    # /import as the caption of a document: CommandHandler reads message text only.
    app.add_handler(
        MessageHandler(
            only_messages & filters.Document.ALL & filters.CaptionRegex(r"^/import(@\w+)?(\s|$)"),
            import_cmd,
        ),
        ADMIN_GROUP,
    )
    app.add_handler(CallbackQueryHandler(on_button, pattern=r"^a:"), ADMIN_GROUP)


__all__ = ["admin_core", "admin_help", "document_hint", "is_admin", "register"]
