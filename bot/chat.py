"""The conversation in a terminal: ``jiebei-bot chat``.

Replies are printed as plain text with their buttons numbered; typing a number presses that
button. ``/start``, ``/help``, ``/causes`` and ``/diagnose`` work as in Telegram. End of
input or ``/quit`` ends the chat. Works the same when stdin is a pipe.

With ``--admin`` the admin commands work too, through the same :class:`~bot.admin_core.AdminDesk`
as on Telegram (same texts, confirmations and undo; history actor ``cli:<login name>``).
``/export`` writes the document into the current directory; ``/import FILE`` reads one.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from bot import texts
from bot.admin_core import (
    COMMAND_NAMES,
    Admin,
    AdminDesk,
    Document,
    Output,
    arguments,
    command_name,
)
from bot.conversation import Conversation
from bot.render import Button, Reply, plain
from knowledge.base import KnowledgeBase

CHAT_ID = 0
QUIT = ("/quit", "/exit")


def show(replies: list[Reply], out: TextIO) -> list[Button]:
    """Print replies; returns their buttons in the order they were numbered."""
    buttons: list[Button] = []
    for reply in replies:
        print(plain(reply, start=len(buttons) + 1), file=out)
        print(file=out)
        buttons.extend(reply.button_list())
    out.flush()
    return buttons


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container, say)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def terminal_admin() -> Admin:
    return Admin(key="cli", actor=f"cli:{login_name()}")


def admin_outputs(outputs: list[Output], out: TextIO) -> list[Reply]:
    """The desk's outputs as terminal replies: documents are written to the current directory."""
    replies: list[Reply] = []
    for item in outputs:
        if isinstance(item, Document):
            path = Path(item.filename)
            path.write_bytes(item.data)
            replies.append(
                Reply(texts.CHAT_EXPORTED.format(path=path.resolve(), what=item.caption))
            )
        elif isinstance(item, Reply):
            replies.append(item)
    return replies


def admin_command(desk: AdminDesk, who: Admin, text: str, out: TextIO) -> list[Reply]:
    if command_name(text) != "import":
        return admin_outputs(desk.command(who, text), out)
    (name,) = arguments(text, 1)
    if not name:
        return [Reply(texts.CHAT_IMPORT_USAGE)]
    try:
        data = Path(name).expanduser().read_bytes()
    except FileNotFoundError:
        return [Reply(texts.CHAT_IMPORT_UNREADABLE.format(path=name, reason="找不到这个文件"))]
    except IsADirectoryError:
        return [Reply(texts.CHAT_IMPORT_UNREADABLE.format(path=name, reason="这是一个目录"))]
    except PermissionError:
        return [Reply(texts.CHAT_IMPORT_UNREADABLE.format(path=name, reason="没有读取权限"))]
    except OSError as exc:
        return [Reply(texts.CHAT_IMPORT_UNREADABLE.format(path=name, reason=exc.strerror or exc))]
    return admin_outputs(desk.import_document(who, Path(name).name, data), out)


def run_chat(
    kb: KnowledgeBase,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    *,
    admin: Admin | None = None,
) -> int:
    """Talk until end of input or /quit; returns the exit status (0). With ``admin`` the
    admin commands and buttons work too, as that admin."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    interactive = stdin.isatty()
    conv = Conversation(kb)
    desk = AdminDesk(kb) if admin is not None else None
    if interactive:
        print(texts.CHAT_BANNER, file=out)
    choices = show(conv.start(), out)
    try:
        _talk(conv, desk, admin, stdin, out, interactive, choices)
    finally:
        kb.store.flush_questions()  # the questions asked are queued, not yet written
    return 0


def _talk(
    conv: Conversation,
    desk: AdminDesk | None,
    admin: Admin | None,
    stdin: TextIO,
    out: TextIO,
    interactive: bool,
    choices: list[Button],
) -> None:
    while True:
        if interactive:
            print("> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text.lower() in QUIT:
            break
        if text.isdigit():
            if not choices:
                show([Reply(texts.CHAT_NO_CHOICES)], out)
                continue
            n = int(text)
            if not 1 <= n <= len(choices):
                show([Reply(texts.CHAT_CHOICE_RANGE.format(n=len(choices)))], out)
                continue
            data = choices[n - 1].data
            if desk is not None and admin is not None and data.startswith("a:"):
                replies = admin_outputs(desk.button(admin, data), out)
            else:
                replies = conv.on_button(CHAT_ID, data)
        elif desk is not None and admin is not None and command_name(text) in COMMAND_NAMES:
            replies = admin_command(desk, admin, text, out)
        elif desk is not None and command_name(text) == "help":
            replies = [*conv.on_text(CHAT_ID, text), Reply(desk.help_text())]
        else:
            replies = conv.on_text(CHAT_ID, text)
        new = show(replies, out)
        if new:
            choices = new
