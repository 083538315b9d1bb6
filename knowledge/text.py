"""From a raw message to the tokens the matcher compares.

``normalise`` folds the many ways users type the same thing (full-width forms, Traditional
characters, case, emoji and punctuation, typos and homophones, latin aliases) into one plain
Simplified string. ``TextPipeline.tokens`` segments it with jieba (its own ``Tokenizer`` with
the domain dictionary) and maps surface words to shared concept tokens (``换号``/``换绑`` ->
``PHONE_CHANGE``), drops function words, and applies negation scope (``没逾期`` ->
``NOT_OVERDUE``). The lexicon (``data/lexicon.yaml``) is the one synonym list that feeds both
jieba and the matcher.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path

import jieba
import opencc
import yaml

from knowledge.privacy import matchable

log = logging.getLogger(__name__)

# Messages longer than this are cut before matching: a question is short, and segmentation
# cost grows with length.
MAX_MATCH_CHARS = 400
NEGATION_WINDOW = 3
CONCEPT_FREQ = 200_000
# jieba is the segmenter of record. rjieba (jieba-rs: the same dictionary and algorithm in
# Rust) segments identically with the same user words, about 20x faster, and is used when
# installed; a test checks the two agree on every example phrase. JIEBEI_SEGMENTER=jieba
# forces jieba.
SEGMENTERS = ("auto", "jieba", "rjieba")
_NON_WORD = re.compile(r"[\W_]+")
_LATIN = re.compile(r"[a-z0-9]")
_ANYTHING = re.compile("")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
# str.translate looks every character up in the table: searched first, most text has none.
_HAS_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


@dataclass
class Lexicon:
    """The concept lexicon: surface word -> concept, and the normalisation tables."""

    concepts: dict[str, list[str]] = field(default_factory=dict)
    replace: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    negators: list[str] = field(default_factory=list)
    never_negated: list[str] = field(default_factory=list)
    negated: dict[str, str] = field(default_factory=dict)
    stop_signals: list[str] = field(default_factory=list)
    negator_meaning: dict[str, str] = field(default_factory=dict)
    stopwords: list[str] = field(default_factory=list)
    userdict: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def load(cls) -> Lexicon:
        data = resources.files("knowledge").joinpath("data")
        raw = yaml.safe_load(data.joinpath("lexicon.yaml").read_text("utf-8"))
        userdict = []
        for line in data.joinpath("userdict.txt").read_text("utf-8").splitlines():
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 2000
                userdict.append((parts[0], freq))
        return cls(
            concepts={k: [str(s) for s in v] for k, v in (raw.get("concepts") or {}).items()},
            replace={str(k): str(v) for k, v in (raw.get("replace") or {}).items()},
            aliases={str(k).lower(): str(v) for k, v in (raw.get("aliases") or {}).items()},
            negators=[str(w) for w in raw.get("negators") or []],
            never_negated=[str(w) for w in raw.get("never_negated") or []],
            negated={str(k): str(v) for k, v in (raw.get("negated") or {}).items()},
            stop_signals=[str(w) for w in raw.get("stop_signals") or []],
            negator_meaning={str(k): str(v) for k, v in (raw.get("negator_meaning") or {}).items()},
            stopwords=[str(w) for w in raw.get("stopwords") or []],
            userdict=userdict,
        )

    @cached_property
    def surface_to_concept(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for concept, surfaces in self.concepts.items():
            for surface in surfaces:
                out.setdefault(normalise_basic(surface), concept)
        return out


_t2s = opencc.OpenCC("t2s")


def trie_pattern(keys: Iterable[str]) -> str:
    """A regular expression that matches, at each place, the longest of ``keys`` found there:
    what their alternation longest first matches, written as a trie, so that the regex engine
    follows one branch a character instead of trying every key in turn."""
    trie: dict[str, dict] = {}
    for key in keys:
        if not key:
            continue  # an empty key would match everywhere
        node = trie
        for ch in key:
            node = node.setdefault(ch, {})
        node[""] = {}  # a key ends here

    def pattern(node: dict[str, dict]) -> str:
        branches = [re.escape(ch) + pattern(child) for ch, child in node.items() if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a key ends here: the longer ones are tried first (greedy ?)
            return "(?:" + body + ")?" if len(branches) == 1 else body + "?"
        return body

    return pattern(trie)


def normalise_basic(text: str) -> str:
    """Width, script and case folding; no domain knowledge."""
    if _HAS_ZERO_WIDTH.search(text):
        text = text.translate(_ZERO_WIDTH)
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return _t2s.convert(text).lower()


class TextPipeline:
    """Normalisation and segmentation with the domain lexicon; thread-safe after construction."""

    def __init__(self, lexicon: Lexicon | None = None, segmenter: str | None = None) -> None:
        self.lexicon = lexicon or Lexicon.load()
        lex = self.lexicon
        self._surface = lex.surface_to_concept
        self._concept_names = frozenset(lex.concepts)
        self._negators = set(lex.negators)
        self._never_negated = set(lex.never_negated)
        self._stopwords = set(lex.stopwords) - self._negators
        self._replace_re = re.compile(trie_pattern(lex.replace)) if lex.replace else None
        # Latin aliases are whole words or phrases ("jb", "shut down"), never parts of a word.
        aliases = sorted(lex.aliases, key=len, reverse=True)
        self._alias_re = (
            re.compile(
                r"(?<![a-z0-9])(?:" + "|".join(re.escape(a) for a in aliases) + r")(?![a-z0-9])"
            )
            if aliases
            else None
        )
        # Every alias has a latin letter or digit (they are latin by design): a message
        # without one has none of them, and the alternation need not be tried at each place.
        self._alias_needs = (
            _LATIN if aliases and all(_LATIN.search(a) for a in aliases) else _ANYTHING
        )
        self._lock = threading.Lock()
        self._words = [
            (w, f)
            for w, f in [(w, CONCEPT_FREQ) for w in self._surface]
            + [(n, CONCEPT_FREQ) for n in lex.negators if len(n) > 1]
            + lex.userdict
            if w and " " not in w
        ]
        choice = segmenter or os.environ.get("JIEBEI_SEGMENTER", "auto")
        if choice not in SEGMENTERS:
            raise ValueError(f"JIEBEI_SEGMENTER must be one of {', '.join(SEGMENTERS)}")
        self._fast = None
        if choice != "jieba":
            try:
                import rjieba
            except ImportError:
                if choice == "rjieba":
                    raise
            else:
                self._fast = rjieba.Jieba()
                for word, freq in self._words:
                    self._fast.add_word(word, freq, None)
        self.backend = "rjieba" if self._fast is not None else "jieba"
        if self._fast is None:
            self.tokenizer  # noqa: B018 - build jieba's dictionary now, not on the first message

    @cached_property
    def tokenizer(self) -> jieba.Tokenizer:
        """jieba's own Tokenizer with the domain dictionary: the segmenter of record."""
        return _make_tokenizer(self._words)

    def normalise(self, text: str) -> str:
        """Fold a raw message into plain lower-case Simplified Chinese words and spaces.

        Personal numbers are masked first and their placeholders dropped
        (:func:`knowledge.privacy.matchable`): an ID number is no evidence of an ID problem.
        """
        text = normalise_basic(matchable(text[: MAX_MATCH_CHARS * 2]))[:MAX_MATCH_CHARS]
        if self._alias_re is not None and self._alias_needs.search(text):
            text = self._alias_re.sub(lambda m: self.lexicon.aliases[m.group(0)], text)
        return " ".join(_NON_WORD.sub(" ", self.replaced(text)).split())

    def replaced(self, text: str) -> str:
        """``text`` with the lexicon's ``replace`` table applied (longest key first, one pass)."""
        if self._replace_re is None:
            return text
        return self._replace_re.sub(lambda m: self.lexicon.replace[m.group(0)], text)

    def segment(self, normalised: str) -> list[str]:
        """jieba words of a normalised string; a run of spaces (where punctuation was) is
        kept as one " " word, so that negation does not reach across it."""
        with self._lock:  # jieba's Tokenizer is not documented as thread-safe
            if self._fast is not None:
                words = self._fast.cut(normalised, True)
            else:
                words = self.tokenizer.lcut(normalised, HMM=True)
        return [" " if w.isspace() else w for w in words]

    def segment_with_jieba(self, normalised: str) -> list[str]:
        """The same as ``segment``, always with jieba (to check a faster backend agrees)."""
        with self._lock:
            words = self.tokenizer.lcut(normalised, HMM=True)
        return [" " if w.isspace() else w for w in words]

    def _negate(self, concept: str, rewrite: dict[str, str], negator: str | None = None) -> str:
        """A concept under a negator: the lexicon's rewrite (没 + 借过 -> UNUSED), else
        ``NOT_<concept>``. A negated negative is the positive where the lexicon has it:
        没有 + 按时还 -> OVERDUE, 不在 + 本地 -> REMOTE_LOGIN."""
        if concept.startswith("NOT_"):
            positive = concept[4:]
            return positive if positive in self._concept_names else concept
        if rewrite.get(concept) == concept:
            return concept  # 不给提额, 没提额: still a question about the limit
        if negator in MODAL_NEGATORS:
            if concept == "BORROW":
                return "STOPPED"  # 没法借钱, 无法借款: cannot borrow is the stop itself
            # 不能分期, 无法还款: cannot, not did not; 没还 (overdue) is another thing.
            return "NOT_" + concept
        return rewrite.get(concept, "NOT_" + concept)

    def concepts(self, words: Iterable[str]) -> list[str]:
        """Map words to concept tokens, drop stop words, apply negation scope.

        A negator turns the next negatable concept within NEGATION_WINDOW function words
        into ``NOT_<concept>`` (or into the lexicon's ``negated`` rewrite: 没 + 借过 means
        unused). Products and question words are never negated and do not end the scope; a
        pause (punctuation) or a content word (货款没回来, 没扣成功) does. A negator that
        finds nothing to negate leaves its own meaning (``negator_meaning``: 没用 alone
        means unused) or the token ``NEG``.
        """
        out: list[str] = []
        pending: str | None = None  # the negator whose scope is open
        left = 0
        rewrite = self.lexicon.negated

        def close() -> None:
            nonlocal pending, left
            if pending is not None:
                out.append(self.lexicon.negator_meaning.get(pending, "NEG"))
            pending, left = None, 0

        negated_run = False
        clause = _Clause()  # what this clause (up to the last pause) has said
        last_named: str | None = None  # the product named last in the message so far
        prev = ""  # the word before this one, in this clause
        before = earlier = ""  # the word before this one's, and the one before that
        wished = False  # a wish said in the words (想关闭, 想要, 打算)
        cant_close = False  # 关不了, 关不掉: the user tried to close it
        bare_stop: int | None = None  # where a bare 关闭 after 借呗 became STOPPED
        operate = False  # ... and the message then asks how to do it (借呗关闭怎么操作)
        used_stops: set[int] = set()  # where a stop said 不能用 / 用不了
        after_stops: set[int] = set()  # where a stop word said after it (关闭后)
        stop_word_at = -2  # the word that made the last STOPPED
        prev_flags = before_flags = 0  # WORD_FLAGS of prev and before
        words = list(words)
        for at, word in enumerate(words):
            earlier, before, prev = (before if prev else ""), prev, word
            before_flags, prev_flags = prev_flags, 0
            if word == " ":
                prev = ""
                close()
                negated_run = False
                clause = _Clause(start=len(out))
                continue
            # One lookup says which of the word lists (WORD_FLAGS) it is in (most: none).
            flags = prev_flags = WORD_FLAGS.get(word, 0)
            if flags:
                if flags & _HEARD:
                    clause.hear(word, before, earlier, words[at + 1 : at + 2])
                if flags & _ASKS_HOW:
                    clause.asked_how = True
                elif flags & _CAUSES and clause.asked_how:
                    clause.causative = True  # 怎么让借呗借不了: how to make it stop
                if flags & _CANT_CLOSE:
                    cant_close = True  # 为什么关不了: the user tries to close it
                if flags & _LOAN and clause.last_product is None:
                    # 房贷断供, 有笔贷款逾期, 欠银行的钱: a loan that is not 借呗 owns the overdue
                    last_named = "BANK_LOAN"
            if word in self._negators:
                close()
                pending, left = word, NEGATION_WINDOW
                negated_run = False
                continue
            concept = self._surface.get(word)
            if concept is None and flags & _BARE_STOP and (_by_me(before, earlier) or _wants(out)):
                concept = "SELF_CLOSE"  # 我关闭借呗后…, 我已经停用了, 想把它关掉: the user's
            if (
                concept is None
                and before_flags & _ABLE_OR_MANNER  # (most words: no lookup past this bit)
                and _asked_able(before, earlier)
                and _voluntary(word)
            ):
                concept = "SELF_CLOSE"  # 借呗能关掉么, 能停用吗: whether one can close it
            if (
                concept is None
                and flags & _BARE_STOP
                and out
                and (
                    out[-1] == "JIEBEI"
                    or out[-2:] == ["JIEBEI", "SUDDEN"]  # 借呗突然关闭
                    or clause.passive  # 被系统关闭: done to the user
                )
                and pending is None  # 借呗不停用会怎样: under a negator
                and not clause.disposal  # 把借呗关闭: the user's doing
            ):
                concept = "STOPPED"  # 借呗关闭, 借呗停用: 借呗 is the subject (not 关闭借呗)
                bare_stop = len(out)
            if bare_stop is not None and word in OPERATE_WORDS:
                operate = True
            if concept is not None:
                if pending is not None and concept not in self._never_negated:
                    concept = self._negate(concept, rewrite, pending)
                    if concept == "UNUSED" and word.startswith("开"):
                        concept = "OPEN"  # 从来没有开通过: never had it (没借过: unused)
                    # 没用公共wifi: the negation covers the concepts right after, too.
                    pending, left = None, 0
                    negated_run = True
                elif negated_run and concept not in self._never_negated:
                    concept = self._negate(concept, rewrite)
                else:
                    negated_run = False
                if concept in OTHER_PRODUCTS:
                    _claim_overdue(out, clause, before, words[at + 1 : at + 3])
                if concept in PRODUCTS:
                    named = len(out) > clause.start
                    if named and out[-1] in PRODUCTS:
                        clause.both = True  # 借呗花呗被冻结, 借呗和花呗不见了: both's stop
                        if concept == "JIEBEI" and out[-2:-1] == ["OTHER_STOPPED"]:
                            out[-2] = "STOPPED"  # 停用了花呗和借呗: both are its objects
                    else:
                        # named alone again (借呗花呗都还了为什么花呗用不了): its own stop
                        clause.both = False
                    if (
                        concept == "JIEBEI"
                        and named
                        and out[-1] == "OTHER_STOPPED"
                        and out[-2:-1] != [clause.last_product]
                        and before not in SENTENCE_ENDS
                    ):
                        # 用不了借呗: 借呗 is the object (not in 花呗不能用了借呗还能借吗, where
                        # the stop has its subject right before it, nor after 付款失败了: a
                        # stop said to its end)
                        out[-1] = "STOPPED"
                    elif (
                        concept != "JIEBEI"
                        and named
                        and out[-1] == "STOPPED"
                        and (
                            before in MINE
                            or (before == "的" and earlier in MINE)
                            or word.startswith("我")
                            or (stop_word_at == at - 1 and out[-2:-1] != ["JIEBEI"])
                        )
                    ):
                        # 关了我的花呗, 停我花呗, 为什么用不了花呗: its object (not in
                        # 借呗用不了花呗也用不了, where the stop has 借呗 right before it)
                        out[-1] = "OTHER_STOPPED"
                    clause.last_product = last_named = concept
                elif concept in STOP_OWNERS:
                    clause.last_product = concept  # 网商贷用不了了: its own stop
                if concept in READ_CLOSER:
                    concept = self._read_closer(
                        concept,
                        word,
                        (before, earlier),
                        words[at + 1 : at + 2],
                        out,
                        clause,
                        last_named,
                    )
                    if concept == "STOPPED":
                        if word.endswith(("后", "以后", "之后")):
                            after_stops.add(len(out))
                        if "用" in word:
                            used_stops.add(len(out))  # 不能用 / 用不了: maybe with what
                        stop_word_at = at
                wished = wished or concept == "WANT" or "想" in word
                out.append(concept)
                continue
            negated_run = False
            if word in self._stopwords:
                if pending is not None:
                    left -= 1
                    if left <= 0:
                        close()
                continue
            # A content word is what the negator was about (货款没回来): the scope ends.
            close()
            if word in HOLDERS:
                clause.last_product = "HOLDER"  # 银行卡被冻结: the card's stop, not 借呗's
            elif word in DEVICES and "换" in out[-2:]:
                word = "OTHER_DEVICE"  # 换了好几次手机: 换 and its object, a count between
            out.append(word)
        close()
        if bare_stop is not None and operate and out[bare_stop] == "STOPPED":
            out[bare_stop] = "SELF_CLOSE"  # 借呗关闭怎么操作: how to close it oneself
        for at in used_stops:
            # 不能用信用卡还款吗, 用不了余额宝还: which means of repaying, not a stop (nor the
            # card's debt)
            if (
                out[at] == "STOPPED"
                and out[at + 1 : at + 2]
                and (out[at + 1] in MEANS_TOKENS or out[at + 1] in HOLDERS)
                and out[at + 2 : at + 3]
                and out[at + 2] in REPAY_WORDS
            ):
                out[at] = "REPAY"
        if "STOPPED" in out:
            # 借呗关了的话花呗还能用吗, 借呗停了之后芝麻分会不会降: what a stop does to
            # something else is asked, not why 借呗 stopped (关闭后怎么重新开通 still is)
            at = out.index("STOPPED")
            after = at in after_stops or (at + 1 < len(out) and out[at + 1] in AFTER_WORDS)
            if after and any(t in AFFECTED or "芝麻" in t for t in out[at + 1 :]):
                out[at] = "AFTER_STOP"
                # ... and what it affects is asked about, not the stop's cause (信用卡还能用吗,
                # 征信会有记录吗); 还能用吗 said of it is that product's, not 借呗 coming back
                out[at + 1 :] = [
                    "WORKS_ASKED"
                    if t == "RESTORE" and p in AFFECTED
                    else ASKED_AFTER_STOP.get(t, t)
                    for p, t in pairwise(out[at:])
                ]
        if "WHY" in out and not wished and not cant_close:
            # 为什么要关闭我的借呗, 凭什么取消我借呗: asking why it was closed is a complaint
            # about the provider's doing, not a wish to close it oneself.
            out = ["STOPPED" if t == "SELF_CLOSE" else t for t in out]
        return out

    @staticmethod
    def _read_closer(
        concept: str,
        word: str,
        previous: tuple[str, str],
        after: list[str],
        out: list[str],
        clause: _Clause,
        last_named: str | None,
    ) -> str:
        """A stop, an overdue, a closing, a risk or an effect, read in its context (the two
        words before it in its clause, the word after it, the tokens so far): whose it is, who
        did it, what it is said of."""
        before, earlier = previous
        if concept == "SELF_CLOSE" and word in CANCELS and clause.passive:
            concept = "STOPPED"  # 被系统取消: done to the user (被家人取消: see below)
        if concept == "RISK":
            if word in ASKED_RISKS and (before in RISK_ASKS or after in ASKED_AFTER):
                return "RISK_ASKED"  # 借呗有什么风险, 用借呗有风险吗: a question, no cause
            return concept
        if concept == "AFFECT":
            said = out[clause.start :]
            if (
                word in RELATION_WORDS
                and sum(t in NAMED_PRODUCTS for t in said) >= 2
                and all(t in NAMED_PRODUCTS or t in RELATION_FILLERS for t in said)
            ):
                return "COMPARE"  # 网商贷和借呗有关联吗: how the products relate
            return concept
        if concept == "STOPPED":
            if _thing_of(out, clause.start):
                return "THING_GONE"  # 借呗积分没有了, 订单取消了: that thing, not 借呗
            if _users_doing(word, before, earlier, out, clause):
                return "SELF_CLOSE"
            if clause.last_product in STOP_OWNERS and not clause.both:
                return "OTHER_STOPPED"  # 花呗用不了 (借呗 is fine): not our question
            return concept
        if concept == "OVERDUE":
            if before in ABLE_WORDS:
                return "REPAY"  # 可以延期还款吗, 能晚还几天吗: asking how to repay
            if last_named in OTHER_PRODUCTS and not (
                clause.both and "JIEBEI" in out[clause.start :]
            ):
                # 花呗晚还了, 信用卡逾期 (in this clause or an earlier one): another product's
                # overdue, not 借呗's own.
                return "OTHER_OVERDUE"
        return concept

    def tokens(self, text: str) -> list[str]:
        """The matcher's view of a raw message."""
        return self.concepts(self.segment(self.normalise(text)))


