"""The admin commands, independent of the transport (Telegram or a terminal).

:class:`AdminDesk` turns an admin's command (``/set overview title …``), a pressed ``a:``
button or a document to import into what to send back: :class:`~bot.render.Reply` objects
(Telegram HTML and buttons; ``edit`` replaces the message whose button was pressed),
:class:`Document` (a file to send) and :class:`SetButtons` (new buttons for the pressed
message). It knows nothing of Telegram: who may use it is the transport's business
(``bot/admin.py`` checks ``ADMIN_IDS``; ``jiebei-bot chat --admin`` is the operator's own
terminal), and so are fetching an uploaded document and sending replies.

Every caller is an :class:`Admin`: ``key`` owns the pending confirmations (a Telegram user
id, or the terminal), ``actor`` is written in the history (``tg:<id>``, ``cli:<login>``).

How a write goes: ``kb.write`` (one store transaction, then the matcher is rebuilt, so the
change is live at once). Then the safety net: ``kb.displaced_by`` names examples of other
entries that the edit pulled over, with an undo button. ``/delete``, ``/import`` and
``/undo`` of a whole import first say what would happen and wait for a button; the pending
confirmation is kept per admin under a random token and expires.

Callback data, all starting ``a:`` (the user conversation ignores them), at most 64 bytes:

- ``a:del:TOKEN`` / ``a:imp:TOKEN`` / ``a:und:TOKEN`` confirm a pending delete / import /
  undo of an import; ``a:no:TOKEN`` cancels.
- ``a:undo:CHANGE_ID`` takes back that change, only while it is still the latest one.
- ``a:as:QUESTION_ID:SLUG`` adds an unmatched question as an example of SLUG and files its
  look-alikes with it; ``a:ud:QUESTION_ID`` files the group away as off topic.
- ``a:ra:SUGGESTION_ID`` adds a suggestion's question (and closes its look-alikes) as an
  example of the entry users went to; ``a:rp:SUGGESTION_ID`` offers other entries,
  ``a:rt:SUGGESTION_ID:SLUG`` adds it to SLUG; ``a:rd:SUGGESTION_ID`` dismisses the group.

Methods are synchronous and may block on SQLite: the Telegram layer calls them from a worker
thread. They are thread-safe.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from rapidfuzz import fuzz, process

from bot.render import Button, Reply
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

# -- texts (HTML; placeholders are escaped before formatting) ------------------------------

# Entry fields as admins read them: Chinese, with the name to type beside.
FIELD_NAMES = {
    "title": "标题",
    "explanation": "说明",
    "solution": "解决办法",
    "kind": "类型",
    "examples": "示例",
    "keywords": "关键词",
    "related": "相关条目",
    "slug": "条目名",
}


def field_label(name: str) -> str:
    """``标题（title）``: the Chinese name of a field with the name to type beside it."""
    zh = FIELD_NAMES.get(name)
    return f"{zh}（{name}）" if zh else name


SETTABLE = (*TEXT_FIELDS, "kind")
SETTABLE_LIST = "、".join(f"{name}（{FIELD_NAMES[name]}）" for name in SETTABLE)

REFUSED = "此命令仅限管理员使用。"
STALE = "这个确认已失效（过期或不属于你），未做任何修改。"
UNKNOWN_BUTTON = "这个按钮已失效，未做任何修改。"
NOT_CHANGED = "未修改：{reason}"
NO_ENTRY = "没有条目 <code>{slug}</code>，未做任何修改。用 /entries 查看全部。"
NO_ENTRY_READ = "没有条目 <code>{slug}</code>。用 /entries 查看全部。"
BAD_SLUG = "条目名 <code>{slug}</code> 无效：只能用小写字母、数字和下划线，2–40 个字符。"
ENTRY_EXISTS = "条目 <code>{slug}</code> 已存在，未做任何修改。"
UNKNOWN_FIELD = "没有字段 <code>{field}</code>，可改：" + SETTABLE_LIST + "。"
TOO_LONG = "{what}太长（{n} 字，上限 {limit}），未做任何修改。"
SET_SAME = "<code>{slug}</code> 的{field}本来就是这个内容，未做任何修改。"
USAGE = {
    "entries": "用法：/entries [页码]",
    "entry": "用法：/entry SLUG",
    "add": "用法：/add SLUG 标题",
    "set": "用法：/set SLUG 字段 内容\n字段：" + SETTABLE_LIST + "；类型可选 " + "、".join(KINDS),
    "example": "用法：/example SLUG 示例句子",
    "unexample": "用法：/unexample SLUG 示例句子",
    "delete": "用法：/delete SLUG",
    "test": "用法：/test 要测试的句子",
    "import": "用法：发送 JSON 或 YAML 文件并在说明里写 /import，或回复一个文件发送 /import",
    "history": "用法：/history [SLUG] [页码]",
    "stats": "用法：/stats [天数]，例如 /stats 30",
}
DOCUMENT_HINT = (
    "收到一个文件。要导入知识库，请重新发送这个文件并在说明（caption）里写 /import，"
    "或者回复这个文件发送 /import。导入前我会先列出变化，等你确认。"
)

ENTRIES_HEAD = "<b>条目</b>：共 {n} 条（第 {page}/{pages} 页）"
ENTRIES_NEXT = "下一页：/entries {page}"
ENTRY_EXAMPLES_MORE = "……另有 {n} 条示例（/export 可看全部）"
ADDED = (
    "已新建 <code>{slug}</code>「{title}」。\n"
    "用 /set {slug} explanation …、/example {slug} … 补全（没有示例时匹配不到它）。"
)
SET_DONE = "已修改 <code>{slug}</code>.{field}（{zh}）：\n{old}\n→ {new}"
EXAMPLE_ADDED = "已为 <code>{slug}</code> 添加示例「{phrase}」（共 {n} 条），立即生效。"
EXAMPLE_ELSEWHERE = "注意：这句现在匹配到 {now}，不是 <code>{slug}</code>（可用 /test 查看）。"
EXAMPLE_REMOVED = "已从 <code>{slug}</code> 删除示例「{phrase}」（剩 {n} 条）。"
DELETE_ASK = "确定删除 <code>{slug}</code>「{title}」（{n} 条示例）吗？"
DELETED = "已删除 <code>{slug}</code>「{title}」。可用 /undo 撤销。"
CANCELLED = "已取消，未做任何修改。"
BUTTON_CONFIRM_DELETE = "确认删除"
BUTTON_CONFIRM_IMPORT = "确认导入"
BUTTON_CONFIRM_UNDO = "确认撤销导入"
BUTTON_CANCEL = "取消"
BUTTON_UNDO = "撤销这次修改"
DISPLACED = "⚠️ 这次修改后，其他条目的 {n} 条示例改为匹配 <code>{slug}</code>："
DISPLACED_MORE = "……共 {n} 条"
TEST_HEAD = "<b>测试</b>「{text}」"
TEST_TOKENS = "分词：{tokens}"
TEST_RESULT = "结果：{result}"
TEST_NONE = "未匹配（原因和总览最高分低于 {answer:g}，其他条目低于 {threshold:g}）"
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
UNDO_IMPORT_ASK = (
    "最近一次修改是整体导入 #{id}（{actor}，{at}，{n} 条条目）。撤销会把整个知识库换回导入前"
    "的样子：\n{diff}\n确定撤销吗？"
)
WAITING = "待处理：未匹配 {unmatched} 条（/unmatched）· 待审核建议 {review} 条（/review）"
UNMATCHED_NONE = "没有待处理的未匹配问题。"
UNMATCHED_HEAD = "<b>未匹配的问题</b>：{n} 条，{groups} 组（显示前 {shown} 组）"
UNMATCHED_ALIKE = "   相似：{texts}"
UNMATCHED_CANDIDATES = "   候选：{candidates}"
UNMATCHED_NO_CANDIDATE = "   候选：无（可用 /example 手动添加）"
UNMATCHED_HINT = "点「→ 条目」把这组问题归入该条目（第一句成为示例），点 🗑 把这组当作无关问题忽略。"
ASSIGNED = "已将 {n} 条问题归入 <code>{slug}</code>，示例「{phrase}」立即生效。"
ASSIGNED_KNOWN = "已将 {n} 条问题归入 <code>{slug}</code>（「{phrase}」已是示例）。"
UNMATCHED_DISMISSED = "已忽略 {n} 条问题（「{phrase}」等），不会再出现在 /unmatched。"
REVIEW_NONE = (
    "没有待审核的建议。用户对回答点「没帮助」「这不是我的情况」、"
    "在「哪种情况」里选择、或换个说法重问时，会出现在这里。"
)
REVIEW_HEAD = "<b>待审核的建议</b>：{n} 条，{groups} 组（显示前 {shown} 组）"
REVIEW_TARGET = "<b>{i}.</b> → <code>{slug}</code> {title} ×{n}「{text}」"
REVIEW_NO_TARGET = "<b>{i}.</b> → （用户没有去别的条目）×{n}「{text}」"
REVIEW_FROM = "   原回答：{answered}（{kinds}）"
REVIEW_HINT = "✅ 把这组问题加为该条目的示例 · ↪ 选别的条目 · 🗑 忽略"
REVIEW_PICK = "把「{text}」加为哪个条目的示例？"
REVIEW_ACCEPTED = (
    "已把「{phrase}」加为 <code>{slug}</code> 的示例（处理了 {n} 条建议），立即生效。"
    "可用 /undo 撤销。"
)
REVIEW_KNOWN = "「{phrase}」已是 <code>{slug}</code> 的示例；已处理 {n} 条建议。"
REVIEW_DISMISSED = "已忽略 {n} 条建议（「{phrase}」等）。"
REVIEW_GONE = "这组建议已经处理过了，未做任何修改。"
SUGGESTION_KIND_NAMES = {
    "not_mine": "这不是我的情况",
    "unhelpful": "没帮助",
    "choice": "在「哪种情况」里选择",
    "rephrase": "换个说法重问",
}
STATS_HEAD = "<b>统计</b>：最近 {days} 天"
STATS_TOTAL = "提问 {total}，未匹配 {unmatched}（{share:.1f}%）"
STATS_INTENTS = "<b>按条目</b>"
STATS_FEEDBACK = "<b>反馈</b>（有帮助 / 没帮助）"
STATS_QUALITY = "<b>回答被纠正</b>（回答次数 · 被纠正 · 没帮助；按周从近到远）"
STATS_QUALITY_LINE = (
    "<code>{slug}</code> {title}：回答 {n}，被纠正 {corrected}，没帮助 {unhelpful}（{share:.0f}%）"
)
STATS_WEEKS = "   每周：{weeks}"
STATS_EMPTY = "这段时间没有提问。"
TRUNCATED = "……（内容过长，已截断）"
ADMIN_HELP_HEAD = "<b>管理员命令</b>"

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
    ("review", "用户纠正过的回答，一键加为示例"),
    ("stats", "统计：/stats [天数]"),
]
COMMAND_NAMES = frozenset(name for name, _ in ADMIN_COMMANDS)
BUTTON_ACTIONS = frozenset(("del", "imp", "und", "no", "undo", "as", "ud", "ra", "rp", "rt", "rd"))

# -- limits ------------------------------------------------------------------------------

MAX_MESSAGE = 4096
MAX_PARTS = 4  # a longer reply is cut, with TRUNCATED at the end
PENDING_TTL = 600.0  # seconds a confirmation stays valid
MAX_PENDING = 10  # per admin
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
REVIEW_POOL = 300  # most recent open suggestions considered
REVIEW_GROUPS = 8
REVIEW_PICKS = 14  # entries offered by "↪ 别的条目"
GROUP_SIMILARITY = 80.0  # rapidfuzz ratio of normalised texts for "alike"
ASSIGN_CANDIDATES = 3
MAX_STATS_DAYS = 3650
STATS_QUALITY_ROWS = 15
ENTRY_FIELDS = ("title", "explanation", "solution", "kind", "examples", "keywords", "related")


# -- what the desk sends back -------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """A file to send (``/export``)."""

    filename: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class SetButtons:
    """Replace the buttons of the message whose button was pressed (None: remove them)."""

    buttons: list[list[Button]] | None


Output = Reply | Document | SetButtons


@dataclass(frozen=True)
class Admin:
    """Who is asking: ``key`` owns pending confirmations; ``actor`` goes in the history;
    ``logged`` names them in log lines (the Telegram layer hides the user id there unless
    ``LOG_USER_IDS`` is on, as for every other log line)."""

    key: Hashable
    actor: str
    logged: str = ""

    @property
    def log_name(self) -> str:
        return self.logged or self.actor


# -- formatting ----------------------------------------------------------------------------


def e(value: Any) -> str:
    """Escape text from the knowledge base or a user for parse_mode HTML (a lone surrogate,
    which Telegram cannot take, becomes "?")."""
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return html.escape(text, quote=False)


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


def arguments(text: str, count: int) -> list[str]:
    """The ``count`` arguments after the command: single words, the last one the rest of the
    text as written (newlines kept); missing ones are ""."""
    head = text.split(None, 1)
    rest = head[1] if len(head) > 1 else ""
    out: list[str] = []
    for _ in range(count - 1):
        pieces = rest.split(None, 1)
        out.append(pieces[0] if pieces else "")
        rest = pieces[1] if len(pieces) > 1 else ""
    out.append(rest.strip())
    return out


def command_name(text: str) -> str:
    """``/set@jiebei_bot closed …`` → ``set``."""
    first = text.split(None, 1)[0] if text.split() else ""
    return first[1:].split("@")[0].lower() if first.startswith("/") else ""


# Import errors (knowledge.entries.DocumentError, in English for the shell) said in Chinese,
# keeping the line, entry and field they name. Unknown messages are shown as they are.
_DOC_ERRORS: list[tuple[str, str]] = [
    (r"document is neither valid JSON nor valid YAML at line (\d+)",
     r"文件既不是有效的 JSON，也不是有效的 YAML（第 \1 行有错）"),
    (r"document is neither valid JSON nor valid YAML", "文件既不是有效的 JSON，也不是有效的 YAML"),
    (r"YAML aliases \(\*name\) are not allowed \(line (\d+)\)",
     r"不允许使用 YAML 别名（*name）（第 \1 行）"),
    (r"document is larger than (\d+) MiB", r"文件超过 \1 MB"),
    (r"document is not UTF-8 text", "文件不是 UTF-8 文本"),
    (r"document is not text \(it contains NUL bytes\)", "文件不是文本（含有 NUL 字节）"),
    (r"document is nested too deeply", "文件嵌套层数太深"),
    (r"document must be an object with 'version' and 'entries'",
     "文件必须是一个含 version 和 entries 的对象"),
    (r"unknown document version (.+) \(expected (\d+)\)", r"未知的文件版本 \1（应为 \2）"),
    (r"field 'entries' must be a non-empty list", "entries 必须是非空列表"),
    (r"document has more than (\d+) entries", r"条目超过 \1 条"),
    (r"must be an object", "必须是一个对象"),
    (r"field 'slug': slug (.+) must match \[a-z0-9_\]\{2,40\}",
     r"字段 slug（条目名）\1 无效：只能用小写字母、数字和下划线，2–40 个字符"),
    (r"field '(\w+)' must be a list of strings", r"字段 \1 必须是字符串列表"),
    (r"field '(\w+)' has more than (\d+) items", r"字段 \1 超过 \2 项"),
    (r"field '(\w+)' must hold non-empty strings", r"字段 \1 的每一项都必须是非空字符串"),
    (r"an item of '(\w+)' is over (\d+) characters", r"字段 \1 有一项超过 \2 个字"),
    (r"field '(\w+)' must be a string", r"字段 \1 必须是字符串（缺少或类型不对）"),
    (r"field 'title' must not be empty", "字段 title（标题）不能为空"),
    (r"field '(\w+)' is over (\d+) characters", r"字段 \1 超过 \2 个字"),
    (r"field 'kind' must be one of (.+)", r"字段 kind（类型）必须是 \1 之一"),
    (r"field 'related' holds an invalid slug (.+)", r"字段 related（相关条目）含无效的条目名 \1"),
    (r"field 'slug' duplicates entry (\d+)", r"字段 slug（条目名）与第 \1 条重复"),
    (r"field 'related' names unknown entry (.+)", r"字段 related（相关条目）指向不存在的条目 \1"),
]  # fmt: skip


def document_error_zh(message: str) -> str:
    """A DocumentError's message in Chinese ("entry 3 (x): …" → "第 3 条（x）：…")."""
    where = ""
    head = re.match(r"entry (\d+)(?: \((.*?)\))?: ", message)
    if head:
        where = f"第 {head[1]} 条" + (f"（{head[2]}）" if head[2] else "") + "："
        message = message[head.end() :]
    for pattern, chinese in _DOC_ERRORS:
        if re.fullmatch(pattern, message):
            message = re.sub(pattern, chinese, message)
            break
    return where + message


