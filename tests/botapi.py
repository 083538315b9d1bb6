"""A small, self-contained fake Telegram Bot API server for tests.

Standard library only.  It runs a :class:`http.server.ThreadingHTTPServer` on
``127.0.0.1`` in a background thread and speaks enough of the Bot API
(https://core.telegram.org/bots/api) for a python-telegram-bot (PTB) 22 bot to run
against it unchanged, either in the test process or as a separate process::

    with FakeBotAPI() as api:
        # bot: Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url)
        # or:  TELEGRAM_API_BASE_URL=api.base_url jiebei-bot run
        api.send_text(42, "/start")
        [reply] = api.wait_for_messages(42, 1)

Wire format
    PTB's ``HTTPXRequest`` POSTs to ``{base_url}{token}/{method}`` with
    ``application/x-www-form-urlencoded`` bodies (every value JSON-encoded, except
    plain strings which are sent raw) or, when uploading files,
    ``multipart/form-data``.  Other clients send ``application/json``; GET with a
    query string also works.  All of them are accepted; non-string fields arriving as
    text are JSON-decoded (see ``_STRING_FIELDS``).  Method names are
    case-insensitive, like the real API.

Responses
    ``{"ok": true, "result": ...}`` or
    ``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.
    Error descriptions follow Telegram's wording so that PTB raises the same
    exception classes it would raise in production (400 -> ``BadRequest``,
    403 -> ``Forbidden``, 409 -> ``Conflict``, 429 -> ``RetryAfter``,
    5xx -> ``NetworkError``, 401 -> ``InvalidToken``).

Faithfulness notes (things the real server does that this fake also does)
    * ``parse_mode`` HTML / MarkdownV2 / Markdown is parsed: stored/returned text is
      the plain text plus ``entities``; malformed markup gives
      ``400 Bad Request: can't parse entities: ...``.
    * text is trimmed; empty text -> ``message text is empty``; > 4096 characters
      (after entity parsing) -> ``message is too long``; captions > 1024.
    * ``callback_data`` must be 1-64 bytes (``BUTTON_DATA_INVALID``).
    * ``editMessageText``/``editMessageReplyMarkup`` without ``reply_markup`` remove
      the inline keyboard; an identical edit -> ``message is not modified``.
    * a callback query can be answered only once.
    * sending to a chat that never talked to the bot -> ``chat not found``.
    * only one ``getUpdates`` at a time: a newer poll terminates the older one with
      ``409 Conflict``; ``getUpdates`` while a webhook is set -> 409.
    * ``bot_command`` entities are produced only for ``/[A-Za-z0-9_]+(@name)?``,
      as in Telegram (``/帮助`` is plain text to Telegram, too).

Deviation on purpose: unknown methods give ``400 Bad Request: method not found``
(the real server answers ``404 Not Found``, which PTB turns into ``InvalidToken``);
pass ``unknown_method_status=404`` for the real behaviour.

Run ``python tests/botapi.py --port 0`` for a manual trial server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["ApiError", "FakeBotAPI"]

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024

# Parameters whose value is a plain string even when it looks like JSON ("123", "true").
# fmt: off
_STRING_FIELDS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "inline_message_id",
    "inline_query_id", "url", "data", "file_id", "action", "language_code", "secret_token",
    "ip_address", "certificate", "title", "description", "short_description", "name", "emoji",
    "query", "business_connection_id", "message_effect_id", "document", "photo", "sticker",
    "audio", "video", "voice", "animation", "thumbnail", "first_name", "last_name", "username",
    "phone_number", "vcard", "address", "result_id", "game_short_name", "error_message",
})
# fmt: on

# fmt: off
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
# fmt: on

_INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

_ABORT = object()  # handler result: drop the connection without answering


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": code, "description": ...}``."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


# --------------------------------------------------------------------------------------
# Text helpers and parse_mode parsers
# --------------------------------------------------------------------------------------


def _u16len(text: str) -> int:
    """Length in UTF-16 code units, the unit of MessageEntity offsets/lengths."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