# Whose stop is it: the product named last before the stop word, in the same clause.
PRODUCTS = frozenset({"JIEBEI", "HUABEI", "ONLINE_LOAN", "CREDIT_CARD", "BANK_LOAN"})
OTHER_PRODUCTS = PRODUCTS - {"JIEBEI"}
# Where money is held (a card, 余额宝): a stop right after one is its own (银行卡被冻结了).
HOLDERS = frozenset(
    {"银行卡", "储蓄卡", "借记卡", "工资卡", "还款卡", "收款卡", "余额宝", "零钱", "卡"}
)
STOP_OWNERS = OTHER_PRODUCTS | {"HOLDER", "WANGSHANGDAI"}
# The concepts read again in their context (TextPipeline._read_closer).
READ_CLOSER = frozenset({"STOPPED", "SELF_CLOSE", "OVERDUE", "RISK", "AFFECT"})
# Two products and nothing else, then one of these (网商贷和借呗有关联吗, 借呗跟花呗相关吗):
# how the products relate, not what one did to the other (花呗逾期跟借呗有关系吗).
NAMED_PRODUCTS = PRODUCTS | {"WANGSHANGDAI", "CREDITLOAN", "ALIPAY"}
RELATION_WORDS = frozenset(
    {"关联", "有关联", "挂钩", "有关系", "有关系吗", "有没有关系", "相关", "有关", "关系"}
    | {"有联系", "有没有联系"}
)
RELATION_FILLERS = frozenset({"有", "之间", "到底", "是否", "是不是"})
# What a stop word is said of: the last token before it in its clause, past these asides.
ASIDES = frozenset({"WHY", "HOWTO", "SUDDEN", "怎么", "咋", "又", "已经", "都", "也", "全", "申请"})
# Things of 借呗's that are not its credit line: gone or cancelled, they are (借呗积分没有了,
# 借呗订单取消了, 借呗授权取消了); a term (12期没了), a raise of the limit (提额被拒). Not 短信 /
# 通知 / 提醒: they report a stop (短信通知借呗关闭了). Not 钱 (measured: customers' overview).
THINGS = (
    *("积分", "记录", "账单", "订单", "合同", "授权", "红包", "券", "优惠", "活动", "验证码"),
    *("密码", "证明", "权益", "头像", "分期", "期数", "保险", "会员", "福利", "奖励", "折扣"),
    *("协议", "签约", "刷脸", "人脸", "还款日", "选项", "期限", "利率", "收款码", "芝麻信用"),
    "芝麻分",
)
TERM_UNITS = frozenset({"期", "月", "个月", "年"})
NUMERALS = frozenset("一二两三四五六七八九十百")
THING_TOKENS = frozenset({"LIMIT_UP"})  # 提额被拒, 临时额度没了: the raise, not the line
# Cancelling said in the passive (被系统取消) is done to the user, not by them.
CANCELS = frozenset({"取消", "注销", "取消掉", "注销掉"})
# Risk asked about (有什么风险, 有风险吗, 风险大吗), not a risk the account was found to have.
ASKED_RISKS = frozenset({"风险", "有风险", "安全风险"})
RISK_ASKS = frozenset(
    {"什么", "啥", "有没有", "会不会", "会不会有", "会有", "有啥", "哪些", "是否"}
)
ASKED_AFTER = (["吗"], ["么"], ["嘛"], ["大"], ["大不大"], ["高"], ["高不高"], ["不"])
# Said right after a stop word, these end it: what follows is no object of it (失败了 借呗…).
SENTENCE_ENDS = frozenset({"了", "啦", "呢", "吧", "啊"})
# 换 + a count + one of these (换了好几次手机): a change of device, as 换手机 is.
DEVICES = frozenset({"手机", "新手机", "电脑", "设备"})
# Whose product is the object of a stop word (关了我的花呗): the user's.
MINE = frozenset({"我", "我的"})
# After a stop (关了之后, 关了的话), one of these asked about: the stop's consequences.
AFTER_WORDS = frozenset({"之后", "以后", "后", "的话"})
AFFECTED = frozenset({"HUABEI", "CREDIT", "CREDIT_CARD", "OVERDUE"})
ASKED_AFTER_STOP = {"CREDIT_CARD": "CARD_ASKED", "CREDIT": "CREDIT_ASKED"}
# 不能用 one of these + 还: asking what one can repay with (a card, 花呗, 余额宝).
MEANS_TOKENS = frozenset({"CREDIT_CARD", "HUABEI"})
REPAY_WORDS = frozenset({"还", "REPAY", "PREPAY"})
# Negators that say cannot, not did not: their rewrite (没 + 还款 -> OVERDUE) does not apply.
MODAL_NEGATORS = frozenset({"不能", "无法", "没法", "不可以", "不让", "不给"})
# Loans named in passing that are not 借呗 (concepts of their own or none): they own an overdue.
LOAN_WORDS = frozenset({"房贷", "车贷", "贷款", "银行", "月供", "房贷款", "车贷款", "按揭"})
# "是 花呗", "不是借呗，是花呗": whose an overdue said earlier is.
OWNER_WORDS = frozenset({"是", "都是", "就是", "只是", "不过是"})
# Bare verbs the lexicon leaves out (who closed it matters), a stop right after 借呗 (or
# after 借呗 and 突然 / 无故).
BARE_STOPS = frozenset({"关闭", "停用", "关掉"})
DISPOSAL_WORDS = frozenset({"把", "将"})
CANT_CLOSE = frozenset({"关不了", "关不掉", "关闭不了", "注销不了", "关不上"})
# Asked whether one can (借呗能冻结吗), a voluntary stop verb is the user's own closing; 怎么
# is left out (借呗怎么冻结了 asks why).
ABLE_WORDS = frozenset(
    {"能", "可以", "能不能", "可不可以", "能否", "如何", "怎样", "申请", "帮我"}
    | {"怎样才能", "怎么才能", "如何才能"}
)
VOLUNTARY_STOPS = frozenset(
    {"停掉", "暂停", "冻结", "禁用", "停止使用", "关闭", "关掉", "停用", "停止", "关停", "注销"}
)
MANNERS = frozenset({"暂时", "永久", "彻底", "先", "直接", "自己", "一起", "同时"})
ABLE_OR_MANNER = ABLE_WORDS | MANNERS
VOLUNTARY_STEMS = (
    *("暂停", "停用", "关闭", "关掉", "冻结", "注销", "销户", "停掉", "禁用"),
    *("暂时关闭", "临时关闭", "暂时停用"),
)
# How to stop it, 借呗 named after (怎么冻结借呗): the user's own; 借呗怎么冻结了 asks why.
HOW_WORDS = frozenset({"怎么", "如何", "怎样", "咋", "怎么样"})
# ... unless the message then asks how to do it (借呗关闭怎么操作): the user's own closing.
OPERATE_WORDS = frozenset(
    {"怎么操作", "如何操作", "步骤", "流程", "在哪", "在哪里", "在哪儿", "哪里", "哪"}
)
BOTH_WORDS = frozenset({"都", "也", "全", "全都", "一起", "同时"})
# The user as the subject right before a stop (我关了, 我取消了): the user's own doing.
SELF_WORDS = frozenset({"我", "俺", "我们", "本人", "我自己", "我已经", "我刚"})
# ... when the stop word is an act (我关了, 我取消了), not a state the user reports (我借不了).
CLOSING_VERBS = ("关", "取消", "注销", "停", "禁用", "解约", "退出")
STATE_MARKS = ("不", "没", "被")
# 自己关闭了 before 借呗 is named in the clause: the user closed it (after, 借呗自己关了,
# it may have closed by itself: a stop).
BY_ONESELF = frozenset({"自己关了", "自己关闭了", "自己就关了", "自己关掉了"})
# Between the user and the act: 我已经关了, 我刚关了.
ADVERBS = frozenset({"已经", "刚", "刚刚", "早就", "之前", "以前", "前几天", "昨天", "自己"})
# Someone of the user's who may have closed it for them (老婆把我借呗关了).
FAMILY = frozenset(
    {"家人", "家里人", "老婆", "老公", "媳妇", "我妈", "我爸", "爸妈", "孩子", "儿子", "女儿"}
    | {"男朋友", "女朋友", "对象", "爱人"}
)
# Asked how to make it so (怎么让借呗不能借钱, 能不能设置成借不了): the user wants it stopped.
CAUSATIVE = frozenset({"让", "设置", "设置成", "设成", "弄成", "变成", "改成"})
ASK_HOW = HOW_WORDS | ABLE_WORDS | {"怎么弄", "咋弄", "怎么搞", "咋搞", "怎么设置"}
# The words a clause's state listens for (_Clause.hear): any other word leaves it as it was.
CLAUSE_WORDS = BOTH_WORDS | DISPOSAL_WORDS | FAMILY | {"被"}
# Which of the lists above a word is in, as bits: concepts() looks each word up once (most
# words are in none), and remembers the bits of the word before.
_HEARD, _ASKS_HOW, _CAUSES, _CANT_CLOSE, _LOAN, _BARE_STOP, _ABLE_OR_MANNER = (
    1 << n for n in range(7)
)
WORD_FLAGS: dict[str, int] = {}
for _bit, _words in (
    (_HEARD, CLAUSE_WORDS),
    (_ASKS_HOW, ASK_HOW),
    (_CAUSES, CAUSATIVE),
    (_CANT_CLOSE, CANT_CLOSE),
    (_LOAN, LOAN_WORDS),
    (_BARE_STOP, BARE_STOPS),
    (_ABLE_OR_MANNER, ABLE_OR_MANNER),
):
    for _word in _words:
        WORD_FLAGS[_word] = WORD_FLAGS.get(_word, 0) | _bit