# -- grouping alike questions --------------------------------------------------------------


def group_questions(
    rows: Sequence[dict[str, Any]], normalise: Callable[[str], str], key: str = "text"
) -> list[list[dict[str, Any]]]:
    """Group alike questions (rapidfuzz ratio of their normalised text), biggest group first.

    Each question joins the first group whose first question is alike, so rows given newest
    first make every group's first question its newest."""
    leaders: list[str] = []
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        text = normalise(row[key]) or row[key]
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


def diff_lines(diff: DocumentDiff) -> list[str]:
    lines = []
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
    return lines


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
            lines.append(
                f"  {field_label(name)}：{short(before.get(name))} → {short(after.get(name))}"
            )
    return lines


def history_lines(change: Change) -> list[str]:
    head = f"<b>#{change.id}</b> {fmt_time(change.at)} {e(change.actor)} {e(change.detail)}" + (
        HISTORY_UNDONE if change.undone else ""
    )
    return [head, *describe_change(change.before, change.after)]


def undone_text(change: Change) -> str:
    lines = [
        UNDONE.format(
            id=change.id, actor=e(change.actor), at=fmt_time(change.at), detail=e(change.detail)
        )
    ]
    # What the undo did: the change's "after" went back to its "before".
    lines += describe_change(change.after, change.before)
    return "\n".join(lines)