class _EntityParseError(Exception):
    pass


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0  # UTF-16 units emitted so far
        self.entities: list[dict] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pos += _u16len(text)

    def entity(self, type_: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            ent = {"type": type_, "offset": start, "length": self.pos - start}
            ent.update({k: v for k, v in extra.items() if v is not None})
            self.entities.append(ent)

    def result(self) -> tuple[str, list[dict]]:
        ents = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), ents


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});")
_HTML_ATTR_RE = re.compile(r"""\s*([a-zA-Z][a-zA-Z0-9-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")


def _html_unescape(value: str) -> str:
    def repl(m: re.Match) -> str:
        body = m.group(1)
        if body.startswith(("#x", "#X")):
            return chr(int(body[2:], 16)) if int(body[2:], 16) < 0x110000 else m.group(0)
        if body.startswith("#"):
            return chr(int(body[1:])) if int(body[1:]) < 0x110000 else m.group(0)
        return _HTML_NAMED.get(body, m.group(0))

    return _HTML_ENTITY_RE.sub(repl, value)


def parse_html(src: str) -> tuple[str, list[dict]]:
    """Telegram ``parse_mode=HTML``: returns (plain text, entities) or raises."""
    out = _Builder()
    stack: list[dict] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "&":
            m = _HTML_ENTITY_RE.match(src, i)
            if m:
                out.add(_html_unescape(m.group(0)))
                i = m.end()
                continue
            out.add(c)
            i += 1
            continue
        if c != "<":
            j = i
            while j < n and src[j] not in "<&":
                j += 1
            out.add(src[i:j])
            i = j
            continue
        begin = _byte_offset(src, i)
        if src.startswith("</", i):
            j = i + 2
            while j < n and not src[j].isspace() and src[j] != ">":
                j += 1
            name = src[i + 2 : j].lower()
            if not stack:
                raise _EntityParseError(f"Unexpected end tag at byte offset {begin}")
            while j < n and src[j].isspace():
                j += 1
            if j >= n or src[j] != ">":
                raise _EntityParseError(f"Unclosed end tag at byte offset {begin}")
            top = stack.pop()
            if name != top["tag"]:
                raise _EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{top["tag"]}>", '
                    f'found "</{name}>"'
                )
            _html_close(out, top, stack)
            i = j + 1
            continue
        j = i + 1
        while j < n and not src[j].isspace() and src[j] != ">":
            j += 1
        if j >= n:
            raise _EntityParseError(f"Unclosed start tag at byte offset {begin}")
        name = src[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise _EntityParseError(f'Unsupported start tag "{name}" at byte offset {begin}')
        attrs: dict[str, str] = {}
        while True:
            while j < n and src[j].isspace():
                j += 1
            if j >= n:
                raise _EntityParseError(f"Unclosed start tag at byte offset {begin}")
            if src[j] == ">":
                break
            m = _HTML_ATTR_RE.match(src, j)
            if not m:
                raise _EntityParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {begin}'
                )
            value = m.group(2) or ""
            if value[:1] in "\"'":
                value = value[1:-1]
            attrs[m.group(1).lower()] = _html_unescape(value)
            j = m.end()
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _EntityParseError('Tag "span" must have class "tg-spoiler"')
        stack.append({"tag": name, "start": out.pos, "attrs": attrs, "language": None})
        i = j + 1
    if stack:
        raise _EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1]["tag"]}"'
        )
    return out.result()


def _html_close(out: _Builder, top: dict, stack: list[dict]) -> None:
    tag, start, attrs = top["tag"], top["start"], top["attrs"]
    kind = _HTML_TAGS[tag]
    if kind == "code" and stack and stack[-1]["tag"] == "pre":
        cls = attrs.get("class", "")
        if cls.startswith("language-"):
            stack[-1]["language"] = cls[len("language-") :]
        return  # <pre><code class=...> is a single pre entity
    if kind == "text_link":
        href = attrs.get("href", "")
        if href:
            out.entity("text_link", start, url=href)
        return
    if kind == "custom_emoji":
        out.entity("custom_emoji", start, custom_emoji_id=attrs.get("emoji-id"))
        return
    if kind == "pre":
        out.entity("pre", start, language=top["language"])
        return
    if kind == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    out.entity(kind, start)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(src: str) -> tuple[str, list[dict]]:
    """Telegram ``parse_mode=MarkdownV2``: returns (plain text, entities) or raises."""
    out = _Builder()
    stack: list[dict] = []
    quote: dict | None = None
    line_start = True
    i, n = 0, len(src)

    def reserved_error(ch: str) -> _EntityParseError:
        return _EntityParseError(
            f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
        )

    while i < n:
        c = src[i]
        in_code = bool(stack) and stack[-1]["type"] in ("code", "pre")
        if line_start:
            line_start = False
            if not in_code and c == ">":
                if quote is None:
                    quote = {"start": out.pos, "end": out.pos}
                i += 1
                continue
            if not in_code and quote is not None:
                _close_quote(out, quote)
                quote = None
        if c == "\\" and i + 1 < n and 0 < ord(src[i + 1]) <= 126:
            out.add(src[i + 1])
            i += 2
            continue
        reserved = frozenset("`") if in_code else _MDV2_RESERVED
        if c not in reserved:
            if c == "\n":
                if quote is not None:
                    quote["end"] = out.pos
                line_start = True
            out.add(c)
            i += 1
            continue
        top = stack[-1] if stack else None
        is_end = False
        if top is not None:
            t = top["type"]
            is_end = (
                (t == "bold" and c == "*")
                or (t == "italic" and c == "_")
                or (t == "underline" and src.startswith("__", i))
                or (t == "strikethrough" and c == "~")
                or (t == "spoiler" and src.startswith("||", i))
                or (t in ("text_link", "custom_emoji") and c == "]")
                or (t == "code" and c == "`")
                or (t == "pre" and src.startswith("```", i))
            )
        if not is_end:
            if in_code:
                raise reserved_error(c)
            begin = _byte_offset(src, i)
            lang = None
            if c == "_" and src.startswith("__", i):
                t, step = "underline", 2
            elif c == "_":
                t, step = "italic", 1
            elif c == "*":
                t, step = "bold", 1
            elif c == "~":
                t, step = "strikethrough", 1
            elif c == "|" and src.startswith("||", i):
                t, step = "spoiler", 2
            elif c == "[":
                t, step = "text_link", 1
            elif c == "!" and src.startswith("![", i):
                t, step = "custom_emoji", 2
            elif src.startswith("```", i):
                t, step = "pre", 3
                nl = src.find("\n", i + 3)
                close = src.find("```", i + 3)
                if nl != -1 and (close == -1 or nl < close):
                    lang = src[i + 3 : nl].strip() or None
                    step = nl + 1 - i
            elif c == "`":
                t, step = "code", 1
            else:
                raise reserved_error(c)
            stack.append({"type": t, "start": out.pos, "byte": begin, "language": lang})
            i += step
            continue
        stack.pop()
        t = top["type"]  # type: ignore[index]
        if t in ("text_link", "custom_emoji"):
            i += 1
            url = None
            if i < n and src[i] == "(":
                j = i + 1
                chars: list[str] = []
                while j < n and src[j] != ")":
                    if src[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(src[j])
                    j += 1
                if j >= n:
                    raise _EntityParseError(
                        f"Can't find end of a url at byte offset {_byte_offset(src, i)}"
                    )
                url = "".join(chars)
                i = j + 1
            if t == "custom_emoji":
                emoji_id = (url or "").partition("id=")[2] or None
                out.entity("custom_emoji", top["start"], custom_emoji_id=emoji_id)  # type: ignore[index]
            elif url:
                out.entity("text_link", top["start"], url=url)  # type: ignore[index]
            continue
        step = {"underline": 2, "spoiler": 2, "pre": 3}.get(t, 1)
        out.entity(t, top["start"], language=top.get("language"))  # type: ignore[index]
        i += step
    if stack:
        top = stack[-1]
        raise _EntityParseError(
            f"Can't find end of {_MDV2_NAMES[top['type']]} entity at byte offset {top['byte']}"
        )
    if quote is not None:
        quote["end"] = out.pos
        _close_quote(out, quote)
    return out.result()


def _close_quote(out: _Builder, quote: dict) -> None:
    length = quote["end"] - quote["start"]
    if length > 0:
        out.entities.append({"type": "blockquote", "offset": quote["start"], "length": length})


def parse_markdown(src: str) -> tuple[str, list[dict]]:
    """Telegram legacy ``parse_mode=Markdown``: returns (plain text, entities) or raises."""
    out = _Builder()
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.add(src[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            out.add(c)
            i += 1
            continue
        begin = _byte_offset(src, i)
        err = _EntityParseError(f"Can't find end of the entity starting at byte offset {begin}")
        start = out.pos
        if c == "[":
            close = src.find("]", i + 1)
            if close == -1:
                raise err
            out.add(src[i + 1 : close])
            if src.startswith("(", close + 1):
                end = src.find(")", close + 2)
                if end == -1:
                    raise err
                out.entity("text_link", start, url=src[close + 2 : end])
                i = end + 1
            else:
                i = close + 1
            continue
        if src.startswith("```", i):
            end = src.find("```", i + 3)
            if end == -1:
                raise err
            body, lang = src[i + 3 : end], None
            nl = body.find("\n")
            if nl != -1 and body[:nl].strip() and " " not in body[:nl].strip():
                lang, body = body[:nl].strip(), body[nl + 1 :]
            out.add(body)
            out.entity("pre", start, language=lang)
            i = end + 3
            continue
        end = src.find(c, i + 1)
        if end == -1:
            raise err
        out.add(src[i + 1 : end])
        out.entity({"_": "italic", "*": "bold", "`": "code"}[c], start)
        i = end + 1
    return out.result()


_WS = " \t\r\n"


def _trim(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Strip leading/trailing whitespace like Telegram does, fixing entity offsets."""
    lead = len(text) - len(text.lstrip(_WS))
    shift = _u16len(text[:lead])
    text = text.strip(_WS)
    total = _u16len(text)
    fixed = []
    for ent in entities:
        start = max(ent["offset"] - shift, 0)
        end = min(ent["offset"] + ent["length"] - shift, total)
        if end > start:
            fixed.append({**ent, "offset": start, "length": end - start})
    return text, fixed


def format_text(text: Any, parse_mode: Any, entities: Any) -> tuple[str, list[dict]]:
    """Apply ``parse_mode`` (or explicit ``entities``) and trim; raises ApiError."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = json.dumps(text) if not isinstance(text, int | float) else str(text)
    if isinstance(entities, list):
        return _trim(text, [dict(e) for e in entities if isinstance(e, dict)])
    mode = (parse_mode or "").strip().lower() if isinstance(parse_mode, str) else ""
    parsers: dict[str, Callable[[str], tuple[str, list[dict]]]] = {
        "html": parse_html,
        "markdownv2": parse_markdown_v2,
        "markdown": parse_markdown,
    }
    if mode and mode not in parsers:
        raise _bad_request(f"unsupported parse_mode {parse_mode}")
    if not mode:
        return _trim(text, [])
    try:
        plain, ents = parsers[mode](text)
    except _EntityParseError as exc:
        raise _bad_request(f"can't parse entities: {exc}") from None
    return _trim(plain, ents)


_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")


def command_entities(text: str) -> list[dict]:
    """The ``bot_command`` entity Telegram attaches to a message starting with a command."""
    m = _COMMAND_RE.match(text or "")
    if not m:
        return []
    return [{"type": "bot_command", "offset": 0, "length": _u16len(m.group(0))}]


# --------------------------------------------------------------------------------------
# HTTP body parsing
# --------------------------------------------------------------------------------------


def _decode_form_param(value: str) -> str:
    # httpx (HTML5 form encoding) escapes '"' as %22, control chars as %XX, '\' as '\\'.
    value = re.sub(
        r"%([01][0-9A-Fa-f]|22)",
        lambda m: chr(int(m.group(1), 16)),
        value,
    )
    return value.replace("\\\\", "\\")


def _disposition_params(header: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for m in re.finditer(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', header):
        key, raw = m.group(1).lower(), m.group(2).strip()
        if key.endswith("*"):  # RFC 5987: filename*=utf-8''%E6%8A%A5.txt
            charset, _, rest = raw.partition("''")
            params[key[:-1]] = unquote(rest, encoding=charset or "utf-8")
            continue
        if raw.startswith('"') and raw.endswith('"'):
            raw = _decode_form_param(raw[1:-1])
        params.setdefault(key, raw)
    return params


def parse_multipart(body: bytes, boundary: bytes) -> tuple[dict[str, Any], dict[str, dict]]:
    """Split a multipart/form-data body into (fields, files)."""
    fields: dict[str, Any] = {}
    files: dict[str, dict] = {}
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "surrogateescape").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disp = _disposition_params(headers.get("content-disposition", ""))
        name = disp.get("name")
        if name is None:
            continue
        if "filename" in disp:
            files[name] = {
                "filename": disp["filename"],
                "content_type": headers.get("content-type", "application/octet-stream"),
                "content": content,
            }
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


def parse_request(
    content_type: str, body: bytes, query: str = ""
) -> tuple[dict[str, Any], dict[str, dict]]:
    """Decode any Bot API request body into (params, files); raises ApiError."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    files: dict[str, dict] = {}
    mtype, _, rest = content_type.partition(";")
    mtype = mtype.strip().lower()
    if mtype == "application/json":
        try:
            data = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            raise _bad_request("can't parse JSON object") from None
        if not isinstance(data, dict):
            raise _bad_request("JSON object expected")
        params.update(data)
    elif mtype == "application/x-www-form-urlencoded":
        try:
            params.update(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            )
        except UnicodeDecodeError:
            raise _bad_request("request body is not valid UTF-8") from None
    elif mtype == "multipart/form-data":
        m = re.search(r'boundary="?([^";]+)"?', rest)
        if not m:
            raise _bad_request("multipart boundary is missing")
        fields, files = parse_multipart(body, m.group(1).encode("latin-1"))
        params.update(fields)
    elif body.strip():
        raise _bad_request(f"unsupported Content-Type {mtype!r}")
    for key, value in list(params.items()):
        if isinstance(value, str) and key not in _STRING_FIELDS:
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params, files


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeBotAPI/1.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes; without this, Nagle + delayed ACK
        # add ~40 ms to every request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.api._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.api._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.api.verbose:
            sys.stderr.write(f"[fake-botapi] {self.address_string()} {format % args}\n")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        outcome = self.server.api._process(self.path, self.headers.get("Content-Type", ""), body)
        if outcome is _ABORT:
            self.close_connection = True
            return
        status, content_type, payload, close = outcome
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: FakeBotAPI):
        self.api = api
        super().__init__(address, _Handler)