del _bit, _words, _word
AGENT_MARKS = frozenset({"被", "让", "叫"})  # not 给: 给儿子付首付 is for him
# By mistake (不小心关了, 误把借呗关了): only the user closes a thing by accident.
ACCIDENT_WORDS = frozenset({"不小心", "一不小心", "误", "手滑", "点错", "误操作"})
# ... unless someone else did it to the user (给我停了, 把我关了): the provider's doing.
BY_OTHERS = frozenset({"给", "把"})


@dataclass(slots=True)
class _Clause:
    """What one clause of a message (up to a pause) has said so far."""

    start: int = 0  # where in the tokens it began
    last_product: str | None = None  # the product (or card, HOLDER) named last in it
    both: bool = False  # "借呗花呗都…": a stop is about every product named
    disposal: bool = False  # 把 / 将 (把借呗关闭)
    passive: bool = False  # 被 (被系统关闭)
    self_disposal: bool = False  # the user before 把: 我把, 不小心把, 自己把
    family: bool = False  # someone of the user's as the doer: 老婆把…, 被家人…
    asked_how: bool = False  # 怎么, 能不能, 如何: how or whether one can
    causative: bool = False  # ... then 让 / 设置 (怎么让借呗借不了): how to make it stop

    def hear(self, word: str, before: str, earlier: str, after: list[str]) -> None:
        if word in BOTH_WORDS:
            self.both = True
        if word in DISPOSAL_WORDS:
            self.disposal = True
            # 我把借呗停用了, 不小心把借呗关了: the user did it
            self.self_disposal = (
                before in SELF_WORDS or before in ACCIDENT_WORDS or before == "自己"
            )
        if word == "被":
            self.passive = True
        if word in FAMILY and (
            before in AGENT_MARKS
            or (before in SELF_WORDS and earlier in AGENT_MARKS)  # 让我老公
            or after in (["把"], ["帮"], ["帮我"])  # 老婆把我借呗关了
        ):
            self.family = True  # the one who did it, not whose 借呗 it is (老公借呗突然关了)