def undo_buttons(change_id: int | None) -> list[list[Button]]:
    return [[Button(BUTTON_UNDO, f"a:undo:{change_id}")]] if change_id is not None else []


def confirm_buttons(action: str, label: str, token: str) -> list[list[Button]]:
    return [[Button(label, f"a:{action}:{token}"), Button(BUTTON_CANCEL, f"a:no:{token}")]]


# -- pending confirmations ----------------------------------------------------------------


@dataclass
class Pending:
    kind: str  # "delete", "import" or "undo"
    expires: float
    slug: str = ""
    document: str = ""
    revision: int = 0
    summary: tuple[int, int, int] = (0, 0, 0)
    change_id: int = 0


def latest_change(store: Store) -> int | None:
    rows = store.history(limit=1)
    return rows[0].id if rows else None


# -- the desk ------------------------------------------------------------------------------


class AdminDesk:
    """Admin commands and buttons → replies, for any transport."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self._pending: dict[Hashable, dict[str, Pending]] = {}
        self._lock = threading.RLock()
        self._commands: dict[str, Callable[[Admin, str], list[Output]]] = {
            "entries": self.entries,
            "entry": self.entry,
            "add": self.add,
            "set": self.set,
            "example": self.example,
            "unexample": self.unexample,
            "delete": self.delete,
            "test": self.test,
            "export": self.export,
            "import": self.import_usage,
            "history": self.history,
            "undo": self.undo,
            "unmatched": self.unmatched,
            "review": self.review,
            "stats": self.stats,
        }
        self._buttons: dict[str, tuple[Callable[..., list[Output]], int]] = {
            "del": (self._confirm_delete, 1),
            "imp": (self._confirm_import, 1),
            "und": (self._confirm_undo, 1),
            "no": (self._cancel, 1),
            "undo": (self._undo_button, 1),
            "as": (self._assign, 2),
            "ud": (self._dismiss_unmatched, 1),
            "ra": (self._accept, 1),
            "rp": (self._pick, 1),
            "rt": (self._accept_to, 2),
            "rd": (self._dismiss_review, 1),
        }
        assert set(self._commands) == COMMAND_NAMES and set(self._buttons) == BUTTON_ACTIONS

    # -- entry points ---------------------------------------------------------------------

    def command(self, who: Admin, text: str) -> list[Output]:
        """An admin command as typed (``/name args``)."""
        handler = self._commands.get(command_name(text))
        if handler is None:
            return [Reply(self.help_text())]
        self.kb.refresh()
        return handler(who, text)

    def button(self, who: Admin, data: str) -> list[Output]:
        """A pressed ``a:`` button."""
        parts = data.split(":")
        handler, count = self._buttons.get(parts[1] if len(parts) > 1 else "", (None, 0))
        if handler is None or len(parts) != 2 + count or parts[0] != "a":
            return [Reply(UNKNOWN_BUTTON)]
        self.kb.refresh()
        return handler(who, *parts[2:])

    @staticmethod
    def help_text() -> str:
        """The admin commands, for /help."""
        lines = [ADMIN_HELP_HEAD]
        lines += [f"/{name} — {e(text)}" for name, text in ADMIN_COMMANDS]
        return "\n".join(lines)

    # -- helpers --------------------------------------------------------------------------

    def _write(self, change: Callable[[Store], T]) -> tuple[T, int | None, Matcher]:
        """Run ``change`` through ``kb.write``: its result, the id of the history row it
        wrote (None if none) and the matcher from before, for the safety net."""
        old = self.kb.matcher

        def tx(store: Store) -> tuple[T, int | None]:
            first = latest_change(store)
            result = change(store)
            last = latest_change(store)
            return result, (last if last != first else None)

        result, change_id = self.kb.write(tx)
        return result, change_id, old

    def _entry_or_explain(self, slug: str, usage: str, *, read_only: bool = False) -> Entry | Reply:
        """The entry named ``slug``, or a reply saying what is wrong."""
        if not slug:
            return Reply(USAGE[usage])
        if not SLUG_RE.match(slug):
            return Reply(BAD_SLUG.format(slug=short(slug, 40)) + "\n" + USAGE[usage])
        entry = self.kb.entry(slug)
        if entry is None:
            return Reply((NO_ENTRY_READ if read_only else NO_ENTRY).format(slug=e(slug)))
        return entry

    def _safety_net(self, slug: str, old: Matcher) -> str:
        """The warning about examples of other entries that now match ``slug``; "" if none."""
        displaced: list[Displaced] = self.kb.displaced_by(slug, old)
        if not displaced:
            return ""
        lines = [DISPLACED.format(n=len(displaced), slug=e(slug))]
        lines += [
            f"• <code>{e(d.owner)}</code>「{short(d.phrase)}」" for d in displaced[:SHOW_DISPLACED]
        ]
        if len(displaced) > SHOW_DISPLACED:
            lines.append(DISPLACED_MORE.format(n=len(displaced)))
        return "\n".join(lines)

    def _report(self, text: str, slug: str | None, old: Matcher, change_id: int | None) -> Reply:
        """What changed, with the safety net and, if it fired, an undo button."""
        warning = self._safety_net(slug, old) if slug else ""
        if warning:
            return Reply(f"{text}\n\n{warning}", undo_buttons(change_id))
        return Reply(text)

    def _remember(self, who: Admin, pending: Pending) -> str:
        with self._lock:
            mine = self._mine(who)
            if pending.kind == "import":  # one document in memory per admin is plenty
                for token in [t for t, p in mine.items() if p.kind == "import"]:
                    del mine[token]
            while len(mine) >= MAX_PENDING:
                del mine[next(iter(mine))]
            token = secrets.token_urlsafe(8)
            mine[token] = pending
            return token

    def _mine(self, who: Admin) -> dict[str, Pending]:
        mine = self._pending.setdefault(who.key, {})
        now = time.monotonic()
        for token in [t for t, p in mine.items() if p.expires <= now]:
            del mine[token]
        return mine

    def _take(self, who: Admin, token: str, kind: str | None) -> Pending | None:
        """The pending confirmation ``token`` of this admin (removed), or None."""
        with self._lock:
            mine = self._mine(who)
            pending = mine.get(token)
            if pending is None or (kind is not None and pending.kind != kind):
                return None
            del mine[token]
            return pending

    def _waiting(self) -> str:
        unmatched, review = self.kb.store.waiting()
        return WAITING.format(unmatched=unmatched, review=review)

    # -- reading --------------------------------------------------------------------------

    def entries(self, who: Admin, text: str) -> list[Output]:
        """List entries: slug, title, kind, number of examples; 40 a page."""
        (arg,) = arguments(text, 1)
        if arg and not arg.isdigit():
            return [Reply(USAGE["entries"])]
        entries = self.kb.entries()
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
        return [Reply("\n".join(lines))]

    def entry(self, who: Admin, text: str) -> list[Output]:
        """One entry in full."""
        (slug,) = arguments(text, 1)
        if len(slug.split()) > 1:
            return [Reply(USAGE["entry"])]
        entry = self._entry_or_explain(slug, "entry", read_only=True)
        if isinstance(entry, Reply):
            return [entry]
        label = field_label
        lines = [
            f"<b>{e(entry.title)}</b>",
            f"{label('slug')} <code>{e(entry.slug)}</code> · {label('kind')}：{e(entry.kind)}",
            f"{label('related')}：{e(', '.join(entry.related)) or '—'}",
            f"{label('keywords')}：{e('、'.join(entry.keywords)) or '—'}",
            "",
            f"<b>{label('explanation')}</b>",
            e(entry.explanation) or "—",
            "",
            f"<b>{label('solution')}</b>",
            e(entry.solution) or "—",
            "",
            f"<b>{label('examples')}</b>（{len(entry.examples)}）",
        ]
        lines += [f"{i}. {e(p)}" for i, p in enumerate(entry.examples[:ENTRY_EXAMPLES_SHOWN], 1)]
        if len(entry.examples) > ENTRY_EXAMPLES_SHOWN:
            lines.append(ENTRY_EXAMPLES_MORE.format(n=len(entry.examples) - ENTRY_EXAMPLES_SHOWN))
        return [Reply("\n".join(lines))]

    def test(self, who: Admin, text: str) -> list[Output]:
        """What TEXT would match: candidates with scores, the margin, the tokens."""
        (question,) = arguments(text, 1)
        if not question:
            return [Reply(USAGE["test"])]
        match = self.kb.match(question)
        if match.intent is None:
            matcher = self.kb.matcher
            result = TEST_NONE.format(answer=matcher.answer_threshold, threshold=matcher.threshold)
        else:
            result = f"<code>{e(match.intent)}</code> {match.score:.1f}"
            if match.ambiguous:
                result += TEST_AMBIGUOUS
        lines = [
            TEST_HEAD.format(text=short(question, 200)),
            TEST_TOKENS.format(tokens=" · ".join(e(t) for t in match.tokens) or "（无）"),
            TEST_RESULT.format(result=result),
        ]
        for i, c in enumerate(match.candidates, 1):
            entry = self.kb.entry(c.slug)
            title = short(entry.title, 20) if entry else ""
            lines.append(f"{i}. <code>{e(c.slug)}</code> {c.score:.1f} · {e(c.kind)} · {title}")
        if len(match.candidates) >= 2:
            lines.append(TEST_MARGIN.format(margin=match.margin))
        return [Reply("\n".join(lines))]

    def export(self, who: Admin, text: str) -> list[Output]:
        """The knowledge base as a JSON document."""
        document = self.kb.store.export("json")
        return [
            Document(
                f"jiebei-kb-{datetime.now():%Y%m%d-%H%M%S}.json",
                document.encode("utf-8"),
                EXPORT_CAPTION.format(n=len(self.kb.entries()), revision=self.kb.revision),
            )
        ]

    def history(self, who: Admin, text: str) -> list[Output]:
        """Who changed what and when: /history [SLUG] [PAGE], newest first."""
        words = [w for w in arguments(text, 3) if w]
        slug = words.pop(0) if words and not words[0].isdigit() else None
        page_arg = words.pop(0) if words else "1"
        if words or not page_arg.isdigit() or (slug is not None and not SLUG_RE.match(slug)):
            return [Reply(USAGE["history"])]
        page = min(max(int(page_arg), 1), MAX_HISTORY_PAGES)
        rows = self.kb.store.history(slug, page * HISTORY_PAGE + 1)
        more = len(rows) > page * HISTORY_PAGE
        rows = rows[(page - 1) * HISTORY_PAGE : page * HISTORY_PAGE]
        if not rows:
            return [Reply(HISTORY_NONE)]
        about = f" <code>{e(slug)}</code>" if slug else ""
        lines = [HISTORY_HEAD.format(about=about, page=page)]
        for change in rows:
            lines += history_lines(change)
        if more and page < MAX_HISTORY_PAGES:
            lines.append(HISTORY_NEXT.format(args=f"{slug} {page + 1}" if slug else page + 1))
        return [Reply("\n".join(lines))]

    def stats(self, who: Admin, text: str) -> list[Output]:
        """Questions per intent over the last N days (default 7), unmatched share, feedback,
        and how often each entry's answer was corrected, per week."""
        (arg,) = arguments(text, 1)
        if arg and (not arg.isdigit() or not 1 <= int(arg) <= MAX_STATS_DAYS):
            return [Reply(USAGE["stats"])]
        days = int(arg or 7)
        now = time.time()
        since = now - days * 86400
        stats = self.kb.store.stats(since)
        quality = self.kb.store.answer_quality(since, now)
        lines = [STATS_HEAD.format(days=days)]
        total = stats["total"]
        if not total:
            lines.append(STATS_EMPTY)
        else:
            lines.append(
                STATS_TOTAL.format(
                    total=total,
                    unmatched=stats["unmatched"],
                    share=100 * stats["unmatched"] / total,
                )
            )
            lines.append(STATS_INTENTS)
            for slug, n in list(stats["per_intent"].items())[:40]:
                entry = self.kb.entry(slug)
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
        lines += self._quality_lines(quality)
        return [Reply("\n".join(lines))]

    def _quality_lines(self, quality: dict[str, list[list[int]]]) -> list[str]:
        rows = []
        for slug, weeks in quality.items():
            n = sum(w[0] for w in weeks)
            corrected = sum(w[1] for w in weeks)
            unhelpful = sum(w[2] for w in weeks)
            if corrected + unhelpful:
                share = 100 * (corrected + unhelpful) / n if n else 100.0
                rows.append((share, slug, n, corrected, unhelpful, weeks))
        if not rows:
            return []
        lines = [STATS_QUALITY]
        for share, slug, n, corrected, unhelpful, weeks in sorted(rows, reverse=True)[
            :STATS_QUALITY_ROWS
        ]:
            entry = self.kb.entry(slug)
            lines.append(
                STATS_QUALITY_LINE.format(
                    slug=e(slug),
                    title=short(entry.title, 20) if entry else "",
                    n=n,
                    corrected=corrected,
                    unhelpful=unhelpful,
                    share=min(share, 100.0),
                )
            )
            if len(weeks) > 1:
                cells = [
                    f"{w[1] + w[2]}/{w[0]}" if w[0] or w[1] or w[2] else "—" for w in weeks[:8]
                ]
                lines.append(STATS_WEEKS.format(weeks=" · ".join(cells)))
        return lines

    # -- writing --------------------------------------------------------------------------

    def add(self, who: Admin, text: str) -> list[Output]:
        """Create an entry: /add SLUG TITLE."""
        slug, title = arguments(text, 2)
        if not slug or not title:
            return [Reply(USAGE["add"])]
        if not SLUG_RE.match(slug):
            return [Reply(BAD_SLUG.format(slug=short(slug, 40)) + "\n" + USAGE["add"])]
        if self.kb.entry(slug) is not None:
            return [Reply(ENTRY_EXISTS.format(slug=e(slug)))]
        if len(title) > TEXT_FIELDS["title"]:
            limit = TEXT_FIELDS["title"]
            return [Reply(TOO_LONG.format(what="标题", n=len(title), limit=limit))]
        try:
            entry, _, _ = self._write(lambda s: s.add(slug, title, actor=who.actor))
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)))]
        log.info("admin %s added entry %s", who.log_name, slug)
        return [Reply(ADDED.format(slug=e(entry.slug), title=e(entry.title)))]

    def set(self, who: Admin, text: str) -> list[Output]:
        """Set a field: /set SLUG FIELD TEXT (title, explanation, solution, kind)."""
        slug, name, value = arguments(text, 3)
        usage = USAGE["set"]
        if not slug or not name or not value:
            return [Reply(usage)]
        if name not in SETTABLE:
            return [Reply(UNKNOWN_FIELD.format(field=short(name, 40)) + "\n" + usage)]
        entry = self._entry_or_explain(slug, "set")
        if isinstance(entry, Reply):
            return [entry]
        limit = TEXT_FIELDS.get(name)
        if limit is not None and len(value) > limit:
            return [Reply(TOO_LONG.format(what=name, n=len(value), limit=limit))]
        if getattr(entry, name) == clean_text(value):
            return [Reply(SET_SAME.format(slug=e(slug), field=field_label(name)))]
        try:
            after, change_id, old = self._write(
                lambda s: s.set_field(slug, name, value, actor=who.actor)
            )
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)) + "\n" + usage)]
        log.info("admin %s set %s.%s", who.log_name, slug, name)
        done = SET_DONE.format(
            slug=e(slug),
            field=e(name),
            zh=FIELD_NAMES[name],
            old=short(getattr(entry, name)),
            new=short(getattr(after, name)),
        )
        # Only examples, keywords and kind feed the matcher; of these /set changes kind.
        return [self._report(done, slug if name == "kind" else None, old, change_id)]

    def example(self, who: Admin, text: str) -> list[Output]:
        """Add an example phrase: /example SLUG PHRASE."""
        slug, phrase = arguments(text, 2)
        if not slug or not phrase:
            return [Reply(USAGE["example"])]
        entry = self._entry_or_explain(slug, "example")
        if isinstance(entry, Reply):
            return [entry]
        if len(phrase) > MAX_EXAMPLE_CHARS:
            return [Reply(TOO_LONG.format(what="示例", n=len(phrase), limit=MAX_EXAMPLE_CHARS))]
        try:
            after, change_id, old = self._write(
                lambda s: s.add_example(slug, phrase, actor=who.actor)
            )
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)))]
        log.info("admin %s added an example to %s", who.log_name, slug)
        added = after.examples[-1]
        lines = [EXAMPLE_ADDED.format(slug=e(slug), phrase=e(added), n=len(after.examples))]
        lines += self._elsewhere(added, slug)
        return [self._report("\n".join(lines), slug, old, change_id)]

    def _elsewhere(self, phrase: str, slug: str) -> list[str]:
        now = self.kb.match(phrase).intent
        if now == slug:
            return []
        return [
            EXAMPLE_ELSEWHERE.format(now=f"<code>{e(now)}</code>" if now else "无", slug=e(slug))
        ]

    def unexample(self, who: Admin, text: str) -> list[Output]:
        """Remove an example phrase: /unexample SLUG PHRASE."""
        slug, phrase = arguments(text, 2)
        if not slug or not phrase:
            return [Reply(USAGE["unexample"])]
        entry = self._entry_or_explain(slug, "unexample")
        if isinstance(entry, Reply):
            return [entry]
        try:
            after, _, _ = self._write(lambda s: s.remove_example(slug, phrase, actor=who.actor))
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)))]
        log.info("admin %s removed an example from %s", who.log_name, slug)
        return [
            Reply(
                EXAMPLE_REMOVED.format(
                    slug=e(slug), phrase=e(clean_text(phrase)), n=len(after.examples)
                )
            )
        ]

    def delete(self, who: Admin, text: str) -> list[Output]:
        """Ask to confirm deleting an entry: /delete SLUG."""
        (slug,) = arguments(text, 1)
        if len(slug.split()) > 1:
            return [Reply(USAGE["delete"])]
        entry = self._entry_or_explain(slug, "delete")
        if isinstance(entry, Reply):
            return [entry]
        token = self._remember(
            who, Pending("delete", time.monotonic() + PENDING_TTL, slug=entry.slug)
        )
        return [
            Reply(
                DELETE_ASK.format(slug=e(entry.slug), title=e(entry.title), n=len(entry.examples)),
                confirm_buttons("del", BUTTON_CONFIRM_DELETE, token),
            )
        ]

    def import_usage(self, who: Admin, text: str) -> list[Output]:
        """/import without a document: how to send one."""
        return [Reply(USAGE["import"])]

    def import_document(self, who: Admin, name: str, data: bytes) -> list[Output]:
        """Preview replacing the knowledge base with a document, and ask to confirm."""
        self.kb.refresh()
        if len(data) > MAX_IMPORT_BYTES:
            log.info("admin %s: import refused: %d bytes, over the limit", who.log_name, len(data))
            return [Reply(IMPORT_TOO_LARGE.format(limit=MAX_IMPORT_BYTES // 2**20))]
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            log.info("admin %s: import refused: not UTF-8", who.log_name)
            return [Reply(IMPORT_NOT_UTF8)]
        try:
            entries = parse_document(text)
        except DocumentError as exc:
            log.info("admin %s: import refused: %s", who.log_name, exc)
            return [Reply(IMPORT_REFUSED.format(reason=e(document_error_zh(str(exc)))))]
        diff = diff_documents(
            [x.to_dict() for x in self.kb.entries()], [x.to_dict() for x in entries]
        )
        if diff.empty:
            return [Reply(IMPORT_SAME)]
        lines = [IMPORT_HEAD.format(name=e(name or "document"), n=len(entries))]
        lines += diff_lines(diff)
        lines.append(IMPORT_ASK)
        pending = Pending(
            "import",
            time.monotonic() + PENDING_TTL,
            document=text,
            revision=self.kb.revision,
            summary=(len(diff.added), len(diff.changed), len(diff.removed)),
        )
        token = self._remember(who, pending)
        return [Reply("\n".join(lines), confirm_buttons("imp", BUTTON_CONFIRM_IMPORT, token))]

    def undo(self, who: Admin, text: str) -> list[Output]:
        """Take back the latest change not yet undone; again for the one before. A whole
        import is taken back only after a confirmation."""
        latest = self.kb.store.latest_undoable()
        if latest is not None and latest.action == "import":
            diff = diff_documents(latest.after or [], latest.before or [])
            token = self._remember(
                who, Pending("undo", time.monotonic() + PENDING_TTL, change_id=latest.id)
            )
            ask = UNDO_IMPORT_ASK.format(
                id=latest.id,
                actor=e(latest.actor),
                at=fmt_time(latest.at),
                n=len(latest.after or []),
                diff="\n".join(diff_lines(diff)) or "（没有变化）",
            )
            return [Reply(ask, confirm_buttons("und", BUTTON_CONFIRM_UNDO, token))]
        change, _, old = self._write(lambda s: s.undo(actor=who.actor))
        if change is None:
            return [Reply(UNDO_NOTHING)]
        log.info("admin %s undid change #%s", who.log_name, change.id)
        slug = change.slug if change.slug and self.kb.entry(change.slug) else None
        return [self._report(undone_text(change), slug, old, None)]

    # -- confirmations ----------------------------------------------------------------------

    def _confirm_delete(self, who: Admin, token: str) -> list[Output]:
        pending = self._take(who, token, "delete")
        if pending is None:
            return [Reply(STALE)]
        slug = pending.slug
        try:
            entry, change_id, _ = self._write(lambda s: s.delete(slug, actor=who.actor))
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)), edit=True)]
        log.info("admin %s deleted entry %s", who.log_name, slug)
        return [
            Reply(
                DELETED.format(slug=e(slug), title=e(entry.title)),
                undo_buttons(change_id),
                edit=True,
            )
        ]

    def _confirm_import(self, who: Admin, token: str) -> list[Output]:
        pending = self._take(who, token, "import")
        if pending is None:
            return [Reply(STALE)]
        if self.kb.revision != pending.revision:
            return [Reply(IMPORT_MOVED_ON, edit=True)]
        try:
            entries, change_id, _ = self._write(
                lambda s: s.import_document(pending.document, actor=who.actor)
            )
        except (StoreError, DocumentError) as exc:
            reason = document_error_zh(str(exc)) if isinstance(exc, DocumentError) else str(exc)
            return [Reply(IMPORT_REFUSED.format(reason=e(reason)), edit=True)]
        added, changed, removed = pending.summary
        log.info("admin %s imported %d entries", who.log_name, len(entries))
        text = IMPORTED.format(n=len(entries), added=added, changed=changed, removed=removed)
        return [Reply(text, undo_buttons(change_id), edit=True)]

    def _confirm_undo(self, who: Admin, token: str) -> list[Output]:
        pending = self._take(who, token, "undo")
        if pending is None:
            return [Reply(STALE)]
        try:
            change, _, _ = self._write(
                lambda s: s.undo(actor=who.actor, change_id=pending.change_id)
            )
        except StoreError:
            return [Reply(UNDO_STALE, edit=True)]
        log.info("admin %s undid import #%s", who.log_name, pending.change_id)
        return [Reply(undone_text(change), edit=True)]

    def _cancel(self, who: Admin, token: str) -> list[Output]:
        if self._take(who, token, None) is None:
            return [Reply(STALE)]
        return [Reply(CANCELLED, edit=True)]

    def _undo_button(self, who: Admin, change_id: str) -> list[Output]:
        if not change_id.isdigit():
            return [Reply(UNKNOWN_BUTTON)]
        try:
            change, _, old = self._write(
                lambda s: s.undo(actor=who.actor, change_id=int(change_id))
            )
        except StoreError:
            return [Reply(UNDO_STALE)]
        log.info("admin %s undid change #%s", who.log_name, change_id)
        slug = change.slug if change.slug and self.kb.entry(change.slug) else None
        return [SetButtons(None), self._report(undone_text(change), slug, old, None)]

    # -- unmatched questions ----------------------------------------------------------------

    def _unmatched_groups(self) -> tuple[int, list[list[dict[str, Any]]]]:
        rows = self.kb.store.unmatched(UNMATCHED_POOL)
        return len(rows), group_questions(rows, self.kb.pipeline.normalise)

    def unmatched(self, who: Admin, text: str = "", *, edit: bool = False) -> list[Output]:
        """Recent unmatched questions, alike ones grouped, with one-tap assignment buttons."""
        total, groups = self._unmatched_groups()
        if not total:
            return [Reply(f"{UNMATCHED_NONE}\n{self._waiting()}", edit=edit)]
        shown = groups[:UNMATCHED_GROUPS]
        lines = [
            UNMATCHED_HEAD.format(n=total, groups=len(groups), shown=len(shown)),
            self._waiting(),
        ]
        rows: list[list[Button]] = []
        for i, group in enumerate(shown, 1):
            first = group[0]
            cands = list(self.kb.match(first["text"]).candidates[:ASSIGN_CANDIDATES])
            lines.append(f"<b>{i}.</b> ×{len(group)}「{short(first['text'])}」")
            if len(group) > 1:
                alike = " ".join(f"「{short(r['text'], 30)}」" for r in group[1:4])
                lines.append(UNMATCHED_ALIKE.format(texts=alike))
            if cands:
                lines.append(
                    UNMATCHED_CANDIDATES.format(
                        candidates=" · ".join(f"{e(c.slug)} {c.score:.0f}" for c in cands)
                    )
                )
            else:
                lines.append(UNMATCHED_NO_CANDIDATE)
            rows.append(
                [Button(f"{i} → {c.slug}", f"a:as:{first['id']}:{c.slug}") for c in cands]
                + [Button(f"{i} 🗑", f"a:ud:{first['id']}")]
            )
        lines.append(UNMATCHED_HINT)
        return [Reply("\n".join(lines), rows, edit=edit)]

    def _unmatched_group_of(self, store: Store, qid: int) -> list[int]:
        groups = group_questions(store.unmatched(UNMATCHED_POOL), self.kb.pipeline.normalise)
        group = next((g for g in groups if any(r["id"] == qid for r in g)), [])
        return [r["id"] for r in group if r["id"] != qid]

    def _assign(self, who: Admin, qid_text: str, slug: str) -> list[Output]:
        """Add an unmatched question as an example of an entry; its look-alikes go with it."""
        if not qid_text.isdigit() or not SLUG_RE.match(slug):
            return [Reply(UNKNOWN_BUTTON)]
        qid = int(qid_text)

        def assign(store: Store) -> tuple[str, int, bool]:
            question = store.question(qid)
            if question is None:
                raise StoreError("no such question")
            if question["assigned"]:
                raise StoreError(f"that question was assigned to {question['assigned']!r} already")
            entry = store.get(slug)
            if entry is None:
                raise StoreError(f"no entry {slug!r}")
            alike = self._unmatched_group_of(store, qid)
            phrase = clean_text(question["text"][:MAX_EXAMPLE_CHARS])
            added = bool(phrase) and phrase not in entry.examples
            if added:
                store.add_example(slug, phrase, actor=who.actor)
            store.mark_assigned([qid, *alike], slug)
            return phrase, 1 + len(alike), added

        try:
            (phrase, n, added), change_id, old = self._write(assign)
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)))]
        log.info("admin %s assigned %d questions to %s", who.log_name, n, slug)
        text = (ASSIGNED if added else ASSIGNED_KNOWN).format(
            n=n, slug=e(slug), phrase=short(phrase)
        )
        # The listing is shown again without this group, then what was done.
        return [
            *self.unmatched(who, edit=True),
            self._report(text, slug if added else None, old, change_id),
        ]

    def _dismiss_unmatched(self, who: Admin, qid_text: str) -> list[Output]:
        if not qid_text.isdigit():
            return [Reply(UNKNOWN_BUTTON)]
        qid = int(qid_text)
        store = self.kb.store
        question = store.question(qid)
        if question is None or question["assigned"]:
            return [Reply(NOT_CHANGED.format(reason="这组问题已经处理过了"))]
        n = store.dismiss_questions([qid, *self._unmatched_group_of(store, qid)])
        log.info("admin %s dismissed %d unmatched questions", who.log_name, n)
        return [
            *self.unmatched(who, edit=True),
            Reply(UNMATCHED_DISMISSED.format(n=n, phrase=short(question["text"], 30))),
        ]

    # -- suggestions (/review) ----------------------------------------------------------------

    def _review_groups(self, rows: list[dict[str, Any]] | None = None) -> list[list[dict]]:
        """Open suggestions grouped by the entry users went to, then look-alike questions;
        biggest first, those that went nowhere last."""
        rows = self.kb.store.suggestions(REVIEW_POOL) if rows is None else rows
        by_target: dict[str | None, list[dict[str, Any]]] = {}
        for row in rows:
            by_target.setdefault(row["went_to"], []).append(row)
        groups: list[list[dict[str, Any]]] = []
        for _target, members in sorted(
            by_target.items(), key=lambda kv: (kv[0] is None, -len(kv[1]))
        ):
            groups += group_questions(members, self.kb.pipeline.normalise, key="question")
        return groups

    def _review_group_of(self, sid: int) -> list[dict[str, Any]]:
        for group in self._review_groups():
            if any(r["id"] == sid for r in group):
                return sorted(group, key=lambda r: r["id"] != sid)  # the pressed one first
        return []

    def review(self, who: Admin, text: str = "", *, edit: bool = False) -> list[Output]:
        """Questions whose answer users corrected, grouped by where they went, with buttons."""
        rows = self.kb.store.suggestions(REVIEW_POOL)
        if not rows:
            return [Reply(f"{REVIEW_NONE}\n{self._waiting()}", edit=edit)]
        groups = self._review_groups(rows)
        shown = groups[:REVIEW_GROUPS]
        lines = [
            REVIEW_HEAD.format(n=len(rows), groups=len(groups), shown=len(shown)),
            self._waiting(),
        ]
        buttons: list[list[Button]] = []
        for i, group in enumerate(shown, 1):
            first = group[0]
            target = first["went_to"]
            entry = self.kb.entry(target) if target else None
            if entry is not None:
                lines.append(
                    REVIEW_TARGET.format(
                        i=i,
                        slug=e(target),
                        title=short(entry.title, 20),
                        n=len(group),
                        text=short(first["question"]),
                    )
                )
            else:
                lines.append(
                    REVIEW_NO_TARGET.format(i=i, n=len(group), text=short(first["question"]))
                )
            if len(group) > 1:
                alike = " ".join(f"「{short(r['question'], 30)}」" for r in group[1:4])
                lines.append(UNMATCHED_ALIKE.format(texts=alike))
            answered = sorted({r["answered"] for r in group if r["answered"]})
            kinds = {
                k: n for k in SUGGESTION_KIND_NAMES if (n := sum(r["kind"] == k for r in group))
            }
            lines.append(
                REVIEW_FROM.format(
                    answered=" ".join(f"<code>{e(s)}</code>" for s in answered)
                    or "（问了哪种情况）",
                    kinds="，".join(
                        f"{SUGGESTION_KIND_NAMES.get(k, k)} {n}" for k, n in kinds.items()
                    ),
                )
            )
            row = []
            if entry is not None:
                row.append(Button(f"{i} ✅ {target}", f"a:ra:{first['id']}"))
            row += [
                Button(f"{i} ↪ 其他条目", f"a:rp:{first['id']}"),
                Button(f"{i} 🗑 忽略", f"a:rd:{first['id']}"),
            ]
            buttons.append(row)
        lines.append(REVIEW_HINT)
        return [Reply("\n".join(lines), buttons, edit=edit)]

    def _suggestion_id(self, text: str) -> int | None:
        return int(text) if text.isdigit() else None

    def _accept(self, who: Admin, sid_text: str) -> list[Output]:
        sid = self._suggestion_id(sid_text)
        if sid is None:
            return [Reply(UNKNOWN_BUTTON)]
        row = self.kb.store.suggestion(sid)
        if row is None or row["status"] != "open" or not row["went_to"]:
            return [Reply(REVIEW_GONE)]
        return self._accept_group(who, sid, row["went_to"])

    def _accept_to(self, who: Admin, sid_text: str, slug: str) -> list[Output]:
        sid = self._suggestion_id(sid_text)
        if sid is None or not SLUG_RE.match(slug):
            return [Reply(UNKNOWN_BUTTON)]
        return self._accept_group(who, sid, slug)

    def _accept_group(self, who: Admin, sid: int, slug: str) -> list[Output]:
        group = self._review_group_of(sid)
        if not group:
            return [Reply(REVIEW_GONE)]
        if self.kb.entry(slug) is None:
            return [Reply(NO_ENTRY.format(slug=e(slug)))]
        ids = [r["id"] for r in group]
        try:
            (phrase, after), change_id, old = self._write(
                lambda s: s.accept_suggestions(ids, slug, actor=who.actor)
            )
        except StoreError as exc:
            return [Reply(NOT_CHANGED.format(reason=e(exc)))]
        log.info("admin %s accepted %d suggestions for %s", who.log_name, len(ids), slug)
        if after is None:
            done = Reply(REVIEW_KNOWN.format(phrase=short(phrase), slug=e(slug), n=len(ids)))
        else:
            lines = [REVIEW_ACCEPTED.format(phrase=short(phrase), slug=e(slug), n=len(ids))]
            lines += self._elsewhere(phrase, slug)
            done = self._report("\n".join(lines), slug, old, change_id)
        return [*self.review(who, edit=True), done]

    def _pick(self, who: Admin, sid_text: str) -> list[Output]:
        sid = self._suggestion_id(sid_text)
        row = self.kb.store.suggestion(sid) if sid is not None else None
        if row is None or row["status"] != "open":
            return [Reply(REVIEW_GONE)]
        slugs: list[str] = []
        for c in self.kb.match(row["question"]).candidates:
            if c.slug not in slugs:
                slugs.append(c.slug)
        for entry in self.kb.entries():
            if entry.kind in ("cause", "overview") and entry.slug not in slugs:
                slugs.append(entry.slug)
        picks = [
            Button(s, f"a:rt:{sid}:{s}")
            for s in slugs
            if s != row["went_to"] and s != row["answered"]
        ][:REVIEW_PICKS]
        rows = [picks[i : i + 2] for i in range(0, len(picks), 2)]
        return [Reply(REVIEW_PICK.format(text=short(row["question"])), rows)]

    def _dismiss_review(self, who: Admin, sid_text: str) -> list[Output]:
        sid = self._suggestion_id(sid_text)
        if sid is None:
            return [Reply(UNKNOWN_BUTTON)]
        group = self._review_group_of(sid)
        if not group:
            return [Reply(REVIEW_GONE)]
        n = self.kb.store.dismiss_suggestions([r["id"] for r in group])
        log.info("admin %s dismissed %d suggestions", who.log_name, n)
        return [
            *self.review(who, edit=True),
            Reply(REVIEW_DISMISSED.format(n=n, phrase=short(group[0]["question"], 30))),
        ]