# --------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------


class FakeBotAPI:
    """Fake Telegram Bot API server; all public methods are thread-safe.

    Bot side: HTTP on ``base_url`` / ``base_file_url``.  Test side: the Python
    methods below (user actions, inspection, waiting, fault injection).
    """

    def __init__(
        self,
        token: str = "123456:TEST",
        *,
        port: int = 0,
        username: str = "jiebei_test_bot",
        first_name: str = "Jiebei Test Bot",
        unknown_method_status: int = 400,
        verbose: bool = False,
    ):
        self.token = token
        digits = re.match(r"\d+", token)
        self.bot_id = int(digits.group(0)) if digits else 1
        self.username = username
        self.first_name = first_name
        self.unknown_method_status = unknown_method_status
        self.verbose = verbose
        self.port = port
        self.host = "127.0.0.1"

        self._cond = threading.Condition()  # guards every attribute below
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stopping = False
        self._offline = False
        self._down: str | None = None

        self._update_seq = 1000
        self._updates: list[dict] = []
        self._poll_gen = 0
        self._poll_terminator = "other getUpdates request"
        self._active_polls = 0
        self._webhook: dict | None = None

        self._users: dict[int, dict] = {}
        self._chats: dict[int, dict] = {}
        self._blocked: set[int] = set()
        self._msg_seq: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._bot_sent: dict[int, list[int]] = {}
        self._bot_sent_all: list[tuple[int, int]] = []
        self._deleted: set[tuple[int, int]] = set()
        self._cursor: dict[int, int] = {}
        self._edits: dict[tuple[int, int], int] = {}
        self._edits_seen: dict[tuple[int, int], int] = {}
        self._reply_keyboards: dict[int, dict] = {}
        self._chat_actions: list[dict] = []

        self._calls: list[dict] = []
        self._call_cursor: dict[str, int] = {}
        self._callback_seq = 0
        self._callback_queries: dict[str, dict] = {}
        self._answers: list[dict] = []

        self._file_seq = 0
        self._files: dict[str, dict] = {}
        self._file_paths: dict[str, str] = {}
        self._commands: dict[tuple[str, str], list] = {}
        self._faults: list[dict] = []
        self._errors: list[str] = []

        self._handlers: dict[str, tuple[str, Callable[[dict, dict], Any]]] = {}
        for attr in dir(self):  # Bot API methods are the _m_<methodName> members
            if attr.startswith("_m_"):
                self._handlers[attr[3:].lower()] = (attr[3:], getattr(self, attr))

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """For ``Bot(base_url=...)`` / ``TELEGRAM_API_BASE_URL``: ``http://127.0.0.1:PORT/bot``."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Bot(base_file_url=...)``: ``http://127.0.0.1:PORT/file/bot``."""
        return f"http://{self.host}:{self.port}/file/bot"

    def start(self) -> FakeBotAPI:
        with self._cond:
            self._stopping = False
        self._listen()
        return self

    def stop(self) -> None:
        """Stop serving: wakes long polls and waiters, closes every connection."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._unlisten()

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_offline(self) -> None:
        """The server vanishes: listening socket closed (connection refused), open
        connections and pending long polls cut.  State (queued updates, messages) is
        kept.  Undo with :meth:`go_online`."""
        with self._cond:
            self._offline = True
            self._cond.notify_all()
        self._unlisten()

    def go_online(self) -> None:
        """Listen again on the same port after :meth:`go_offline`."""
        with self._cond:
            self._offline = False
        self._listen()

    def restart(self) -> None:
        """``go_offline()`` + ``go_online()``: same port, same state, all connections cut."""
        self.go_offline()
        self.go_online()

    def _listen(self) -> None:
        if self._httpd is not None:
            return
        last_error: OSError | None = None
        for _ in range(50):
            try:
                httpd = _Server((self.host, self.port), self)
                break
            except OSError as exc:  # port still held (only when rebinding a fixed port)
                last_error = exc
                with self._cond:
                    self._cond.wait(0.1)
        else:
            raise RuntimeError(f"cannot bind {self.host}:{self.port}: {last_error}")
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fake-botapi-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _unlisten(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._cond:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: int | None = 500,
        retry_after: int | None = None,
        delay: float | None = None,
        description: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` ("*" = any) fail.

        ``retry_after=N`` -> 429 "Too Many Requests: retry after N" with
        ``parameters.retry_after`` (PTB raises ``RetryAfter``).  ``status`` 5xx ->
        ``NetworkError``, 400 -> ``BadRequest``, 403 -> ``Forbidden``.  ``delay``
        seconds are waited before answering; with ``status=None`` the call then
        succeeds normally (a slow server).
        """
        if retry_after is not None:
            status = 429
            description = description or f"Too Many Requests: retry after {retry_after}"
        elif status is not None and description is None:
            description = {
                400: "Bad Request: injected failure",
                403: "Forbidden: bot was blocked by the user",
                409: "Conflict: terminated by other getUpdates request; make sure that "
                "only one bot instance is running",
                429: "Too Many Requests: retry after 1",
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }.get(status, f"Error {status}")
        with self._cond:
            self._faults.append(
                {
                    "method": method.lower(),
                    "remaining": count,
                    "status": status,
                    "retry_after": retry_after,
                    "delay": delay,
                    "description": description,
                }
            )

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    def set_down(self, down: bool = True, *, mode: str = "close") -> None:
        """While down every bot request fails at the network level: ``mode="close"``
        drops the connection without an answer, ``mode="502"`` answers an HTML
        502 Bad Gateway page (like a proxy in front of a dead server).  PTB raises
        ``NetworkError`` in both cases.  Pending long polls are cut immediately."""
        if mode not in ("close", "502"):
            raise ValueError("mode must be 'close' or '502'")
        with self._cond:
            self._down = mode if down else None
            self._cond.notify_all()

    def set_blocked(self, user_id: int, blocked: bool = True) -> None:
        """Sending to this user's private chat -> 403 "bot was blocked by the user"."""
        with self._cond:
            (self._blocked.add if blocked else self._blocked.discard)(user_id)

    # ------------------------------------------------------------------ user side

    def _user(
        self,
        user_id: int,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict:
        user = self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "User"}
        )
        if first_name is not None:
            user["first_name"] = first_name
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def _chat_for(self, user: dict, chat_id: int | None, chat_type: str) -> dict:
        if chat_type == "private":
            chat_id = user["id"] if chat_id is None else chat_id
            chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                chat["username"] = user["username"]
        else:
            if chat_id is None:
                chat_id = -(10**12) - user["id"] if chat_type == "supergroup" else -user["id"]
            chat = self._chats.get(chat_id) or {
                "id": chat_id,
                "type": chat_type,
                "title": f"Test {chat_type} {abs(chat_id)}",
            }
        self._chats[chat_id] = chat
        return chat

    def add_chat(self, chat_id: int, chat_type: str = "private", **fields: Any) -> dict:
        """Make a chat known (so the bot may send to it without the user writing first)."""
        with self._cond:
            chat = {"id": chat_id, "type": chat_type, **fields}
            if chat_type == "private":
                chat.setdefault("first_name", "User")
            else:
                chat.setdefault("title", f"Test {chat_type} {abs(chat_id)}")
            self._chats[chat_id] = chat
            return copy.deepcopy(chat)

    def _next_message_id(self, chat_id: int) -> int:
        self._msg_seq[chat_id] = self._msg_seq.get(chat_id, 0) + 1
        return self._msg_seq[chat_id]

    def _enqueue(self, kind: str, payload: dict) -> dict:
        self._update_seq += 1
        update = {"update_id": self._update_seq, kind: payload}
        self._updates.append(update)
        self._cond.notify_all()
        return update

    def _user_message(
        self,
        user_id: int,
        *,
        chat_id: int | None,
        chat_type: str,
        first_name: str | None,
        username: str | None,
        language_code: str | None,
        reply_to: dict | int | None,
        content: dict,
    ) -> dict:
        user = self._user(user_id, first_name, username, language_code)
        chat = self._chat_for(user, chat_id, chat_type)
        msg = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(user),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if reply_to is not None:
            rid = reply_to["message_id"] if isinstance(reply_to, dict) else int(reply_to)
            target = self._messages.get((chat["id"], rid))
            if target is None:
                raise ValueError(f"reply_to: no message {rid} in chat {chat['id']}")
            msg["reply_to_message"] = _strip_reply(target)
        msg.update(content)
        self._messages[(chat["id"], msg["message_id"])] = msg
        self._enqueue("message", msg)
        return copy.deepcopy(msg)

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        reply_to: dict | int | None = None,
        entities: list[dict] | None = None,
    ) -> dict:
        """The user sends ``text``; returns the Message dict that was queued as an update.

        ``first_name=None`` means "User" or whatever this user used before.  Group
        chats: ``chat_type="group"|"supergroup"`` with a negative ``chat_id`` (a default
        is derived from ``user_id``).  ``entities`` overrides the automatic bot_command.
        """
        content: dict[str, Any] = {"text": text}
        ents = command_entities(text) if entities is None else entities
        if ents:
            content["entities"] = ents
        with self._cond:
            return self._user_message(
                user_id,
                chat_id=chat_id,
                chat_type=chat_type,
                first_name=first_name,
                username=username,
                language_code=language_code,
                reply_to=reply_to,
                content=content,
            )

    def send_document(
        self,
        user_id: int,
        content: bytes,
        file_name: str,
        *,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str | None = None,
        username: str | None = None,
    ) -> dict:
        """The user uploads a document (downloadable through getFile); returns the Message."""
        with self._cond:
            info = self._store_file(
                bytes(content), kind="document", file_name=file_name, mime_type=mime_type
            )
            body: dict[str, Any] = {"document": _document_view(info)}
            if caption is not None:
                body["caption"] = caption
                ents = command_entities(caption)
                if ents:
                    body["caption_entities"] = ents
            return self._user_message(
                user_id,
                chat_id=chat_id,
                chat_type=chat_type,
                first_name=first_name,
                username=username,
                language_code=None,
                reply_to=None,
                content=body,
            )

    def send_photo(
        self,
        user_id: int,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> dict:
        """The user sends a photo (two PhotoSize variants, fake JPEG bytes)."""
        with self._cond:
            sizes = []
            for width, height in ((90, 67), (800, 600)):
                data = b"\xff\xd8\xff\xe0" + bytes(width) + b"\xff\xd9"
                info = self._store_file(data, kind="photo", mime_type="image/jpeg")
                sizes.append(
                    {
                        "file_id": info["file_id"],
                        "file_unique_id": info["file_unique_id"],
                        "file_size": len(data),
                        "width": width,
                        "height": height,
                    }
                )
            body: dict[str, Any] = {"photo": sizes}
            if caption is not None:
                body["caption"] = caption
            return self._user_message(
                user_id,
                chat_id=chat_id,
                chat_type=chat_type,
                first_name=None,
                username=None,
                language_code=None,
                reply_to=None,
                content=body,
            )

    def send_sticker(
        self,
        user_id: int,
        *,
        emoji: str = "👍",
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> dict:
        """The user sends a (regular, static) sticker."""
        with self._cond:
            info = self._store_file(
                b"RIFF\x00\x00\x00\x00WEBP", kind="sticker", mime_type="image/webp"
            )
            sticker = {
                "file_id": info["file_id"],
                "file_unique_id": info["file_unique_id"],
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": emoji,
                "file_size": info["file_size"],
            }
            return self._user_message(
                user_id,
                chat_id=chat_id,
                chat_type=chat_type,
                first_name=None,
                username=None,
                language_code=None,
                reply_to=None,
                content={"sticker": sticker},
            )

    def send_update(self, update: dict) -> dict:
        """Queue any raw Update payload, e.g. ``{"edited_message": {...}}``;
        ``update_id`` is assigned.  Returns the full update."""
        kinds = [k for k in update if k != "update_id"]
        if len(kinds) != 1:
            raise ValueError(f"an Update has exactly one payload field, got {kinds}")
        with self._cond:
            return copy.deepcopy(self._enqueue(kinds[0], copy.deepcopy(update[kinds[0]])))

    def press_button(
        self,
        user_id: int,
        message: dict,
        data: str | None = None,
        *,
        text: str | None = None,
        strict: bool = True,
        first_name: str | None = None,
        username: str | None = None,
    ) -> dict:
        """The user presses an inline button of a bot message (pick it by ``data`` or
        by button ``text``); queues a callback_query update and returns the
        CallbackQuery dict.  The current state of the message (edits applied) is used.
        With ``strict`` the button must exist on the message as it is now."""
        with self._cond:
            key = (message["chat"]["id"], message["message_id"])
            current = self._messages.get(key)
            if current is None or key in self._deleted:
                raise ValueError(f"message {key} does not exist (deleted?)")
            buttons = [
                b
                for row in (current.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            if text is not None:
                match = [b for b in buttons if b.get("text") == text]
                if not match or "callback_data" not in match[0]:
                    raise ValueError(f"no callback button with text {text!r}: {buttons}")
                data = match[0]["callback_data"]
            if data is None:
                raise ValueError("give data or text")
            if strict and data not in [b.get("callback_data") for b in buttons]:
                raise ValueError(f"message {key} has no button with data {data!r}: {buttons}")
            user = self._user(user_id, first_name, username)
            self._callback_seq += 1
            query_id = str(4_000_000_000_000_000_000 + self._callback_seq)
            query = {
                "id": query_id,
                "from": dict(user),
                "message": copy.deepcopy(current),
                "chat_instance": str(abs(key[0]) * 7919 + 1234567),
                "data": data,
            }
            self._callback_queries[query_id] = {"answered": False, "user_id": user_id}
            self._enqueue("callback_query", query)
            return copy.deepcopy(query)

    # ------------------------------------------------------------------ inspection

    def bot_messages(self, chat_id: int | None = None, *, include_deleted: bool = False) -> list:
        """Messages sent by the bot (current state, edits applied), oldest first."""
        with self._cond:
            keys = (
                self._bot_sent_all
                if chat_id is None
                else [(chat_id, mid) for mid in self._bot_sent.get(chat_id, [])]
            )
            return [
                copy.deepcopy(self._messages[k])
                for k in keys
                if include_deleted or k not in self._deleted
            ]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """Current state of any message (user's or bot's), None if unknown/deleted."""
        with self._cond:
            key = (chat_id, message_id)
            if key in self._deleted or key not in self._messages:
                return None
            return copy.deepcopy(self._messages[key])

    def deleted_messages(self) -> list[tuple[int, int]]:
        with self._cond:
            return sorted(self._deleted)

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[tuple]:
        """(method, params) of every finished bot request, in completion order.
        Uploaded files appear in params as ``{"filename", "mime_type", "size"}``.
        ``ok=True``/``False`` keeps only successful/failed ones."""
        with self._cond:
            return [
                (c["method"], copy.deepcopy(c["params"]))
                for c in self._calls
                if (method is None or c["method"].lower() == method.lower())
                and (ok is None or (c["status"] == 200) == ok)
            ]

    def requests(self) -> list[dict]:
        """Like :meth:`calls` with details: method, params, status, response."""
        with self._cond:
            return copy.deepcopy(self._calls)

    def callback_answers(self) -> list[dict]:
        """Params of every successful answerCallbackQuery, in order."""
        with self._cond:
            return copy.deepcopy(self._answers)

    def chat_actions(self, chat_id: int | None = None) -> list[str]:
        with self._cond:
            return [
                a["action"]
                for a in self._chat_actions
                if chat_id is None or a["chat_id"] == chat_id
            ]

    def reply_keyboard(self, chat_id: int) -> dict | None:
        """Last ReplyKeyboardMarkup / ReplyKeyboardRemove / ForceReply sent to the chat
        (Telegram does not echo those in the Message)."""
        with self._cond:
            return copy.deepcopy(self._reply_keyboards.get(chat_id))

    def commands(self, scope: dict | None = None, language_code: str = "") -> list | None:
        """Commands stored by setMyCommands for a scope (default scope if None)."""
        with self._cond:
            value = self._commands.get(_scope_key(scope, language_code))
            return copy.deepcopy(value)

    @property
    def webhook_url(self) -> str | None:
        with self._cond:
            return self._webhook["url"] if self._webhook else None

    def uploaded_file(self, file_id: str) -> bytes:
        """Bytes of a file known to the server (uploaded by the bot or by a user)."""
        with self._cond:
            return self._files[file_id]["content"]

    def pending_updates(self) -> list[dict]:
        """Updates not yet confirmed by the bot (getUpdates with a higher offset)."""
        with self._cond:
            return copy.deepcopy(self._updates)

    def server_errors(self) -> list[str]:
        """Tracebacks of crashes inside the fake itself (should stay empty)."""
        with self._cond:
            return list(self._errors)

    # ------------------------------------------------------------------ waiting

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        # caller holds self._cond
        if not self._cond.wait_for(lambda: predicate() or self._stopping, timeout):
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self._diag()}")
        if not predicate():
            raise RuntimeError(f"server stopped while waiting for {what}")

    def _diag(self) -> str:
        lines = ["recent bot requests:"]
        for c in self._calls[-12:]:
            brief = json.dumps(c["params"], ensure_ascii=False, default=str)[:200]
            lines.append(f"  {c['status']} {c['method']} {brief}")
        lines.append(f"pending updates: {len(self._updates)}, active polls: {self._active_polls}")
        return "\n".join(lines)

    def mark(self, chat_id: int) -> int:
        """Forget unseen bot messages in the chat: the next :meth:`wait_for_messages`
        only counts messages sent after this call.  Returns the marker position."""
        with self._cond:
            self._cursor[chat_id] = len(self._bot_sent.get(chat_id, []))
            return self._cursor[chat_id]

    def wait_for_messages(
        self, chat_id: int, count: int = 1, timeout: float = 10.0, *, since: int | None = None
    ) -> list[dict]:
        """Block until ``count`` bot messages for ``chat_id`` arrived that no previous
        wait returned (or sent after position ``since`` from :meth:`mark`); returns
        exactly those ``count`` (current state, edits applied; deleted ones included),
        oldest first.  Extra messages stay for the next call.  Raises TimeoutError."""
        with self._cond:
            start = self._cursor.get(chat_id, 0) if since is None else since
            self._wait(
                lambda: len(self._bot_sent.get(chat_id, [])) - start >= count,
                timeout,
                f"{count} new bot message(s) in chat {chat_id} "
                f"(have {len(self._bot_sent.get(chat_id, [])) - start})",
            )
            ids = self._bot_sent[chat_id][start : start + count]
            self._cursor[chat_id] = start + count
            return [copy.deepcopy(self._messages[(chat_id, mid)]) for mid in ids]

    def wait_for_edit(self, chat_id: int, message_id: int, timeout: float = 10.0) -> dict:
        """Block until the message was edited (text or markup) more often than when
        this was last called for it; returns its current state."""
        key = (chat_id, message_id)
        with self._cond:
            seen = self._edits_seen.get(key, 0)
            self._wait(lambda: self._edits.get(key, 0) > seen, timeout, f"an edit of {key}")
            self._edits_seen[key] = self._edits[key]
            return copy.deepcopy(self._messages[key])

    def wait_for_call(self, method: str, timeout: float = 10.0) -> dict:
        """Block until a bot request of ``method`` finished that no previous
        wait_for_call(method) returned; returns its params (recorded also when failed)."""
        low = method.lower()
        with self._cond:
            start = self._call_cursor.get(low, 0)

            def matching() -> list[dict]:
                return [c for c in self._calls if c["method"].lower() == low]

            self._wait(lambda: len(matching()) > start, timeout, f"a {method} call")
            self._call_cursor[low] = start + 1
            return copy.deepcopy(matching()[start]["params"])

    def wait_until_polling(self, timeout: float = 10.0) -> None:
        """Block until some client is inside a getUpdates long poll (bot is up)."""
        with self._cond:
            self._wait(lambda: self._active_polls > 0, timeout, "a getUpdates long poll")

    def wait_for_updates_consumed(self, timeout: float = 10.0) -> None:
        """Block until the bot confirmed every queued update (offset moved past it)."""
        with self._cond:
            self._wait(lambda: not self._updates, timeout, "all updates to be confirmed")

    async def wait_for_messages_async(self, *args: Any, **kwargs: Any) -> list[dict]:
        """:meth:`wait_for_messages` without blocking the event loop (in-process bots)."""
        return await asyncio.to_thread(self.wait_for_messages, *args, **kwargs)

    async def wait_for_edit_async(self, *args: Any, **kwargs: Any) -> dict:
        return await asyncio.to_thread(self.wait_for_edit, *args, **kwargs)

    async def wait_for_call_async(self, *args: Any, **kwargs: Any) -> dict:
        return await asyncio.to_thread(self.wait_for_call, *args, **kwargs)

    async def wait_until_polling_async(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.wait_until_polling, timeout)

    async def wait_for_updates_consumed_async(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.wait_for_updates_consumed, timeout)

    # ------------------------------------------------------------------ request handling

    def _process(self, raw_path: str, content_type: str, body: bytes) -> Any:
        with self._cond:
            down = self._down
        if down == "close":
            return _ABORT
        if down == "502":
            page = b"<html><head><title>502 Bad Gateway</title></head></html>"
            return 502, "text/html", page, True
        split = urlsplit(raw_path)
        path = unquote(split.path)
        if path.startswith("/file/bot"):
            return self._serve_file(path[len("/file/bot") :])
        if not path.startswith("/bot"):
            return _json(404, ApiError(404, "Not Found").payload())
        token, _, method = path[len("/bot") :].partition("/")
        if token != self.token:
            return _json(401, ApiError(401, "Unauthorized").payload())
        if not method or "/" in method:
            return _json(404, ApiError(404, "Not Found").payload())
        try:
            params, files = parse_request(content_type, body, split.query)
        except ApiError as exc:
            self._record(method, {}, exc.code, exc.payload())
            return _json(exc.code, exc.payload())
        return self._call(method, params, files)

    def _call(self, method: str, params: dict, files: dict) -> Any:
        canonical, handler = self._handlers.get(method.lower(), (method, None))
        log_params = dict(params)
        for name, f in files.items():
            log_params[name] = {
                "filename": f["filename"],
                "mime_type": f["content_type"],
                "size": len(f["content"]),
            }
        with self._cond:
            fault = self._take_fault(canonical)
            if fault and fault["delay"]:
                deadline = time.monotonic() + fault["delay"]
                while not (self._stopping or self._offline or self._down):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping or self._offline or self._down:
                    return _ABORT
            if fault and fault["status"] is not None:
                params_ = {"retry_after": fault["retry_after"]} if fault["retry_after"] else None
                err = ApiError(fault["status"], fault["description"], params_)
                self._record(canonical, log_params, err.code, err.payload())
                return _json(err.code, err.payload())
            try:
                if handler is None:
                    desc = "Bad Request: method not found"
                    if self.unknown_method_status == 404:
                        desc = "Not Found"  # what the real server says
                    raise ApiError(self.unknown_method_status, desc)
                result = handler(params, files)
                if result is _ABORT:
                    return _ABORT
                status, payload = 200, {"ok": True, "result": result}
            except ApiError as exc:
                status, payload = exc.code, exc.payload()
            except Exception:
                tb = traceback.format_exc()
                self._errors.append(tb)
                sys.stderr.write(f"[fake-botapi] internal error in {canonical}:\n{tb}")
                status = 500
                payload = ApiError(500, "Internal Server Error").payload()
            self._record(canonical, log_params, status, payload)
            return _json(status, payload)

    def _take_fault(self, method: str) -> dict | None:
        for fault in self._faults:
            if fault["method"] in ("*", method.lower()) and fault["remaining"] > 0:
                fault["remaining"] -= 1
                if fault["remaining"] == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _record(self, method: str, params: dict, status: int, response: dict) -> None:
        with self._cond:
            self._calls.append(
                {
                    "method": method,
                    "params": copy.deepcopy(params),
                    "status": status,
                    "response": copy.deepcopy(response),
                }
            )
            self._cond.notify_all()

    def _serve_file(self, rest: str) -> Any:
        token, _, file_path = rest.partition("/")
        if token != self.token:
            return _json(401, ApiError(401, "Unauthorized").payload())
        with self._cond:
            file_id = self._file_paths.get(file_path)
            info = self._files.get(file_id) if file_id else None
            if info is None:
                return _json(404, ApiError(404, "Not Found").payload())
            return 200, info["mime_type"] or "application/octet-stream", info["content"], False

    # ------------------------------------------------------------------ helpers (lock held)

    def _bot_user(self) -> dict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def _resolve_chat(self, params: dict, *, for_sending: bool = True) -> dict:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        chat = None
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            chat = next((c for c in self._chats.values() if c.get("username") == chat_id[1:]), None)
        else:
            try:
                chat = self._chats.get(int(chat_id))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise _bad_request("chat not found")
        if for_sending and chat["type"] == "private" and chat["id"] in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _find_message(self, params: dict, missing: str) -> tuple[tuple[int, int], dict]:
        if params.get("inline_message_id"):
            raise _bad_request("MESSAGE_ID_INVALID")
        chat = self._resolve_chat(params, for_sending=False)
        try:
            message_id = int(params.get("message_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _bad_request("message identifier is not specified") from None
        key = (chat["id"], message_id)
        msg = self._messages.get(key)
        if msg is None or key in self._deleted:
            raise _bad_request(missing)
        return key, msg

    def _check_reply_markup(self, markup: Any) -> dict | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad_request(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not button.get("text"):
                        raise _bad_request(
                            "can't parse inline keyboard button: Text buttons "
                            "are unallowed in the inline keyboard"
                        )
                    if not any(k in button for k in _INLINE_BUTTON_ACTIONS):
                        raise _bad_request(
                            "can't parse inline keyboard button: Text buttons "
                            "are unallowed in the inline keyboard"
                        )
                    if "callback_data" in button:
                        data = button["callback_data"]
                        size = len(str(data).encode("utf-8"))
                        if not isinstance(data, str) or not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                            raise _bad_request("BUTTON_DATA_INVALID")
                    if "url" in button and not re.match(
                        r"^(https?|tg)://[^\s]+$", str(button["url"])
                    ):
                        raise _bad_request(
                            f"inline keyboard button URL '{button['url']}' is invalid"
                        )
        return markup

    def _reply_target(self, params: dict, chat: dict) -> dict | None:
        rp = params.get("reply_parameters")
        mid = params.get("reply_to_message_id")
        allow = params.get("allow_sending_without_reply")
        if isinstance(rp, dict):
            mid = rp.get("message_id")
            allow = rp.get("allow_sending_without_reply", allow)
        if mid in (None, ""):
            return None
        target = self._messages.get((chat["id"], int(mid)))
        if target is None or (chat["id"], int(mid)) in self._deleted:
            if allow:
                return None
            raise _bad_request("message to be replied not found")
        return _strip_reply(target)

    def _new_bot_message(self, chat: dict, params: dict, content: dict) -> dict:
        markup = self._check_reply_markup(params.get("reply_markup"))
        reply = self._reply_target(params, chat)
        msg: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "from": self._bot_user(),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if reply is not None:
            msg["reply_to_message"] = reply
        msg.update(content)
        if markup is not None:
            if "inline_keyboard" in markup:
                msg["reply_markup"] = markup
            else:
                self._reply_keyboards[chat["id"]] = markup
        key = (chat["id"], msg["message_id"])
        self._messages[key] = msg
        self._bot_sent.setdefault(chat["id"], []).append(msg["message_id"])
        self._bot_sent_all.append(key)
        self._cond.notify_all()
        return copy.deepcopy(msg)

    def _store_file(
        self,
        content: bytes,
        *,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> dict:
        self._file_seq += 1
        seq = self._file_seq
        prefix = {
            "document": "BQACAgIAAxkBAAI",
            "photo": "AgACAgIAAxkBAAI",
            "sticker": "CAACAgIAAxkBAAI",
        }.get(kind, "BAACAgIAAxkBAAI")
        ext = ""
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1][:10]
        elif kind == "photo":
            ext = ".jpg"
        elif kind == "sticker":
            ext = ".webp"
        info = {
            "file_id": f"{prefix}{seq:06d}F{self.bot_id}",
            "file_unique_id": f"AgAD{seq:06d}",
            "file_size": len(content),
            "file_path": f"{kind}s/file_{seq}{ext}",
            "file_name": file_name,
            "mime_type": mime_type,
            "content": content,
        }
        self._files[info["file_id"]] = info
        self._file_paths[info["file_path"]] = info["file_id"]
        return info

    # ------------------------------------------------------------------ Bot API methods
    # Each runs with self._cond held and returns the "result" or raises ApiError.

    def _m_getMe(self, p: dict, f: dict) -> dict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_getUpdates(self, p: dict, f: dict) -> Any:
        if self._webhook:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is "
                "active; use deleteWebhook to delete the webhook first",
            )
        try:
            offset = int(p.get("offset") or 0)
            limit = int(p.get("limit") or 100)
            timeout = float(p.get("timeout") or 0)
        except (TypeError, ValueError):
            raise _bad_request("wrong parameter in getUpdates") from None
        limit = min(max(limit, 1), 100)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_gen += 1
        self._poll_terminator = "other getUpdates request"
        gen = self._poll_gen
        self._cond.notify_all()
        deadline = time.monotonic() + max(timeout, 0)
        self._active_polls += 1
        self._cond.notify_all()
        try:
            while True:
                if self._stopping or self._offline or self._down:
                    return _ABORT
                if gen != self._poll_gen:
                    raise ApiError(
                        409,
                        f"Conflict: terminated by {self._poll_terminator}; make sure that "
                        "only one bot instance is running",
                    )
                if self._updates:
                    return copy.deepcopy(self._updates[:limit])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
        finally:
            self._active_polls -= 1

    def _m_setWebhook(self, p: dict, f: dict) -> bool:
        url = p.get("url") or ""
        if url and not str(url).startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = {k: v for k, v in p.items() if k != "certificate"} if url else None
        self._poll_gen += 1  # a running long poll ends
        self._poll_terminator = "setWebhook request"
        self._cond.notify_all()
        return True

    def _m_deleteWebhook(self, p: dict, f: dict) -> bool:
        self._webhook = None
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self._cond.notify_all()
        return True

    def _m_getWebhookInfo(self, p: dict, f: dict) -> dict:
        return {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _m_logOut(self, p: dict, f: dict) -> bool:
        return True

    def _m_close(self, p: dict, f: dict) -> bool:
        return True

    def _m_getChat(self, p: dict, f: dict) -> dict:
        chat = self._resolve_chat(p, for_sending=False)
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11}

    def _m_sendMessage(self, p: dict, f: dict) -> dict:
        chat = self._resolve_chat(p)
        text, entities = format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        if not text:
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        lpo = p.get("link_preview_options")
        if isinstance(lpo, dict) and lpo:
            content["link_preview_options"] = lpo
        return self._new_bot_message(chat, p, content)

    def _m_editMessageText(self, p: dict, f: dict) -> dict:
        key, msg = self._find_message(p, "message to edit not found")
        if msg["from"]["id"] != self.bot_id:
            raise _bad_request("message can't be edited")
        if "text" not in msg:
            raise _bad_request("there is no text in the message to edit")
        text, entities = format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        if not text:
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG")
        markup = self._check_reply_markup(p.get("reply_markup"))
        if (
            text == msg["text"]
            and entities == msg.get("entities", [])
            and markup == msg.get("reply_markup")
        ):
            raise _bad_request(
                "message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        msg["text"] = text
        msg.pop("entities", None)
        if entities:
            msg["entities"] = entities
        self._apply_markup(msg, markup)
        return self._edited(key, msg)

    def _m_editMessageReplyMarkup(self, p: dict, f: dict) -> dict:
        key, msg = self._find_message(p, "message to edit not found")
        if msg["from"]["id"] != self.bot_id:
            raise _bad_request("message can't be edited")
        markup = self._check_reply_markup(p.get("reply_markup"))
        if markup == msg.get("reply_markup"):
            raise _bad_request(
                "message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        self._apply_markup(msg, markup)
        return self._edited(key, msg)

    def _apply_markup(self, msg: dict, markup: dict | None) -> None:
        msg.pop("reply_markup", None)
        if markup is not None and "inline_keyboard" in markup:
            msg["reply_markup"] = markup

    def _edited(self, key: tuple[int, int], msg: dict) -> dict:
        msg["edit_date"] = int(time.time())
        self._edits[key] = self._edits.get(key, 0) + 1
        self._cond.notify_all()
        return copy.deepcopy(msg)

    def _m_deleteMessage(self, p: dict, f: dict) -> bool:
        key, _msg = self._find_message(p, "message to delete not found")
        self._deleted.add(key)
        self._cond.notify_all()
        return True

    def _m_answerCallbackQuery(self, p: dict, f: dict) -> bool:
        qid = str(p.get("callback_query_id") or "")
        state = self._callback_queries.get(qid)
        if state is None or state["answered"]:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = p.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        state["answered"] = True
        self._answers.append(copy.deepcopy(p))
        self._cond.notify_all()
        return True

    def _m_sendChatAction(self, p: dict, f: dict) -> bool:
        chat = self._resolve_chat(p)
        action = p.get("action")
        if action not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self._chat_actions.append({"chat_id": chat["id"], "action": action})
        return True

    def _commands_key(self, p: dict) -> tuple[str, str]:
        scope = p.get("scope")
        if scope is not None and not (isinstance(scope, dict) and "type" in scope):
            raise _bad_request("can't parse BotCommandScope JSON object")
        return _scope_key(scope, str(p.get("language_code") or ""))

    def _m_setMyCommands(self, p: dict, f: dict) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        for cmd in commands:
            name = cmd.get("command", "") if isinstance(cmd, dict) else ""
            desc = cmd.get("description", "") if isinstance(cmd, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(name)):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(desc)) <= 256:
                raise _bad_request("command description is empty")
        key = self._commands_key(p)
        if commands:
            self._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self._commands.pop(key, None)
        return True

    def _m_deleteMyCommands(self, p: dict, f: dict) -> bool:
        self._commands.pop(self._commands_key(p), None)
        return True

    def _m_getMyCommands(self, p: dict, f: dict) -> list:
        return copy.deepcopy(self._commands.get(self._commands_key(p), []))

    def _m_sendDocument(self, p: dict, f: dict) -> dict:
        chat = self._resolve_chat(p)
        doc = p.get("document")
        upload = None
        if isinstance(doc, str) and doc.startswith("attach://"):
            upload = f.get(doc[len("attach://") :])
        elif "document" in f:
            upload = f["document"]
        if upload is not None:
            if not upload["content"]:
                raise _bad_request("file must be non-empty")
            if len(upload["content"]) > MAX_UPLOAD_BYTES:
                raise ApiError(413, "Request Entity Too Large")
            info = self._store_file(
                upload["content"],
                kind="document",
                file_name=upload["filename"] or "document",
                mime_type=upload["content_type"],
            )
        elif isinstance(doc, str) and doc:
            info = self._files.get(doc)
            if info is None:
                raise _bad_request("wrong file identifier/HTTP URL specified")
        else:
            raise _bad_request("there is no document in the request")
        content: dict[str, Any] = {"document": _document_view(info)}
        if p.get("caption") not in (None, ""):
            caption, ents = format_text(
                p.get("caption"), p.get("parse_mode"), p.get("caption_entities")
            )
            if len(caption) > MAX_CAPTION_LENGTH:
                raise _bad_request("message caption is too long")
            if caption:
                content["caption"] = caption
            if ents:
                content["caption_entities"] = ents
        return self._new_bot_message(chat, p, content)

    def _m_getFile(self, p: dict, f: dict) -> dict:
        info = self._files.get(str(p.get("file_id") or ""))
        if info is None:
            raise _bad_request("invalid file_id")
        if info["file_size"] > MAX_DOWNLOAD_BYTES:
            raise _bad_request("file is too big")
        return {
            "file_id": info["file_id"],
            "file_unique_id": info["file_unique_id"],
            "file_size": info["file_size"],
            "file_path": info["file_path"],
        }


def _json(status: int, payload: dict) -> tuple[int, str, bytes, bool]:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return status, "application/json", body, False


def _scope_key(scope: dict | None, language_code: str = "") -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""


def _strip_reply(msg: dict) -> dict:
    reply = copy.deepcopy(msg)
    reply.pop("reply_to_message", None)
    return reply


def _document_view(info: dict) -> dict:
    doc = {
        "file_id": info["file_id"],
        "file_unique_id": info["file_unique_id"],
        "file_size": info["file_size"],
    }
    if info.get("file_name"):
        doc["file_name"] = info["file_name"]
    if info.get("mime_type"):
        doc["mime_type"] = info["mime_type"]
    return doc


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server for manual trials")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--token", default="123456:TEST")
    parser.add_argument("--user-id", type=int, default=1000, help="sender of stdin lines")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)
    api = FakeBotAPI(args.token, port=args.port, verbose=args.verbose).start()
    print(api.port, flush=True)
    print(
        f"# TELEGRAM_BOT_TOKEN={api.token} TELEGRAM_API_BASE_URL={api.base_url}\n"
        f"# each stdin line is sent as a message from user {args.user_id}; Ctrl+C stops",
        file=sys.stderr,
        flush=True,
    )

    def printer() -> None:
        while True:
            try:
                msg = api.wait_for_messages(args.user_id, 1, timeout=3600)[0]
            except (TimeoutError, RuntimeError):
                return
            body = msg.get("text") or msg.get("caption") or json.dumps(msg, ensure_ascii=False)
            print(f"<bot> {body}", flush=True)

    threading.Thread(target=printer, daemon=True).start()
    try:
        for line in sys.stdin:
            if line.strip():
                api.send_text(args.user_id, line.rstrip("\n"))
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    _main()
