"""The conversation in a terminal: ``jiebei-bot chat``.

Replies are printed as plain text with their buttons numbered; typing a number presses that
button. ``/start``, ``/help``, ``/causes`` and ``/diagnose`` work as in Telegram. End of
input or ``/quit`` ends the chat. Works the same when stdin is a pipe.
"""

from __future__ import annotations

import sys
from typing import TextIO

from bot import texts
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


def run_chat(kb: KnowledgeBase, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Talk until end of input or /quit; returns the exit status (0)."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    interactive = stdin.isatty()
    conv = Conversation(kb)
    if interactive:
        print(texts.CHAT_BANNER, file=out)
    choices = show(conv.start(), out)
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
            replies = conv.on_button(CHAT_ID, choices[n - 1].data)
        else:
            replies = conv.on_text(CHAT_ID, text)
        new = show(replies, out)
        if new:
            choices = new
    return 0
