"""Transport-neutral replies: what the bot says, and the buttons under it.

A :class:`Reply` holds Telegram HTML (``parse_mode=HTML``) and rows of :class:`Button`.
Telegram front ends turn the rows into an inline keyboard; :func:`plain` renders a reply for
a terminal; :func:`split` cuts a long reply into messages under Telegram's 4096 characters.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, replace
from functools import cache

import opencc

MAX_MESSAGE_CHARS = 4096
MAX_CALLBACK_BYTES = 64

_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # callback data, at most 64 bytes of UTF-8

    def __post_init__(self) -> None:
        if len(self.data.encode()) > MAX_CALLBACK_BYTES:
            raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {self.data!r}")


@dataclass(frozen=True)
class Reply:
    """One message. ``edit``: replace the message whose button was pressed, when there is one.
    ``best``: for an answer that matched nothing, the best candidate and its score (logged)."""

    text_html: str
    buttons: list[list[Button]] = field(default_factory=list)
    intent: str | None = None
    score: float = 0.0
    edit: bool = False
    best: tuple[str, float] | None = None

    def button_list(self) -> list[Button]:
        return [b for row in self.buttons for b in row]


# -- the user's script ------------------------------------------------------------------------

# Scripts a reply can be written in: Simplified (what texts.py and the knowledge hold), and
# Traditional as written in Taiwan or in Hong Kong (OpenCC's s2twp and s2hk).
SIMPLIFIED, TAIWAN, HONG_KONG = "hans", "tw", "hk"
_OPENCC_CONFIG = {TAIWAN: "s2twp", HONG_KONG: "s2hk"}
# Written Cantonese, and characters whose Hong Kong form differs from the Taiwan one: a message
# with any of them reads as Hong Kong Traditional.
_HONG_KONG_MARKS = frozenset("嘅咗唔係冇喺佢啲睇嘢咁乜嚟俾畀哋嗰咩囉嘢瞓攞邊啱裏綫衞着啓纔")


@cache
def _opencc_converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def _convert(config: str, text: str) -> str:
    # OpenCC takes UTF-8: a lone surrogate (possible in a Telegram message) becomes "?".
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _opencc_converter(config).convert(text)


def detect_script(text: str) -> str | None:
    """``"tw"`` or ``"hk"`` for a message in Traditional characters, ``"hans"`` for one in
    Simplified, None when it has no character that tells them apart (digits, "你好")."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    traditional = sum(a != b for a, b in zip(text, _convert("t2s", text), strict=False))
    simplified = sum(a != b for a, b in zip(text, _convert("s2t", text), strict=False))
    if traditional > simplified:
        return HONG_KONG if not _HONG_KONG_MARKS.isdisjoint(text) else TAIWAN
    if simplified > traditional:
        return SIMPLIFIED
    return None


def to_script(reply: Reply, script: str | None) -> Reply:
    """The reply in ``script`` (its text and button labels; callback data unchanged)."""
    config = _OPENCC_CONFIG.get(script or "")
    if config is None:
        return reply
    rows = [[replace(b, label=_convert(config, b.label)) for b in row] for row in reply.buttons]
    return replace(reply, text_html=_convert(config, reply.text_html), buttons=rows)


def esc(text: str) -> str:
    """Escape text from the knowledge base or the user for Telegram HTML."""
    return html.escape(text, quote=False)


def to_plain_text(text_html: str) -> str:
    """Telegram HTML to plain text: tags dropped, entities unescaped."""
    return html.unescape(_TAG.sub("", text_html))


def plain(reply: Reply, start: int = 1) -> str:
    """A reply for a terminal: its text, then its buttons numbered from ``start``."""
    lines = [to_plain_text(reply.text_html)]
    buttons = reply.button_list()
    if buttons:
        lines.append("")
        lines.extend(f"  [{start + i}] {b.label}" for i, b in enumerate(buttons))
    return "\n".join(lines)


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Cut ``text`` before ``limit`` without breaking an HTML tag or entity."""
    at = limit
    lt, gt = text.rfind("<", 0, at), text.rfind(">", 0, at)
    if lt > gt:  # inside a tag
        at = lt
    amp, semi = text.rfind("&", 0, at), text.rfind(";", 0, at)
    if amp > semi and at - amp <= 10:  # inside an entity such as &amp;
        at = amp
    if at <= 0:
        at = limit
    return text[:at], text[at:]


def _pieces(text: str, limit: int) -> list[str]:
    """Paragraphs first, then lines, then hard cuts: each piece at most ``limit`` long."""
    out: list[str] = []
    for sep in ("\n\n", "\n"):
        if len(text) <= limit:
            break
        parts = text.split(sep)
        pieces = [p for p in [*(part + sep for part in parts[:-1]), parts[-1]] if p]
        # Only a real split recurses: "long paragraph\n\n" is one piece, cut by lines next.
        if len(pieces) > 1:
            for piece in pieces:
                out.extend(_pieces(piece, limit))
            return out
    while len(text) > limit:
        head, text = _cut(text, limit)
        out.append(head)
    out.append(text)
    return out


def split(reply: Reply, limit: int = MAX_MESSAGE_CHARS) -> list[Reply]:
    """Cut a long reply at paragraph boundaries into replies of at most ``limit`` characters.

    The buttons go under the last part; only the first part keeps ``edit``.
    """
    if len(reply.text_html) <= limit:
        return [reply]
    chunks: list[str] = []
    current = ""
    for piece in _pieces(reply.text_html, limit):
        if current and len(current) + len(piece) > limit:
            chunks.append(current)
            current = ""
        current += piece
    if current.strip():
        chunks.append(current)
    chunks = [c.strip("\n") for c in chunks if c.strip()]
    last = len(chunks) - 1
    return [
        replace(
            reply,
            text_html=chunk,
            buttons=reply.buttons if i == last else [],
            edit=reply.edit and i == 0,
        )
        for i, chunk in enumerate(chunks)
    ]
