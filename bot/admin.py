"""Admin commands: the knowledge base edited from Telegram, safely.

Who may: the user ids in ``Settings.admin_ids``, in a private chat only. Anyone else gets one
line that says nothing about the knowledge base, nothing changes, and the attempt is logged at
WARNING (user id and command, never a token).

How a write goes: ``kb.write`` (one store transaction, then the matcher is rebuilt, so the
change is live at once) on a worker thread, actor ``tg:<user id>``. Then the safety net:
``kb.displaced_by`` names examples of other entries that the edit pulled over, and the admin
gets an undo button. ``/delete`` and ``/import`` first show what would happen and wait for a
button; the pending confirmation is kept per admin under a random token and expires.

Callback data, all starting ``a:`` (the user conversation ignores them), at most 64 bytes:

- ``a:del:TOKEN`` / ``a:imp:TOKEN`` confirm a pending delete / import; ``a:no:TOKEN`` cancels.
- ``a:undo:CHANGE_ID`` takes back that change, only while it is still the latest one.
- ``a:as:QUESTION_ID:SLUG`` adds an unmatched question as an example of SLUG and files its
  look-alikes with it.

The handlers sit in group ``ADMIN_GROUP`` (before the user conversation) and stop further
handlers, so an admin command, or a refusal, is never also answered as a user question.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from rapidfuzz import fuzz, process
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ChatType, ParseMode
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from knowledge.base import Displaced, KnowledgeBase
from knowledge.entries import (
    CAUSE_SLUGS,
    KINDS,
    MAX_EXAMPLE_CHARS,
    SLUG_RE,
    TEXT_FIELDS,
    DocumentError,
    Entry,
    clean_text,
    parse_document,
)
from knowledge.matcher import Matcher
from knowledge.store import Change, Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = ContextTypes.DEFAULT_TYPE

# -- texts (HTML; placeholders are escaped before formatting) ------------------------------

REFUSED = "此命令仅限管理员使用。"
STALE = "这个确认已失效（过期或不属于你），未做任何修改。"
UNKNOWN_BUTTON = "这个按钮已失效，未做任何修改。"
NOT_CHANGED = "未修改：{reason}"
NO_ENTRY = "没有条目 <code>{slug}</code>，未做任何修改。用 /entries 查看全部。"
BAD_SLUG = "条目名 <code>{slug}</code> 无效：只能用小写字母、数字和下划线，2–40 个字符。"
ENTRY_EXISTS = "条目 <code>{slug}</code> 已存在，未做任何修改。"
UNKNOWN_FIELD = "没有字段 <code>{field}</code>，可改：title、explanation、solution、kind。"
TOO_LONG = "{what}太长（{n} 字，上限 {limit}），未做任何修改。"
USAGE = {
    "entries": "用法：/entries [页码]",
    "entry": "用法：/entry SLUG",
    "add": "用法：/add SLUG 标题",
    "set": "用法：/set SLUG 字段 内容\n字段：title、explanation、solution、kind（"
    + "、".join(KINDS)
    + "）",
    "example": "用法：/example SLUG 示例句子",
    "unexample": "用法：/unexample SLUG 示例句子",
    "delete": "用法：/delete SLUG",
    "test": "用法：/test 要测试的句子",
    "import": "用法：发送 JSON 或 YAML 文件并在说明里写 /import，或回复一个文件发送 /import",
    "history": "用法：/history [SLUG] [页码]",
    "stats": "用法：/stats [天数]，例如 /stats 30",
}

ENTRIES_HEAD = "<b>条目</b>：共 {n} 条（第 {page}/{pages} 页）"
ENTRIES_NEXT = "下一页：/entries {page}"
ENTRY_EXAMPLES_MORE = "……另有 {n} 条示例（/export 可看全部）"
ADDED = (
    "已新建 <code>{slug}</code>「{title}」。\n"
    "用 /set {slug} explanation …、/example {slug} … 补全（没有示例时匹配不到它）。"
)
SET_DONE = "已修改 <code>{slug}</code>.{field}：\n{old}\n→ {new}"
EXAMPLE_ADDED = "已为 <code>{slug}</code> 添加示例「{phrase}」（共 {n} 条），立即生效。"
EXAMPLE_ELSEWHERE = "注意：这句现在匹配到 {now}，不是 <code>{slug}</code>（可用 /test 查看）。"
EXAMPLE_REMOVED = "已从 <code>{slug}</code> 删除示例「{phrase}」（剩 {n} 条）。"
DELETE_ASK = "确定删除 <code>{slug}</code>「{title}」（{n} 条示例）吗？"
DELETED = "已删除 <code>{slug}</code>「{title}」。可用 /undo 撤销。"
CANCELLED = "已取消，未做任何修改。"
BUTTON_CONFIRM_DELETE = "确认删除"
BUTTON_CONFIRM_IMPORT = "确认导入"
BUTTON_CANCEL = "取消"
BUTTON_UNDO = "撤销这次修改"
DISPLACED = "⚠️ 这次修改后，其他条目的 {n} 条示例改为匹配 <code>{slug}</code>："
DISPLACED_MORE = "……共 {n} 条"
TEST_HEAD = "<b>测试</b>「{text}」"
TEST_TOKENS = "分词：{tokens}"
TEST_RESULT = "结果：{result}"
TEST_NONE = "未匹配（最高分低于 {threshold:g}）"
TEST_AMBIGUOUS = "（与第二名接近，会请用户选择）"
TEST_MARGIN = "前两名差距：{margin:.1f}"
EXPORT_CAPTION = "知识库：{n} 条条目，revision {revision}"
IMPORT_TOO_LARGE = "文件太大（上限 {limit} MB），未做任何修改。"
IMPORT_NOT_UTF8 = "文件不是 UTF-8 文本，未做任何修改。"
IMPORT_REFUSED = "导入被拒绝，未做任何修改：{reason}"
IMPORT_SAME = "文件与当前知识库相同，无需导入。"
IMPORT_HEAD = "<b>导入预览</b>（{name}，{n} 条条目）"
IMPORT_ADDED = "新增 {n}：{slugs}"
IMPORT_CHANGED = "修改 {n}：{slugs}"
IMPORT_REMOVED = "删除 {n}：{slugs}"
IMPORT_REORDERED = "条目顺序有变化"
IMPORT_CORE = "⚠️ 将删除核心条目：{slugs}"
IMPORT_ASK = "确认后整体替换知识库（可用 /undo 撤销）。"
IMPORT_MOVED_ON = "预览之后知识库又被修改过，未导入。请重新发送 /import。"
IMPORTED = "已导入 {n} 条条目（新增 {added}，修改 {changed}，删除 {removed}）。可用 /undo 撤销。"
HISTORY_HEAD = "<b>修改记录</b>{about}（第 {page} 页）"
HISTORY_NONE = "没有修改记录。"
HISTORY_NEXT = "更早：/history {args}"
HISTORY_UNDONE = "（已撤销）"
UNDONE = "已撤销 #{id}（{actor}，{at}）：{detail}"
UNDO_NOTHING = "没有可撤销的修改。"
UNDO_STALE = "这次修改之后又有新的修改，未撤销。请用 /history 查看，/undo 逐步撤销。"
UNMATCHED_NONE = "没有待处理的未匹配问题。"
UNMATCHED_HEAD = "<b>未匹配的问题</b>：{n} 条，{groups} 组（显示前 {shown} 组）"
UNMATCHED_ALIKE = "   相似：{texts}"
UNMATCHED_CANDIDATES = "   候选：{candidates}"
UNMATCHED_NO_CANDIDATE = "   候选：无（可用 /example 手动添加）"
UNMATCHED_HINT = "点按钮把这组问题归入该条目（第一句成为示例）。"
ASSIGNED = "已将 {n} 条问题归入 <code>{slug}</code>，示例「{phrase}」立即生效。"
ASSIGNED_KNOWN = "已将 {n} 条问题归入 <code>{slug}</code>（「{phrase}」已是示例）。"
STATS_HEAD = "<b>统计</b>：最近 {days} 天"
STATS_TOTAL = "提问 {total}，未匹配 {unmatched}（{share:.1f}%）"
STATS_INTENTS = "<b>按条目</b>"
STATS_FEEDBACK = "<b>反馈</b>（有帮助 / 没帮助）"
STATS_EMPTY = "这段时间没有提问。"
TRUNCATED = "……（内容过长，已截断）"

ADMIN_COMMANDS: list[tuple[str, str]] = [
    ("entries", "列出条目：/entries [页码]"),
    ("entry", "查看条目：/entry SLUG"),
    ("add", "新建条目：/add SLUG 标题"),
    ("set", "修改字段：/set SLUG 字段 内容"),
    ("example", "添加示例：/example SLUG 句子"),
    ("unexample", "删除示例：/unexample SLUG 句子"),
    ("delete", "删除条目（需确认）：/delete SLUG"),
    ("test", "测试匹配：/test 句子"),
    ("export", "导出知识库文件"),
    ("import", "导入知识库：文件说明写 /import"),
    ("history", "修改记录：/history [SLUG]"),
    ("undo", "撤销上一次修改"),
    ("unmatched", "未匹配的问题，一键归类"),
    ("stats", "统计：/stats [天数]"),
]

# -- limits ------------------------------------------------------------------------------

ADMIN_GROUP = -1
MAX_MESSAGE = 4096
MAX_PARTS = 4  # a longer reply is cut, with TRUNCATED at the end
PENDING_TTL = 600.0  # seconds a delete/import confirmation stays valid
MAX_PENDING = 10  # per admin
PENDING_KEY = "admin_pending"
MAX_IMPORT_BYTES = 2 * 1024 * 1024
ENTRIES_PAGE = 40
ENTRY_EXAMPLES_SHOWN = 80
HISTORY_PAGE = 10
MAX_HISTORY_PAGES = 100
SHOW_DISPLACED = 5
SHOW_SLUGS = 15
SHORT = 80  # characters of a field shown in history and confirmations
UNMATCHED_POOL = 200  # most recent unmatched questions considered
UNMATCHED_GROUPS = 8
GROUP_SIMILARITY = 80.0  # rapidfuzz ratio of normalised texts for "alike"
ASSIGN_CANDIDATES = 3
MAX_STATS_DAYS = 3650
SETTABLE = (*TEXT_FIELDS, "kind")
ENTRY_FIELDS = ("title", "explanation", "solution", "kind", "examples", "keywords", "related")


def e(value: Any) -> str:
    """Escape text from the knowledge base or a user for parse_mode HTML."""
    return html.escape(str(value), quote=False)


def short(value: Any, limit: int = SHORT) -> str:
    """One line, at most ``limit`` characters, escaped."""
    if isinstance(value, list):
        value = "、".join(map(str, value))
    text = " ".join(str(value).split()) if value not in (None, "") else "（空）"
    return e(text if len(text) <= limit else text[: limit - 1] + "…")


def slug_list(slugs: Sequence[str]) -> str:
    shown = ", ".join(e(s) for s in slugs[:SHOW_SLUGS])
    return shown + (f" …等 {len(slugs)} 个" if len(slugs) > SHOW_SLUGS else "")


def fmt_time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


# -- long replies ------------------------------------------------------------------------


def split_message(text: str, limit: int = MAX_MESSAGE, parts: int = MAX_PARTS) -> list[str]:
    """Split HTML text into messages at line breaks; over ``parts`` messages it is cut short.

    Tags never span lines in this module's texts, so a line break is a safe cut; a single
    over-long line is cut elsewhere, but never inside an entity such as ``&amp;``.
    """
    room = limit - len(TRUNCATED) - 1
    lines: list[str] = []
    for line in text.split("\n"):
        while len(line) > room:
            cut = line.rfind("&", room - 8, room)
            cut = cut if cut > 0 and ";" not in line[cut:room] else room
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    chunks: list[str] = []
    current: str | None = None
    for line in lines:
        if current is not None and len(current) + 1 + len(line) > room:
            chunks.append(current)
            current = None
        current = line if current is None else f"{current}\n{line}"
    if current is not None:
        chunks.append(current)
    chunks = [c for c in chunks if c.strip()]
    if len(chunks) > parts:
        chunks = chunks[:parts]
        chunks[-1] += "\n" + TRUNCATED
    return chunks or [TRUNCATED]


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


async def refuse(update: Update, context: Context, command: str) -> None:
    """Refuse a non-admin; the log line names the user only with ``LOG_USER_IDS``."""
    user, chat = update.effective_user, update.effective_chat
    settings = context.bot_data.get("settings")
    if settings is not None and settings.log_user_ids:
        who = f"user {user.id if user else None}"
    else:
        who = "a non-admin"
    log.warning(
        "refused admin command %s from %s (chat type %s)",
        command,
        who,
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
            await asyncio.to_thread(kb_of(context).refresh)
            await func(update, context)
    except Exception as exc:  # reported by the application's error handler, then stop
        await context.application.process_error(update, exc)
    raise ApplicationHandlerStop


def admin_command(
    name: str,
) -> Callable[
    [Callable[[Update, Context], Awaitable[None]]], Callable[[Update, Context], Awaitable[None]]
]:
    def decorate(
        func: Callable[[Update, Context], Awaitable[None]],
    ) -> Callable[[Update, Context], Awaitable[None]]:
        @functools.wraps(func)
        async def handler(update: Update, context: Context) -> None:
            await guarded(update, context, f"/{name}", func)

        return handler

    return decorate


# -- helpers -----------------------------------------------------------------------------


def kb_of(context: Context) -> KnowledgeBase:
    return context.bot_data["kb"]


def actor(update: Update) -> str:
    return f"tg:{update.effective_user.id}"


def arguments(update: Update, count: int) -> list[str]:
    """The ``count`` arguments after the command: single words, the last one the rest of the
    text as written (newlines kept); missing ones are ""."""
    message = update.effective_message
    text = (message.text or message.caption or "") if message else ""
    head = text.split(None, 1)
    rest = head[1] if len(head) > 1 else ""
    out: list[str] = []
    for _ in range(count - 1):
        pieces = rest.split(None, 1)
        out.append(pieces[0] if pieces else "")
        rest = pieces[1] if len(pieces) > 1 else ""
    out.append(rest.strip())
    return out


async def entry_or_explain(update: Update, context: Context, slug: str, usage: str) -> Entry | None:
    """The entry named ``slug``; None after telling the admin what is wrong."""
    if not slug:
        await say(update, context, USAGE[usage])
        return None
    if not SLUG_RE.match(slug):
        await say(update, context, BAD_SLUG.format(slug=short(slug, 40)) + "\n" + USAGE[usage])
        return None
    entry = kb_of(context).entry(slug)
    if entry is None:
        await say(update, context, NO_ENTRY.format(slug=e(slug)))
    return entry


def latest_change(store: Store) -> int | None:
    rows = store.history(limit=1)
    return rows[0].id if rows else None


async def write(context: Context, change: Callable[[Store], T]) -> tuple[T, int | None, Matcher]:
    """Run ``change`` through ``kb.write`` on a worker thread.

    Returns its result, the id of the history row it wrote (None if it wrote none) and the
    matcher from before the change, for the safety net."""
    kb = kb_of(context)

    def run() -> tuple[T, int | None, Matcher]:
        old = kb.matcher

        def tx(store: Store) -> tuple[T, int | None]:
            first = latest_change(store)
            result = change(store)
            last = latest_change(store)
            return result, (last if last != first else None)

        result, change_id = kb.write(tx)
        return result, change_id, old

    return await asyncio.to_thread(run)


def undo_keyboard(change_id: int | None) -> InlineKeyboardMarkup | None:
    if change_id is None:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(BUTTON_UNDO, callback_data=f"a:undo:{change_id}")]]
    )


async def safety_net(context: Context, slug: str, old: Matcher) -> str:
    """The warning about examples of other entries that now match ``slug``; "" if none."""
    displaced: list[Displaced] = await asyncio.to_thread(kb_of(context).displaced_by, slug, old)
    if not displaced:
        return ""
    lines = [DISPLACED.format(n=len(displaced), slug=e(slug))]
    lines += [
        f"• <code>{e(d.owner)}</code>「{short(d.phrase)}」" for d in displaced[:SHOW_DISPLACED]
    ]
    if len(displaced) > SHOW_DISPLACED:
        lines.append(DISPLACED_MORE.format(n=len(displaced)))
    return "\n".join(lines)


async def report(
    update: Update,
    context: Context,
    text: str,
    slug: str | None,
    old: Matcher,
    change_id: int | None,
) -> None:
    """Tell the admin what changed, with the safety net and, if it fired, an undo button."""
    warning = await safety_net(context, slug, old) if slug else ""
    if warning:
        await say(update, context, f"{text}\n\n{warning}", undo_keyboard(change_id))
    else:
        await say(update, context, text)


# -- pending confirmations ----------------------------------------------------------------


@dataclass
class Pending:
    kind: str  # "delete" or "import"
    expires: float
    slug: str = ""
    document: str = ""
    revision: int = 0
    summary: tuple[int, int, int] = (0, 0, 0)


def pending_of(context: Context, user_id: int) -> dict[str, Pending]:
    table: dict[int, dict[str, Pending]] = context.bot_data.setdefault(PENDING_KEY, {})
    mine = table.setdefault(user_id, {})
    now = time.monotonic()
    for token in [t for t, p in mine.items() if p.expires <= now]:
        del mine[token]
    return mine


def remember(context: Context, user_id: int, pending: Pending) -> str:
    mine = pending_of(context, user_id)
    if pending.kind == "import":  # one document in memory per admin is plenty
        for token in [t for t, p in mine.items() if p.kind == "import"]:
            del mine[token]
    while len(mine) >= MAX_PENDING:
        del mine[next(iter(mine))]
    token = secrets.token_urlsafe(8)
    mine[token] = pending
    return token


def take(context: Context, user_id: int, token: str, kind: str | None) -> Pending | None:
    """The pending confirmation ``token`` of this admin (removed), or None if stale/foreign."""
    mine = pending_of(context, user_id)
    pending = mine.get(token)
    if pending is None or (kind is not None and pending.kind != kind):
        return None
    del mine[token]
    return pending


def confirm_keyboard(action: str, label: str, token: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(label, callback_data=f"a:{action}:{token}"),
                InlineKeyboardButton(BUTTON_CANCEL, callback_data=f"a:no:{token}"),
            ]
        ]
    )


# -- diffs (import preview, history) ------------------------------------------------------


@dataclass(frozen=True)
class DocumentDiff:
    added: list[str]
    changed: list[tuple[str, list[str]]]  # slug, fields that differ
    removed: list[str]
    reordered: bool

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.reordered)


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f for f in ENTRY_FIELDS if old.get(f) != new.get(f)]


def diff_documents(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> DocumentDiff:
    """What replacing entries ``old`` by ``new`` (entry dicts) adds, changes and removes."""
    before = {d["slug"]: d for d in old}
    after = {d["slug"]: d for d in new}
    added = [s for s in after if s not in before]
    removed = [s for s in before if s not in after]
    changed = [(s, f) for s in after if s in before and (f := changed_fields(before[s], after[s]))]
    kept_old = [s for s in before if s in after]
    kept_new = [s for s in after if s in before]
    return DocumentDiff(added, changed, removed, kept_old != kept_new)


def describe_change(before: Any, after: Any) -> list[str]:
    """Human lines for one history row: old → new per field, examples added/removed."""
    if isinstance(before, list) or isinstance(after, list):
        diff = diff_documents(before or [], after or [])
        return [f"  新增 {len(diff.added)}，修改 {len(diff.changed)}，删除 {len(diff.removed)}"]
    if before is None and after is None:
        return []
    if before is None:
        return [f"  新建「{short(after.get('title'))}」"]
    if after is None:
        examples = len(before.get("examples") or [])
        return [f"  删除「{short(before.get('title'))}」（{examples} 条示例）"]
    lines = []
    for name in changed_fields(before, after):
        if name == "examples":
            old, new = before.get(name) or [], after.get(name) or []
            lines += [f"  + 示例「{short(p)}」" for p in new if p not in old][:3]
            lines += [f"  − 示例「{short(p)}」" for p in old if p not in new][:3]
        else:
            lines.append(f"  {name}: {short(before.get(name))} → {short(after.get(name))}")
    return lines


def history_lines(change: Change) -> list[str]:
    head = f"<b>#{change.id}</b> {fmt_time(change.at)} {e(change.actor)} {e(change.detail)}" + (
        HISTORY_UNDONE if change.undone else ""
    )
    return [head, *describe_change(change.before, change.after)]


# -- unmatched questions ------------------------------------------------------------------


def group_questions(
    rows: Sequence[dict[str, Any]], normalise: Callable[[str], str]
) -> list[list[dict[str, Any]]]:
    """Group alike questions (rapidfuzz ratio of their normalised text), biggest group first.

    Each question joins the first group whose first question is alike, so rows given newest
    first make every group's first question its newest."""
    leaders: list[str] = []
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        text = normalise(row["text"]) or row["text"]
        hit = (
            process.extractOne(text, leaders, scorer=fuzz.ratio, score_cutoff=GROUP_SIMILARITY)
            if leaders
            else None
        )
        if hit is not None:
            groups[hit[2]].append(row)
        else:
            leaders.append(text)
            groups.append([row])
    return sorted(groups, key=len, reverse=True)


