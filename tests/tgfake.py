"""In-process stand-in for Telegram's network layer, for handler tests.

``RecordingRequest`` is a python-telegram-bot ``BaseRequest``: the real ``Bot`` and
``Application`` run unchanged and only the HTTP round trip is replaced. It records every Bot
API call and answers it the way the Bot API would (messages get ids, edits change stored
messages, files can be uploaded and fetched back). ``Harness`` builds real ``Update`` objects
(from JSON, as Telegram would send them) and feeds them through ``Application.process_update``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

BOT_ID = 777000
BOT_USERNAME = "jiebei_test_bot"
TOKEN = f"{BOT_ID}:TEST-token-abcdefghijklmnopqrstuvwxyz"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


class RecordingRequest(BaseRequest):
    """Answers Bot API calls in memory and records them."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self.fail: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        if "/file/bot" in url:
            file_path = url.rsplit("/", 1)[-1]
            return (200, self.files[file_path]) if file_path in self.files else (404, b"")
        api_method = url.rsplit("/", 1)[-1]
        params = dict(request_data.json_parameters) if request_data else {}
        for key, value in list(params.items()):
            if isinstance(value, str) and value[:1] in "[{":
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        files: dict[str, bytes] = {}
        if request_data is not None and request_data.contains_files:
            for name, item in request_data.multipart_data.items():
                files[name] = item[1] if isinstance(item, tuple) else item
        self.calls.append(Call(api_method, params, files))
        queued = self.fail.get(api_method)
        if queued:
            status, body = queued.pop(0)
            return status, json.dumps(body).encode()
        result = self._answer(api_method, params, files)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        msg = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "借呗助手",
                "username": BOT_USERNAME,
            },
            **extra,
        }
        if "reply_markup" in params:
            msg["reply_markup"] = params["reply_markup"]
        self.messages[(chat_id, msg["message_id"])] = msg
        return msg

    def _answer(self, method: str, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        if method == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "借呗助手",
                "username": BOT_USERNAME,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method == "sendMessage":
            return self._message(params, text=params["text"])
        if method == "sendDocument":
            content = next(iter(files.values()), b"")
            file_id = f"doc{len(self.files) + 1}"
            self.files[file_id] = content
            return self._message(
                params,
                document={
                    "file_id": file_id,
                    "file_unique_id": file_id,
                    "file_size": len(content),
                    "file_name": "knowledge.json",
                },
                caption=params.get("caption"),
            )
        if method in ("editMessageText", "editMessageReplyMarkup"):
            key = (int(params["chat_id"]), int(params["message_id"]))
            msg = self.messages.get(key)
            if msg is None:
                return True
            if "text" in params:
                msg["text"] = params["text"]
            msg.pop("reply_markup", None)
            if "reply_markup" in params:
                msg["reply_markup"] = params["reply_markup"]
            return msg
        if method == "getFile":
            file_id = params["file_id"]
            return {
                "file_id": file_id,
                "file_unique_id": file_id,
                "file_size": len(self.files.get(file_id, b"")),
                "file_path": file_id,
            }
        return True  # answerCallbackQuery, setMyCommands, sendChatAction, deleteMessage...

    # -- for assertions -------------------------------------------------------------------

    def sent(self, method: str = "sendMessage") -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def texts(self) -> list[str]:
        return [
            c.params.get("text", "")
            for c in self.calls
            if c.method in ("sendMessage", "editMessageText")
        ]

    def clear(self) -> None:
        self.calls.clear()


class Harness:
    """Feeds real ``Update`` objects through a real ``Application``."""

    def __init__(self, app: Application, request: RecordingRequest) -> None:
        self.app = app
        self.request = request
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100_000)

    def _user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"}

    def _chat(self, chat_id: int, chat_type: str) -> dict[str, Any]:
        return {"id": chat_id, "type": chat_type}

    async def feed(self, data: dict[str, Any]) -> None:
        data = {"update_id": next(self._update_ids), **data}
        await self.app.process_update(Update.de_json(data, self.app.bot))

    def message(
        self,
        user_id: int,
        text: str | None = None,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        **extra: Any,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self._chat(chat_id if chat_id is not None else user_id, chat_type),
            "from": self._user(user_id),
            **extra,
        }
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return msg

    async def send(self, user_id: int, text: str, **kw: Any) -> list[Call]:
        """A user sends text; returns the Bot API calls the bot made in answer."""
        start = len(self.request.calls)
        await self.feed({"message": self.message(user_id, text, **kw)})
        return self.request.calls[start:]

    async def send_message(self, user_id: int, **fields: Any) -> list[Call]:
        start = len(self.request.calls)
        await self.feed({"message": self.message(user_id, None, **fields)})
        return self.request.calls[start:]

    async def send_document(
        self,
        user_id: int,
        content: bytes,
        *,
        caption: str | None = None,
        file_name: str = "kb.json",
        reply_to: dict | None = None,
    ) -> list[Call]:
        file_id = f"user{len(self.request.files) + 1}"
        self.request.files[file_id] = content
        extra: dict[str, Any] = {
            "document": {
                "file_id": file_id,
                "file_unique_id": file_id,
                "file_name": file_name,
                "file_size": len(content),
            }
        }
        if caption is not None:
            extra["caption"] = caption
            if caption.startswith("/"):
                extra["caption_entities"] = [
                    {"type": "bot_command", "offset": 0, "length": len(caption.split()[0])}
                ]
        if reply_to is not None:
            extra["reply_to_message"] = reply_to
        start = len(self.request.calls)
        await self.feed({"message": self.message(user_id, None, **extra)})
        return self.request.calls[start:]

    async def press(self, user_id: int, message: dict[str, Any], data: str) -> list[Call]:
        """A user presses an inline button on ``message`` (a message the bot sent)."""
        start = len(self.request.calls)
        await self.feed(
            {
                "callback_query": {
                    "id": str(next(self._update_ids)),
                    "from": self._user(user_id),
                    "message": message,
                    "chat_instance": "ci",
                    "data": data,
                }
            }
        )
        return self.request.calls[start:]

    def last_message(self, chat_id: int) -> dict[str, Any]:
        """The latest message the bot sent to ``chat_id`` (current state)."""
        mine = [m for (c, _), m in self.request.messages.items() if c == chat_id]
        return mine[-1]


def buttons(call_or_message: Call | dict[str, Any]) -> list[tuple[str, str]]:
    """(label, callback_data) of every inline button of a sent message."""
    data = call_or_message.params if isinstance(call_or_message, Call) else call_or_message
    markup = data.get("reply_markup") or {}
    return [
        (b["text"], b.get("callback_data", ""))
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]