def _users_doing(word: str, before: str, earlier: str, out: list[str], clause: _Clause) -> bool:
    """True when a stop word is the user's own doing or wish, not the provider's: wanted
    (想把借呗关了), done (我关了, 我取消了, 我已经关闭了, 我把借呗停用了), by mistake
    (不小心关了), by someone of the user's (老婆把我借呗关了), by oneself before 借呗 is
    named (自己关闭了借呗; 借呗自己关了 may have closed by itself), or asked how or whether
    one can (怎么冻结借呗, 借呗能停掉吗)."""
    act = _closing_act(word)
    not_yet_named = "JIEBEI" not in out[clause.start :]
    return (
        _wants(out)
        or clause.causative
        or (clause.self_disposal and not word.startswith("被"))
        or (act and (before in ACCIDENT_WORDS or clause.family))
        or (((before == "自己" and act) or word in BY_ONESELF) and not_yet_named)
        or (act and _by_me(before, earlier) and earlier not in BY_OTHERS)
        or (before in HOW_WORDS and not_yet_named and _voluntary(word))
        or (_asked_able(before, earlier) and _voluntary(word))
    )


def _asked_able(before: str, earlier: str) -> bool:
    """Whether one can is asked right before (能停用吗), or before how (可以暂时关闭吗)."""
    return before in ABLE_WORDS or (before in MANNERS and earlier in ABLE_WORDS)