# -- commands ----------------------------------------------------------------------------


@admin_command("entries")
async def entries_cmd(update: Update, context: Context) -> None:
    """List entries: slug, title, kind, number of examples; 40 a page."""
    (arg,) = arguments(update, 1)
    if arg and not arg.isdigit():
        await say(update, context, USAGE["entries"])
        return
    entries = kb_of(context).entries()
    pages = max(1, -(-len(entries) // ENTRIES_PAGE))
    page = min(max(int(arg or 1), 1), pages)
    lines = [ENTRIES_HEAD.format(n=len(entries), page=page, pages=pages)]
    for entry in entries[(page - 1) * ENTRIES_PAGE : page * ENTRIES_PAGE]:
        lines.append(
            f"<code>{e(entry.slug)}</code> {short(entry.title, 30)} · {e(entry.kind)}"
            f" · {len(entry.examples)} 例"
        )
    if page < pages:
        lines.append(ENTRIES_NEXT.format(page=page + 1))
    await say(update, context, "\n".join(lines))


@admin_command("entry")
async def entry_cmd(update: Update, context: Context) -> None:
    """One entry in full."""
    (slug,) = arguments(update, 1)
    if len(slug.split()) > 1:
        await say(update, context, USAGE["entry"])
        return
    entry = await entry_or_explain(update, context, slug, "entry")
    if entry is None:
        return
    lines = [
        f"<b>{e(entry.title)}</b>",
        f"slug <code>{e(entry.slug)}</code> · kind {e(entry.kind)}",
        f"related: {e(', '.join(entry.related)) or '—'}",
        f"keywords: {e('、'.join(entry.keywords)) or '—'}",
        "",
        "<b>explanation</b>",
        e(entry.explanation) or "—",
        "",
        "<b>solution</b>",
        e(entry.solution) or "—",
        "",
        f"<b>examples</b>（{len(entry.examples)}）",
    ]
    lines += [f"{i}. {e(p)}" for i, p in enumerate(entry.examples[:ENTRY_EXAMPLES_SHOWN], 1)]
    if len(entry.examples) > ENTRY_EXAMPLES_SHOWN:
        lines.append(ENTRY_EXAMPLES_MORE.format(n=len(entry.examples) - ENTRY_EXAMPLES_SHOWN))
    await say(update, context, "\n".join(lines))


@admin_command("add")
async def add_cmd(update: Update, context: Context) -> None:
    """Create an entry: /add SLUG TITLE."""
    slug, title = arguments(update, 2)
    if not slug or not title:
        await say(update, context, USAGE["add"])
        return
    if not SLUG_RE.match(slug):
        await say(update, context, BAD_SLUG.format(slug=short(slug, 40)) + "\n" + USAGE["add"])
        return
    if kb_of(context).entry(slug) is not None:
        await say(update, context, ENTRY_EXISTS.format(slug=e(slug)))
        return
    if len(title) > TEXT_FIELDS["title"]:
        await say(
            update, context, TOO_LONG.format(what="标题", n=len(title), limit=TEXT_FIELDS["title"])
        )
        return
    try:
        entry, _, _ = await write(context, lambda s: s.add(slug, title, actor=actor(update)))
    except StoreError as exc:
        await say(update, context, NOT_CHANGED.format(reason=e(exc)))
        return
    log.info("admin %s added entry %s", actor(update), slug)
    await say(update, context, ADDED.format(slug=e(entry.slug), title=e(entry.title)))


@admin_command("set")
async def set_cmd(update: Update, context: Context) -> None:
    """Set a field: /set SLUG FIELD TEXT (title, explanation, solution, kind)."""
    slug, field, text = arguments(update, 3)
    usage = USAGE["set"]
    if not slug or not field or not text:
        await say(update, context, usage)
        return
    if field not in SETTABLE:
        await say(update, context, UNKNOWN_FIELD.format(field=short(field, 40)) + "\n" + usage)
        return
    entry = await entry_or_explain(update, context, slug, "set")
    if entry is None:
        return
    limit = TEXT_FIELDS.get(field)
    if limit is not None and len(text) > limit:
        await say(update, context, TOO_LONG.format(what=field, n=len(text), limit=limit))
        return
    try:
        after, change_id, old = await write(
            context, lambda s: s.set_field(slug, field, text, actor=actor(update))
        )
    except StoreError as exc:
        await say(update, context, NOT_CHANGED.format(reason=e(exc)) + "\n" + usage)
        return
    log.info("admin %s set %s.%s", actor(update), slug, field)
    done = SET_DONE.format(
        slug=e(slug),
        field=e(field),
        old=short(getattr(entry, field)),
        new=short(getattr(after, field)),
    )
    # Only examples, keywords and kind feed the matcher; of these /set changes kind.
    await report(update, context, done, slug if field == "kind" else None, old, change_id)


@admin_command("example")
async def example_cmd(update: Update, context: Context) -> None:
    """Add an example phrase: /example SLUG PHRASE."""
    slug, phrase = arguments(update, 2)
    if not slug or not phrase:
        await say(update, context, USAGE["example"])
        return
    entry = await entry_or_explain(update, context, slug, "example")
    if entry is None:
        return
    if len(phrase) > MAX_EXAMPLE_CHARS:
        await say(
            update, context, TOO_LONG.format(what="示例", n=len(phrase), limit=MAX_EXAMPLE_CHARS)
        )
        return
    try:
        after, change_id, old = await write(
            context, lambda s: s.add_example(slug, phrase, actor=actor(update))
        )
    except StoreError as exc:
        await say(update, context, NOT_CHANGED.format(reason=e(exc)))
        return
    log.info("admin %s added an example to %s", actor(update), slug)
    added = after.examples[-1]
    lines = [EXAMPLE_ADDED.format(slug=e(slug), phrase=e(added), n=len(after.examples))]
    now = kb_of(context).match(added).intent
    if now != slug:
        lines.append(
            EXAMPLE_ELSEWHERE.format(now=f"<code>{e(now)}</code>" if now else "无", slug=e(slug))
        )
    await report(update, context, "\n".join(lines), slug, old, change_id)


@admin_command("unexample")
async def unexample_cmd(update: Update, context: Context) -> None:
    """Remove an example phrase: /unexample SLUG PHRASE."""
    slug, phrase = arguments(update, 2)
    if not slug or not phrase:
        await say(update, context, USAGE["unexample"])
        return
    if await entry_or_explain(update, context, slug, "unexample") is None:
        return
    try:
        after, _, _ = await write(
            context, lambda s: s.remove_example(slug, phrase, actor=actor(update))
        )
    except StoreError as exc:
        await say(update, context, NOT_CHANGED.format(reason=e(exc)))
        return
    log.info("admin %s removed an example from %s", actor(update), slug)
    await say(
        update,
        context,
        EXAMPLE_REMOVED.format(slug=e(slug), phrase=e(clean_text(phrase)), n=len(after.examples)),
    )


@admin_command("delete")
async def delete_cmd(update: Update, context: Context) -> None:
    """Ask to confirm deleting an entry: /delete SLUG."""
    (slug,) = arguments(update, 1)
    if len(slug.split()) > 1:
        await say(update, context, USAGE["delete"])
        return
    entry = await entry_or_explain(update, context, slug, "delete")
    if entry is None:
        return
    token = remember(
        context,
        update.effective_user.id,
        Pending("delete", time.monotonic() + PENDING_TTL, slug=entry.slug),
    )
    await say(
        update,
        context,
        DELETE_ASK.format(slug=e(entry.slug), title=e(entry.title), n=len(entry.examples)),
        confirm_keyboard("del", BUTTON_CONFIRM_DELETE, token),
    )


@admin_command("test")
async def test_cmd(update: Update, context: Context) -> None:
    """What TEXT would match: candidates with scores, the margin, the tokens."""
    (text,) = arguments(update, 1)
    if not text:
        await say(update, context, USAGE["test"])
        return
    kb = kb_of(context)
    match = await asyncio.to_thread(kb.match, text)
    if match.intent is None:
        result = TEST_NONE.format(threshold=kb.matcher.threshold)
    else:
        result = f"<code>{e(match.intent)}</code> {match.score:.1f}"
        if match.ambiguous:
            result += TEST_AMBIGUOUS
    lines = [
        TEST_HEAD.format(text=short(text, 200)),
        TEST_TOKENS.format(tokens=" · ".join(e(t) for t in match.tokens) or "（无）"),
        TEST_RESULT.format(result=result),
    ]
    for i, c in enumerate(match.candidates, 1):
        entry = kb.entry(c.slug)
        title = short(entry.title, 20) if entry else ""
        lines.append(f"{i}. <code>{e(c.slug)}</code> {c.score:.1f} · {e(c.kind)} · {title}")
    if len(match.candidates) >= 2:
        lines.append(TEST_MARGIN.format(margin=match.margin))
    await say(update, context, "\n".join(lines))


@admin_command("export")
async def export_cmd(update: Update, context: Context) -> None:
    """The knowledge base as a JSON document."""
    kb = kb_of(context)
    document = await asyncio.to_thread(kb.store.export, "json")
    name = f"jiebei-kb-{datetime.now():%Y%m%d-%H%M%S}.json"
    await context.bot.send_document(
        update.effective_chat.id,
        document=document.encode("utf-8"),
        filename=name,
        caption=EXPORT_CAPTION.format(n=len(kb.entries()), revision=kb.revision),
    )


@admin_command("import")
async def import_cmd(update: Update, context: Context) -> None:
    """Preview replacing the knowledge base with a document, and ask to confirm."""
    message = update.effective_message
    document = message.document
    if document is None and message.reply_to_message is not None:
        document = message.reply_to_message.document
    if document is None:
        await say(update, context, USAGE["import"])
        return
    too_large = IMPORT_TOO_LARGE.format(limit=MAX_IMPORT_BYTES // 2**20)
    if document.file_size and document.file_size > MAX_IMPORT_BYTES:
        await say(update, context, too_large)
        return
    tg_file = await document.get_file()
    data = bytes(await tg_file.download_as_bytearray())
    if len(data) > MAX_IMPORT_BYTES:
        await say(update, context, too_large)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        await say(update, context, IMPORT_NOT_UTF8)
        return
    try:
        entries = await asyncio.to_thread(parse_document, text)
    except DocumentError as exc:
        await say(update, context, IMPORT_REFUSED.format(reason=e(exc)))
        return
    kb = kb_of(context)
    diff = diff_documents([x.to_dict() for x in kb.entries()], [x.to_dict() for x in entries])
    if diff.empty:
        await say(update, context, IMPORT_SAME)
        return
    lines = [IMPORT_HEAD.format(name=e(document.file_name or "document"), n=len(entries))]
    if diff.added:
        lines.append(IMPORT_ADDED.format(n=len(diff.added), slugs=slug_list(diff.added)))
    if diff.changed:
        shown = [f"{s}（{', '.join(fields)}）" for s, fields in diff.changed]
        lines.append(IMPORT_CHANGED.format(n=len(diff.changed), slugs=slug_list(shown)))
    if diff.removed:
        lines.append(IMPORT_REMOVED.format(n=len(diff.removed), slugs=slug_list(diff.removed)))
        core = [s for s in diff.removed if s in (*CAUSE_SLUGS, "overview")]
        if core:
            lines.append(IMPORT_CORE.format(slugs=slug_list(core)))
    if diff.reordered:
        lines.append(IMPORT_REORDERED)
    lines.append(IMPORT_ASK)
    pending = Pending(
        "import",
        time.monotonic() + PENDING_TTL,
        document=text,
        revision=kb.revision,
        summary=(len(diff.added), len(diff.changed), len(diff.removed)),
    )
    token = remember(context, update.effective_user.id, pending)
    await say(
        update, context, "\n".join(lines), confirm_keyboard("imp", BUTTON_CONFIRM_IMPORT, token)
    )


@admin_command("history")
async def history_cmd(update: Update, context: Context) -> None:
    """Who changed what and when: /history [SLUG] [PAGE], newest first."""
    words = arguments(update, 3)
    words = [w for w in words if w]
    slug = words.pop(0) if words and not words[0].isdigit() else None
    page_arg = words.pop(0) if words else "1"
    if words or not page_arg.isdigit() or (slug is not None and not SLUG_RE.match(slug)):
        await say(update, context, USAGE["history"])
        return
    page = min(max(int(page_arg), 1), MAX_HISTORY_PAGES)
    rows = await asyncio.to_thread(kb_of(context).store.history, slug, page * HISTORY_PAGE + 1)
    more = len(rows) > page * HISTORY_PAGE
    rows = rows[(page - 1) * HISTORY_PAGE : page * HISTORY_PAGE]
    if not rows:
        await say(update, context, HISTORY_NONE)
        return
    about = f" <code>{e(slug)}</code>" if slug else ""
    lines = [HISTORY_HEAD.format(about=about, page=page)]
    for change in rows:
        lines += history_lines(change)
    if more and page < MAX_HISTORY_PAGES:
        lines.append(HISTORY_NEXT.format(args=f"{slug} {page + 1}" if slug else page + 1))
    await say(update, context, "\n".join(lines))


def undone_text(change: Change) -> str:
    lines = [
        UNDONE.format(
            id=change.id, actor=e(change.actor), at=fmt_time(change.at), detail=e(change.detail)
        )
    ]
    # What the undo did: the change's "after" went back to its "before".
    lines += describe_change(change.after, change.before)
    return "\n".join(lines)


@admin_command("undo")
async def undo_cmd(update: Update, context: Context) -> None:
    """Take back the latest change not yet undone; again for the one before."""
    change, _, old = await write(context, lambda s: s.undo(actor=actor(update)))
    if change is None:
        await say(update, context, UNDO_NOTHING)
        return
    log.info("admin %s undid change #%s", actor(update), change.id)
    slug = change.slug if change.slug and kb_of(context).entry(change.slug) else None
    await report(update, context, undone_text(change), slug, old, None)


@admin_command("unmatched")
async def unmatched_cmd(update: Update, context: Context) -> None:
    """Recent unmatched questions, alike ones grouped, with one-tap assignment buttons."""
    kb = kb_of(context)

    def collect() -> tuple[int, list[list[dict[str, Any]]], list[list[Any]]]:
        rows = kb.store.unmatched(UNMATCHED_POOL)
        groups = group_questions(rows, kb.pipeline.normalise)
        candidates = [
            list(kb.match(g[0]["text"]).candidates[:ASSIGN_CANDIDATES])
            for g in groups[:UNMATCHED_GROUPS]
        ]
        return len(rows), groups, candidates

    total, groups, candidates = await asyncio.to_thread(collect)
    if not total:
        await say(update, context, UNMATCHED_NONE)
        return
    shown = groups[:UNMATCHED_GROUPS]
    lines = [UNMATCHED_HEAD.format(n=total, groups=len(groups), shown=len(shown))]
    keyboard: list[list[InlineKeyboardButton]] = []
    for i, (group, cands) in enumerate(zip(shown, candidates, strict=True), 1):
        first = group[0]
        lines.append(f"<b>{i}.</b> ×{len(group)}「{short(first['text'])}」")
        if len(group) > 1:
            lines.append(
                UNMATCHED_ALIKE.format(
                    texts=" ".join(f"「{short(r['text'], 30)}」" for r in group[1:4])
                )
            )
        if cands:
            lines.append(
                UNMATCHED_CANDIDATES.format(
                    candidates=" · ".join(f"{e(c.slug)} {c.score:.0f}" for c in cands)
                )
            )
            keyboard.append(
                [
                    InlineKeyboardButton(
                        f"{i} → {c.slug}", callback_data=f"a:as:{first['id']}:{c.slug}"
                    )
                    for c in cands
                ]
            )
        else:
            lines.append(UNMATCHED_NO_CANDIDATE)
    if keyboard:
        lines.append(UNMATCHED_HINT)
    await say(
        update, context, "\n".join(lines), InlineKeyboardMarkup(keyboard) if keyboard else None
    )


@admin_command("stats")
async def stats_cmd(update: Update, context: Context) -> None:
    """Questions per intent over the last N days (default 7), unmatched share, feedback."""
    (arg,) = arguments(update, 1)
    if arg and (not arg.isdigit() or not 1 <= int(arg) <= MAX_STATS_DAYS):
        await say(update, context, USAGE["stats"])
        return
    days = int(arg or 7)
    kb = kb_of(context)
    stats = await asyncio.to_thread(kb.store.stats, time.time() - days * 86400)
    lines = [STATS_HEAD.format(days=days)]
    total = stats["total"]
    if not total:
        lines.append(STATS_EMPTY)
    else:
        lines.append(
            STATS_TOTAL.format(
                total=total, unmatched=stats["unmatched"], share=100 * stats["unmatched"] / total
            )
        )
        lines.append(STATS_INTENTS)
        for slug, n in list(stats["per_intent"].items())[:40]:
            entry = kb.entry(slug)
            name = (
                f"<code>{e(slug)}</code> {short(entry.title, 20)}"
                if entry
                else ("（未匹配）" if slug == "-" else f"<code>{e(slug)}</code>")
            )
            lines.append(f"{name}：{n}（{100 * n / total:.0f}%）")
    if stats["feedback"]:
        lines.append(STATS_FEEDBACK)
        for slug, (up, down) in stats["feedback"].items():
            lines.append(f"<code>{e(slug)}</code>：{up} / {down}")
    await say(update, context, "\n".join(lines))


# -- buttons -----------------------------------------------------------------------------


async def confirm_delete(update: Update, context: Context, args: list[str]) -> None:
    query = update.callback_query
    pending = take(context, update.effective_user.id, args[0], "delete")
    if pending is None:
        await say(update, context, STALE)
        return
    slug = pending.slug
    try:
        entry, change_id, _ = await write(context, lambda s: s.delete(slug, actor=actor(update)))
    except StoreError as exc:
        await query.edit_message_text(NOT_CHANGED.format(reason=e(exc)), parse_mode=ParseMode.HTML)
        return
    log.info("admin %s deleted entry %s", actor(update), slug)
    await query.edit_message_text(
        DELETED.format(slug=e(slug), title=e(entry.title)),
        parse_mode=ParseMode.HTML,
        reply_markup=undo_keyboard(change_id),
    )


async def confirm_import(update: Update, context: Context, args: list[str]) -> None:
    query = update.callback_query
    pending = take(context, update.effective_user.id, args[0], "import")
    if pending is None:
        await say(update, context, STALE)
        return
    if kb_of(context).revision != pending.revision:
        await query.edit_message_text(IMPORT_MOVED_ON)
        return
    try:
        entries, change_id, _ = await write(
            context, lambda s: s.import_document(pending.document, actor=actor(update))
        )
    except (StoreError, DocumentError) as exc:
        await query.edit_message_text(
            IMPORT_REFUSED.format(reason=e(exc)), parse_mode=ParseMode.HTML
        )
        return
    added, changed, removed = pending.summary
    log.info("admin %s imported %d entries", actor(update), len(entries))
    await query.edit_message_text(
        IMPORTED.format(n=len(entries), added=added, changed=changed, removed=removed),
        reply_markup=undo_keyboard(change_id),
    )


async def cancel(update: Update, context: Context, args: list[str]) -> None:
    if take(context, update.effective_user.id, args[0], None) is None:
        await say(update, context, STALE)
        return
    await update.callback_query.edit_message_text(CANCELLED)


async def undo_button(update: Update, context: Context, args: list[str]) -> None:
    query = update.callback_query
    if not args[0].isdigit():
        await say(update, context, UNKNOWN_BUTTON)
        return
    change_id = int(args[0])
    try:
        change, _, old = await write(
            context, lambda s: s.undo(actor=actor(update), change_id=change_id)
        )
    except StoreError:
        await say(update, context, UNDO_STALE)
        return
    await query.edit_message_reply_markup(None)
    log.info("admin %s undid change #%s", actor(update), change_id)
    slug = change.slug if change.slug and kb_of(context).entry(change.slug) else None
    await report(update, context, undone_text(change), slug, old, None)


async def assign_button(update: Update, context: Context, args: list[str]) -> None:
    """Add an unmatched question as an example of an entry; its look-alikes go with it."""
    query = update.callback_query
    qid_text, slug = args
    if not qid_text.isdigit() or not SLUG_RE.match(slug):
        await say(update, context, UNKNOWN_BUTTON)
        return
    qid = int(qid_text)
    kb = kb_of(context)

    def assign(store: Store) -> tuple[str, int, bool]:
        question = store.question(qid)
        if question is None:
            raise StoreError("no such question")
        if question["assigned"]:
            raise StoreError(f"that question was assigned to {question['assigned']!r} already")
        entry = store.get(slug)
        if entry is None:
            raise StoreError(f"no entry {slug!r}")
        groups = group_questions(store.unmatched(UNMATCHED_POOL), kb.pipeline.normalise)
        group = next((g for g in groups if any(r["id"] == qid for r in g)), [])
        alike = [r["id"] for r in group if r["id"] != qid]
        phrase = clean_text(question["text"][:MAX_EXAMPLE_CHARS])
        if not phrase or phrase in entry.examples:
            store.mark_assigned([qid, *alike], slug)
            return phrase, 1 + len(alike), False
        store.assign_question(qid, slug, actor=actor(update))
        store.mark_assigned(alike, slug)
        return phrase, 1 + len(alike), True

    try:
        (phrase, n, added), change_id, old = await write(context, assign)
    except StoreError as exc:
        await say(update, context, NOT_CHANGED.format(reason=e(exc)))
        return
    log.info("admin %s assigned %d questions to %s", actor(update), n, slug)
    message = query.message
    markup = getattr(message, "reply_markup", None)
    if markup is not None:  # this group is done: drop its row of buttons
        rows = [
            row
            for row in markup.inline_keyboard
            if not any((b.callback_data or "").startswith(f"a:as:{qid}:") for b in row)
        ]
        await query.edit_message_reply_markup(InlineKeyboardMarkup(rows) if rows else None)
    text = (ASSIGNED if added else ASSIGNED_KNOWN).format(n=n, slug=e(slug), phrase=short(phrase))
    await report(update, context, text, slug if added else None, old, change_id)


# action -> (handler, number of arguments after the action)
BUTTONS: dict[str, tuple[Callable[[Update, Context, list[str]], Awaitable[None]], int]] = {
    "del": (confirm_delete, 1),
    "imp": (confirm_import, 1),
    "no": (cancel, 1),
    "undo": (undo_button, 1),
    "as": (assign_button, 2),
}


async def on_button(update: Update, context: Context) -> None:
    """Every "a:" button: admins only, like the commands."""
    parts = (update.callback_query.data or "").split(":")
    action = parts[1] if len(parts) > 1 and parts[1] in BUTTONS else "?"

    async def run(update: Update, context: Context) -> None:
        await update.callback_query.answer()
        handler, count = BUTTONS.get(action, (None, 0))
        if handler is None or len(parts) != 2 + count:
            await say(update, context, UNKNOWN_BUTTON)
            return
        await handler(update, context, parts[2:])

    # Only the action is logged on refusal: the rest may be a confirmation token.
    await guarded(update, context, f"a:{action}", run)


def register(app: Application) -> None:
    """Add the admin handlers to ``app`` (group ADMIN_GROUP, before the user conversation)."""
    only_messages = filters.UpdateType.MESSAGE
    commands = {
        "entries": entries_cmd,
        "entry": entry_cmd,
        "add": add_cmd,
        "set": set_cmd,
        "example": example_cmd,
        "unexample": unexample_cmd,
        "delete": delete_cmd,
        "test": test_cmd,
        "export": export_cmd,
        "import": import_cmd,
        "history": history_cmd,
        "undo": undo_cmd,
        "unmatched": unmatched_cmd,
        "stats": stats_cmd,
    }
    for name, callback in commands.items():
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