def _voluntary(word: str) -> bool:
    """A stop verb one can do oneself, with what jieba joined to it (暂停使用); not one said
    done (冻结了: 怎么冻结了 asks why)."""
    return word in VOLUNTARY_STOPS or (
        word.startswith(VOLUNTARY_STEMS)
        and not word.endswith("了")
        and not any(n in word for n in STATE_MARKS)
    )


def _is_number(word: str) -> bool:
    """12, 十二个, 一年, 两: a count (of months, of instalments)."""
    word = word.removesuffix("个").removesuffix("年")
    return bool(word) and all(ch.isdigit() or ch in NUMERALS for ch in word)


def _thing_of(out: list[str], start: int) -> bool:
    """True when what a stop word is said of (the last word before it in the clause, past
    question words) is a thing of 借呗's that is not its credit line (积分, 电子合同), or a
    term (12期没了, 十二个月没了, 一年期的没有了; not 这个月没了)."""
    k = _said_of(out, start, len(out) - 1)
    if k < start:
        return False
    token = out[k]
    if token.isascii():  # a concept (借呗额度没了) or a number
        return token in THING_TOKENS
    if token.endswith("期") and len(token) > 1:
        return _is_number(token[:-1])
    if token in TERM_UNITS:
        k = _said_of(out, start, k - 1)
        return k >= start and _is_number(out[k])
    return token.endswith(THINGS)


def _said_of(out: list[str], start: int, k: int) -> int:
    """Where the last token at or before ``k`` that is not an aside (怎么, 又) is."""
    while k >= start and out[k] in ASIDES:
        k -= 1
    return k


def _by_me(before: str, earlier: str) -> bool:
    """The user right before (我关了), or before an adverb (我已经关了)."""
    return before in SELF_WORDS or (before in ADVERBS and earlier in SELF_WORDS)


def _claim_overdue(out: list[str], clause: _Clause, before: str, after: list[str]) -> None:
    """Another product named now owns an overdue said before it: claimed (逾期了几天，是花呗的;
    账单晚还了，花呗的) or as the overdue's object (忘还花呗, 晚还了几天花呗)."""
    if before in OWNER_WORDS or after in (["的", " "], ["的"]):
        for back, token in enumerate(out):
            if token == "JIEBEI":
                break
            if token == "OVERDUE":
                out[back] = "OTHER_OVERDUE"
    if clause.last_product is None:
        # a few plain words (几天 / 三天才还) between at most
        for back in range(len(out) - 1, max(clause.start, len(out) - 4) - 1, -1):
            if out[back] == "OVERDUE":
                out[back] = "OTHER_OVERDUE"
                break
            if out[back].isupper() and out[back] != "WAIT":  # 几天 is WAIT
                break


def _closing_act(word: str) -> bool:
    """True for a stop word that is something done (关了, 取消了, 注销), which the user may
    have done; not for a state (借不了, 用不了, 没了) or a passive (被关了)."""
    return any(v in word for v in CLOSING_VERBS) and not any(n in word for n in STATE_MARKS)


def _wants(previous: list[str]) -> bool:
    """True when the tokens just before a stop are a wish (想 [借呗] 关了)."""
    tail = previous[-2:]
    return bool(tail) and (tail[-1] == "WANT" or tail == ["WANT", "JIEBEI"])


def jieba_cache_dir() -> Path:
    """Where jieba keeps its dictionary cache: JIEBA_CACHE_DIR, else the user cache dir."""
    configured = os.environ.get("JIEBA_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jiebei-bot"


def _make_tokenizer(words: list[tuple[str, int]]) -> jieba.Tokenizer:
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    cache = jieba_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tokenizer.tmp_dir = str(cache)
    except OSError:
        log.debug("jieba cache dir %s not writable; using the system temp dir", cache)
    tokenizer.initialize()
    for word, freq in words:
        tokenizer.add_word(word, freq)
    return tokenizer
