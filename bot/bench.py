"""``jiebei-bot bench``: the performance figures of issue 6 in one run, each against its budget.

What is measured, in this order:

1. **Answering cost**: ``KnowledgeBase.match`` (normalise + segment + match) on the messages of
   ``bench_messages.txt``, as a ratio to bare ``jieba.lcut`` of the same messages in the same
   process. Both are warmed up, then timed message by message with ``time.perf_counter_ns``,
   interleaved repetition by repetition so that load on the machine hits both alike.
2. **The same on generated knowledge bases** (the shipped entries plus deterministic entries of
   10 examples built from the concept lexicon and common words), imported through the real path
   (``Store.import_document`` on a SQLite file, then ``KnowledgeBase``): a curve of entries to
   microseconds a message, the exhaustive scorer for comparison, and the time to rebuild the
   matcher after an admin edit (``kb.write(add_example)``).
3. **Updates a second** through ``Application.process_update`` with the real handlers and a
   network layer answering in process, pinned to one core.
4. **Cold start** of ``jiebei-bot run`` until its first ``getUpdates``, against a Bot API stub
   on 127.0.0.1, with a warm jieba cache; then SIGTERM and its exit status.
5. **Peak resident memory** of a process that opens the seeded knowledge base and answers the
   messages.

``--json`` prints one object: ``quick``, ``cpu_count``, ``cpus_usable``, ``python``,
``segmenter`` (the text pipeline's backend), ``scorer`` (the matcher's engine: compiled,
numpy or exhaustive), ``messages``, ``repetitions``, ``jieba`` and
``seeded`` (``mean_us``, ``p50_us``, ``p99_us``; ``seeded`` adds ``entries``, ``examples``,
``indexed``, ``jieba_mean_us``, ``ratio``), ``curve`` (one such object per generated base,
plus ``build_s``, ``exhaustive_mean_us``, ``rebuild_s``), ``updates`` (``count``,
``seconds``, ``per_second``, ``replies``, ``errors``), ``cold_start`` (``seconds``, ``runs``,
``exit_status``, ``peak_rss_mb``, ``command``), ``peak_rss_mb`` and ``checks`` (``figure``,
``value``, ``unit``, ``op``, ``budget``, ``pass``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import click
import numpy as np
from telegram.request import BaseRequest, RequestData

BOT_ID = 700001
BOT_USERNAME = "jiebei_bench_bot"
BOT_TOKEN = f"{BOT_ID}:bench-token_abcdefghijklmnopqrstuvwxyz"

# The budgets of issue 11: answering the seeded base at most 1.5x bare jieba.lcut, a
# 1,000-entry base 2.5x, a 10,000-entry base 8x (FULL below); start-up 1.5 s; 150 MB.
BUDGET_SEEDED_RATIO = 1.5
BUDGET_UPDATES_PER_S = 1000.0
BUDGET_COLD_START_S = 1.5
BUDGET_RSS_MB = 150.0
EXAMPLES_PER_ENTRY = 10
SEED = 6


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run, or a tiny one that exercises every code path."""

    repetitions: int
    sizes: tuple[int, ...]  # generated bases, in entries (shipped entries included)
    # entries -> (ratio budget, rebuild budget in seconds)
    budgets: dict[int, tuple[float, float]]
    updates: int
    cold_starts: int


FULL = Plan(
    repetitions=5,
    sizes=(100, 1000, 3000, 10000),
    budgets={1000: (2.5, 1.0), 10000: (8.0, 10.0)},
    updates=3000,
    cold_starts=3,
)
# The larger quick base passes INDEX_MIN_EXAMPLES, so the indexed path runs too.
QUICK = Plan(
    repetitions=1,
    sizes=(50, 300),
    budgets={50: (2.5, 1.0), 300: (8.0, 10.0)},
    updates=60,
    cold_starts=1,
)


def _progress(text: str) -> None:
    click.echo(f"bench: {text}", err=True)


def load_messages() -> list[str]:
    """The benchmark messages (``bot/bench_messages.txt``; ``#`` lines are comments)."""
    text = resources.files("bot").joinpath("bench_messages.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


# -- per-message cost -----------------------------------------------------------------------


def _stats(samples_ns: list[int]) -> dict[str, float]:
    us = np.asarray(samples_ns, dtype=float) / 1000
    return {
        "mean_us": float(us.mean()),
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
    }


def _time_each(fn: Callable[[str], object], messages: list[str]) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for message in messages:
        start = clock()
        fn(message)
        out.append(clock() - start)
    return out


def versus_jieba(
    fn: Callable[[str], object], messages: list[str], repetitions: int
) -> tuple[dict[str, float], dict[str, float]]:
    """(bare jieba.lcut, fn) per-message statistics; fn's carries ``ratio`` of the means."""
    import jieba

    for message in messages:  # warm up both
        jieba.lcut(message)
        fn(message)
    base: list[int] = []
    own: list[int] = []
    for _ in range(repetitions):
        base += _time_each(jieba.lcut, messages)
        own += _time_each(fn, messages)
    base_stats, own_stats = _stats(base), _stats(own)
    own_stats["jieba_mean_us"] = base_stats["mean_us"]
    own_stats["ratio"] = own_stats["mean_us"] / base_stats["mean_us"]
    return base_stats, own_stats


# -- generated knowledge bases --------------------------------------------------------------


# Everyday words of questions about money apps, for the generated entries' examples.
def _words(text: str) -> list[str]:
    return text.split()


SUBJECTS = _words("我 我的 我爸 我妈 我老公 我老婆 朋友 同事 家里人 我哥 我姐 室友 客户 我们")
WHEN = _words("""
    昨天 今天 上个月 最近 前几天 刚才 去年 这周 半年前 早上 晚上 月初 月底 这两天 春节后
    换工作后 搬家以后 出差回来
""")
NOUNS = _words("""
    账单 利率 合同 验证码 短信 客服 电话 银行卡 余额 工资 房租 学费 手续费 违约金 年化 保险
    基金 余额宝 理财 转账 红包 积分 会员 优惠券 头像 密码 指纹 人脸 地址 发票 订单 退款 快递
    商家 收款码 二维码 提现 充值 话费 流量 社保 个税 医保 车险 还款计划 分期 账户 页面 按钮
    通知 消息 版本 手机 电脑 设备 位置 定位 营业执照 店铺 流水 银行 储蓄卡 对公账户 亲情卡
    家庭账户 子账号 小程序 公众号 生活号 芝麻分 芝麻信用 信用报告 授权 协议 条款 利息 本金
    期数 额度调整 提额 降额 临时额度 固定额度 还款方式 等额本息 先息后本 自动还款 逾期费 罚息
    催收 律师函 起诉 法院 调解 协商 延期 减免 证明 结清证明 贷款记录 借款记录 交易记录 账单日
    还款日 宽限期 利息券 免息券 活动 抽奖 邀请码 推荐人 实名 身份信息 银行预留手机号 邮箱
    登录设备 安全中心 风险提示 支付密码 数字证书 人脸识别 声纹 紧急联系人 工作单位 学历 职业
    收入证明 公积金 房产 车辆
""")
VERBS = _words("""
    申请 查询 修改 绑定 解绑 提交 上传 下载 登录 退出 打开 点击 确认 支付 收到 发送 显示 提示
    扣款 到账 退回 更换 升级 验证 激活 设置 联系 投诉 咨询 填写 领取 使用 兑换 冻结 解冻 备案
    核实 认证 授权
""")
ADVERBS = _words("突然 一直 总是 已经 还是 又 老是 莫名其妙 反复 忽然 居然 竟然 一下子")
TAILS = _words("""
    吗 怎么办 是什么原因 怎么回事 有影响吗 要多久 在哪里看 怎么弄 可以吗 正常吗 急 求助 谁知道
    有人遇到过吗 怎么处理 咋整 啊 呢
""")
PRODUCTS = (
    "JIEBEI",
    "JIEBEI",
    "JIEBEI",
    "JIEBEI",
    "HUABEI",
    "ALIPAY",
    "WANGSHANGDAI",
    "CREDITLOAN",
    "CREDIT_CARD",
    "BANK_LOAN",
    "ONLINE_LOAN",
)
STATES = ("STOPPED", "RESTORE")
TEMPLATES = (
    "{p}{t1}{t2}{q}",
    "{s}的{p}{t1}{st}{q}",
    "{w}{v}{t1}之后{p}{st}",
    "{t1}{a}{v}不了{q}",
    "为什么{p}的{t1}{st}",
    "{p}{t1}和{t2}有关系吗",
    "{s}想{v}{t1}{q}",
    "{w}{t2}{a}{st}，{p}{t1}{q}",
    "请问{t1}{t2}怎么{v}",
    "{p}{v}{t1}的时候提示{t2}{st}",
    "{s}{w}{v}了{t1}，{p}{a}{st}",
    "{t1}{t2}{p}",
)


class _Vocabulary:
    """Word pools with Zipf-like weights (a few words are common, most are rare), so the
    generated examples share words the way real questions do and postings are not tiny."""

    def __init__(self, concepts: dict[str, list[str]], rng: random.Random) -> None:
        self.rng = rng
        products = [s for c in PRODUCTS for s in concepts.get(c, [])[:8]] or ["借呗"]
        states = [s for c in STATES for s in concepts.get(c, [])] or ["用不了"]
        skip = {*PRODUCTS, *STATES}
        lexicon_words = [
            s
            for c, surfaces in concepts.items()
            if c not in skip
            for s in surfaces
            if not s.isascii()
        ]
        self.pools = {
            "p": self._weighted(products, shuffle=False),
            "st": self._weighted(states),
            "t": self._weighted(NOUNS + VERBS + lexicon_words),
            "s": self._weighted(SUBJECTS),
            "w": self._weighted(WHEN),
            "v": self._weighted(VERBS),
            "a": self._weighted(ADVERBS),
            "q": self._weighted(TAILS),
        }

    def _weighted(self, words: list[str], shuffle: bool = True) -> tuple[list[str], list[float]]:
        words = list(dict.fromkeys(words))
        if shuffle:
            self.rng.shuffle(words)
        return words, list(
            itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(words)))
        )

    def pick(self, pool: str) -> str:
        words, cum = self.pools[pool]
        return self.rng.choices(words, cum_weights=cum)[0]


def _generated_entry(number: int, vocab: _Vocabulary) -> dict[str, Any]:
    rng = vocab.rng
    t1 = vocab.pick("t")
    t2 = vocab.pick("t")
    while t2 == t1:
        t2 = vocab.pick("t")
    kind = rng.choices(("cause", "redirect", "smalltalk"), weights=(3, 6, 1))[0]
    product = vocab.pick("p")
    examples: list[str] = []
    for _ in range(EXAMPLES_PER_ENTRY * 20):
        if len(examples) == EXAMPLES_PER_ENTRY:
            break
        phrase = rng.choice(TEMPLATES).format(
            p=product if rng.random() < 0.7 else vocab.pick("p"),
            t1=t1,
            t2=t2,
            st=vocab.pick("st"),
            s=vocab.pick("s"),
            w=vocab.pick("w"),
            v=vocab.pick("v"),
            a=vocab.pick("a"),
            q=vocab.pick("q"),
        )
        if phrase not in examples:
            examples.append(phrase)
    return {
        "slug": f"gen_{number:05d}",
        "kind": kind,
        "title": f"{product}{t1}{t2}的问题"[:60],
        "explanation": f"关于{t1}和{t2}的说明：请在支付宝内查看最新规则。",
        "solution": f"1. 检查{t1}是否正常。\n2. 再看{t2}的设置。",
        "keywords": [t1] if kind != "smalltalk" else [],
        "examples": examples,
    }


def generated_document(
    entries: int, concepts: dict[str, list[str]], seed: int = SEED
) -> dict[str, Any]:
    """A knowledge document of ``entries`` entries: the shipped ones, then generated ones.

    Deterministic for a seed, and a smaller base is a prefix of a larger one.
    """
    from knowledge.entries import DOCUMENT_VERSION, shipped_entries

    shipped = [e.to_dict() for e in shipped_entries()]
    vocab = _Vocabulary(concepts, random.Random(seed))
    extra = [_generated_entry(i, vocab) for i in range(max(entries - len(shipped), 0))]
    return {"version": DOCUMENT_VERSION, "entries": (shipped + extra)[:entries]}


def build_generated(path: Path, entries: int, pipeline: Any) -> tuple[Any, float]:
    """(KnowledgeBase, seconds): a generated base imported into a fresh SQLite file."""
    from knowledge.base import KnowledgeBase
    from knowledge.store import Store

    doc = json.dumps(generated_document(entries, pipeline.lexicon.concepts), ensure_ascii=False)
    start = time.perf_counter()
    store = Store(path, seed=False)
    store.import_document(doc, actor="bench")
    kb = KnowledgeBase(store, pipeline)
    return kb, time.perf_counter() - start


def _base_figures(kb: Any, messages: list[str], repetitions: int) -> dict[str, Any]:
    _, own = versus_jieba(kb.match, messages, repetitions)
    return {
        "entries": len(kb.entries()),
        "examples": sum(len(e.examples) for e in kb.entries()),
        "indexed": bool(getattr(kb.matcher, "use_index", False)),
        **own,
    }


def _exhaustive_mean_us(kb: Any, messages: list[str]) -> float | None:
    """µs a message when every example is scored (the index switched off on a copy)."""
    if not getattr(kb.matcher, "use_index", False):
        return None
    exhaustive = copy.copy(kb.matcher)
    exhaustive.use_index = False
    exhaustive.match(messages[0])
    return _stats(_time_each(exhaustive.match, messages))["mean_us"]


def _rebuild_seconds(kb: Any) -> float:
    """Seconds for an admin edit: one example added, the matcher rebuilt from the store."""
    slug = kb.entries()[-1].slug
    phrase = f"基准测试新增的问法{len(kb.entries())}"
    start = time.perf_counter()
    kb.write(lambda store: store.add_example(slug, phrase, actor="bench"))
    return time.perf_counter() - start


# -- updates through the Application --------------------------------------------------------


class LocalRequest(BaseRequest):
    """The Bot API answered in process: getMe and sendMessage as Telegram would, the rest
    ``True``. Only the HTTP round trip is replaced; Bot and Application run unchanged."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._ids = itertools.count(1)

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
        api_method = url.rsplit("/", 1)[-1]
        self.calls[api_method] = self.calls.get(api_method, 0) + 1
        params = request_data.parameters if request_data is not None else {}
        result: Any = True
        if api_method == "getMe":
            result = _bot_user()
        elif api_method in ("sendMessage", "editMessageText"):
            chat_id = int(params["chat_id"])
            result = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                "from": _bot_user(),
                "text": str(params.get("text", "")),
            }
        return 200, json.dumps({"ok": True, "result": result}).encode()


def _bot_user() -> dict[str, Any]:
    return {
        "id": BOT_ID,
        "is_bot": True,
        "first_name": "借呗助手",
        "username": BOT_USERNAME,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


def _text_update(number: int, text: str) -> dict[str, Any]:
    user = 100_000 + number % 997  # many users, each with a few messages
    return {
        "update_id": number,
        "message": {
            "message_id": number,
            "date": int(time.time()),
            "text": text,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": f"U{user}"},
        },
    }


class _ErrorCount(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextlib.contextmanager
def _production_logging() -> Iterator[_ErrorCount]:
    """INFO lines formatted as the bot does (to /dev/null), and a count of errors."""
    from bot.config import Masking

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    errors = _ErrorCount()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(
            Masking(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        )
        root.handlers[:] = [handler, errors]
        root.setLevel(logging.INFO)
        try:
            yield errors
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)


@contextlib.contextmanager
def _one_core() -> Iterator[None]:
    """Pin this process's threads created from here on (and this one) to a single CPU."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def _process_updates(kb: Any, messages: list[str], count: int) -> dict[str, Any]:
    from telegram import Update

    from bot.app import build_application
    from bot.config import Settings

    settings = Settings(token=BOT_TOKEN, knowledge_db=kb.store.path)
    request = LocalRequest()
    app = build_application(settings, kb, request=request, get_updates_request=LocalRequest())
    await app.initialize()
    try:
        warm = min(50, count)
        payloads = [_text_update(i + 1, messages[i % len(messages)]) for i in range(warm + count)]
        for data in payloads[:warm]:
            await app.process_update(Update.de_json(data, app.bot))
        sent_before = request.calls.get("sendMessage", 0)
        with _production_logging() as errors:
            start = time.perf_counter_ns()
            for data in payloads[warm:]:
                await app.process_update(Update.de_json(data, app.bot))
            seconds = (time.perf_counter_ns() - start) / 1e9
    finally:
        await app.shutdown()
    return {
        "count": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "replies": request.calls.get("sendMessage", 0) - sent_before,
        "errors": errors.count,
        "cores": 1,
    }


def updates_per_second(kb: Any, messages: list[str], count: int) -> dict[str, Any]:
    """Text messages from many users through ``Application.process_update``, on one core."""
    with _one_core():
        return asyncio.run(_process_updates(kb, messages, count))


# -- cold start against a Bot API stub ------------------------------------------------------


class BotAPIStub:
    """Just enough Bot API on 127.0.0.1 for ``jiebei-bot run`` to start polling; records
    when the first ``getUpdates`` arrives (``time.monotonic``)."""

    def __init__(self) -> None:
        self.first_poll: float | None = None
        self.polled = threading.Event()
        self.methods: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                method = self.path.rsplit("/", 1)[-1]
                stub.methods.append(method)
                result: Any = True
                if method == "getMe":
                    result = _bot_user()
                elif method == "getUpdates":
                    if stub.first_poll is None:
                        stub.first_poll = time.monotonic()
                        stub.polled.set()
                    time.sleep(0.2)  # a short long poll with nothing new
                    result = []
                body = json.dumps({"ok": True, "result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # the bot may be gone (SIGTERM mid-poll)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    def __enter__(self) -> BotAPIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _run_command() -> list[str]:
    script = Path(sys.executable).with_name("jiebei-bot")
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot", "run"]


def _peak_rss_mb_of(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cold_start(db: Path, workdir: Path) -> dict[str, Any]:
    """Seconds from spawning ``jiebei-bot run`` to its first getUpdates; then SIGTERM."""
    command = _run_command()
    with BotAPIStub() as api:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "KNOWLEDGE_DB": str(db),
            "ADMIN_IDS": "",
            "LOG_LEVEL": "WARNING",
            "PYTHONIOENCODING": "utf-8",
        }
        errlog = workdir / "run.stderr"
        with open(errlog, "wb") as err:
            start = time.monotonic()
            proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            polled = api.polled.wait(60)
            rss = _peak_rss_mb_of(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                status = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                status = proc.wait()
    out: dict[str, Any] = {
        "seconds": api.first_poll - start if polled and api.first_poll else None,
        "exit_status": status,
        "peak_rss_mb": rss,
        "command": command,
    }
    if not polled or status != 0:
        out["stderr"] = errlog.read_text("utf-8", "replace")[-2000:]
    return out


# -- peak memory ----------------------------------------------------------------------------

# ru_maxrss of a child is at least its parent's at fork (Linux keeps the high-water mark
# across exec), so the probe reads its own VmHWM where /proc has it.
_RSS_PROBE = """
import resource, sys
from knowledge.base import KnowledgeBase
kb = KnowledgeBase.open(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    for line in f:
        kb.match(line.rstrip("\\n"))
kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.platform == "darwin":
    kib //= 1024
try:
    with open("/proc/self/status") as f:
        kib = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(kib)
"""


def peak_rss_mb(db: Path, messages_file: Path) -> float:
    """Peak RSS (MiB) of a fresh process that opens ``db`` and answers the messages."""
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(db), str(messages_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(done.stdout.split()[-1]) / 1024


# -- the run --------------------------------------------------------------------------------


def _check(figure: str, value: float | None, unit: str, op: str, budget: float) -> dict[str, Any]:
    compare = {"<=": float.__le__, ">=": float.__ge__, "==": float.__eq__}[op]
    ok = value is not None and math.isfinite(value) and compare(float(value), float(budget))
    return {"figure": figure, "value": value, "unit": unit, "op": op, "budget": budget, "pass": ok}


def measure(quick: bool) -> dict[str, Any]:
    """Every figure, as the JSON object that ``--json`` prints."""
    import jieba

    from knowledge.base import KnowledgeBase, default_pipeline
    from knowledge.store import Store

    plan = QUICK if quick else FULL
    messages = load_messages()
    result: dict[str, Any] = {
        "quick": quick,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "messages": len(messages),
        "repetitions": plan.repetitions,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    checks: list[dict[str, Any]] = []

    def check(figure: str, value: float | None, unit: str, op: str, budget: float) -> None:
        checks.append(_check(figure, value, unit, op, budget))

    with tempfile.TemporaryDirectory(prefix="jiebei-bench-") as tmp:
        work = Path(tmp)
        _progress("loading jieba and the text pipeline")
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        pipeline = default_pipeline()
        result["segmenter"] = getattr(pipeline, "backend", "jieba")

        _progress("seeded knowledge base: cost per message")
        seeded_db = work / "seeded.db"
        kb = KnowledgeBase(Store(seeded_db), pipeline)
        result["scorer"] = kb.matcher.engine
        jieba_stats, seeded = versus_jieba(kb.match, messages, plan.repetitions)
        seeded = {
            "entries": len(kb.entries()),
            "examples": sum(len(e.examples) for e in kb.entries()),
            "indexed": bool(getattr(kb.matcher, "use_index", False)),
            **seeded,
        }
        seeded["exhaustive_mean_us"] = _exhaustive_mean_us(kb, messages) or seeded["mean_us"]
        result["jieba"], result["seeded"] = jieba_stats, seeded
        check(
            "answering cost, seeded base (x jieba.lcut)",
            seeded["ratio"],
            "x",
            "<=",
            BUDGET_SEEDED_RATIO,
        )

        _progress(f"updates through Application.process_update ({plan.updates})")
        result["updates"] = updates_per_second(kb, messages, plan.updates)
        check(
            "updates handled per second, one core",
            result["updates"]["per_second"],
            "/s",
            ">=",
            BUDGET_UPDATES_PER_S,
        )
        kb.store.close()

        curve = []
        for size in plan.sizes:
            _progress(f"generated base of {size:,} entries: import and build")
            gen, build_s = build_generated(work / f"gen{size}.db", size, pipeline)
            _progress(f"generated base of {size:,} entries: cost per message")
            point = {**_base_figures(gen, messages, plan.repetitions), "build_s": build_s}
            point["exhaustive_mean_us"] = _exhaustive_mean_us(gen, messages) or point["mean_us"]
            point["rebuild_s"] = _rebuild_seconds(gen)
            gen.store.close()
            curve.append(point)
            if size in plan.budgets:
                ratio_budget, rebuild_budget = plan.budgets[size]
                check(
                    f"answering cost, {size:,} entries (x jieba.lcut)",
                    point["ratio"],
                    "x",
                    "<=",
                    ratio_budget,
                )
                check(
                    f"matcher rebuild after an edit, {size:,} entries",
                    point["rebuild_s"],
                    "s",
                    "<=",
                    rebuild_budget,
                )
            del gen
        result["curve"] = curve

        _progress("cold start of jiebei-bot run")
        start_db = work / "start.db"
        Store(start_db).close()  # seeded before the bot starts
        runs = [cold_start(start_db, work) for _ in range(plan.cold_starts)]
        times = [r["seconds"] for r in runs if r["seconds"] is not None]
        cold = {
            **runs[-1],
            "runs": [r["seconds"] for r in runs],
            "seconds": statistics.median(times) if len(times) == len(runs) else None,
            "exit_status": next((r["exit_status"] for r in runs if r["exit_status"]), 0),
        }
        result["cold_start"] = cold
        check(
            "cold start of jiebei-bot run until it polls",
            cold["seconds"],
            "s",
            "<=",
            BUDGET_COLD_START_S,
        )
        check("exit status of jiebei-bot run after SIGTERM", cold["exit_status"], "", "==", 0)

        _progress("peak resident memory")
        messages_file = work / "messages.txt"
        messages_file.write_text("\n".join(messages) + "\n", "utf-8")
        result["peak_rss_mb"] = peak_rss_mb(seeded_db, messages_file)
        check("peak resident memory, seeded base", result["peak_rss_mb"], "MB", "<=", BUDGET_RSS_MB)
        if cold["peak_rss_mb"] is not None:
            check(
                "peak resident memory, jiebei-bot run at first poll",
                cold["peak_rss_mb"],
                "MB",
                "<=",
                BUDGET_RSS_MB,
            )
    result["checks"] = checks
    if hasattr(os, "getloadavg"):
        result["load_average_after"] = list(os.getloadavg())
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(result: dict[str, Any]) -> str:
    """The report as text tables."""
    lines = [
        f"jiebei-bot bench{' --quick' if result['quick'] else ''}: "
        f"os.cpu_count()={result['cpu_count']}, usable cores "
        f"(sched_getaffinity)={result['cpus_usable']}, Python {result['python']}, "
        f"segmenter {result.get('segmenter', 'jieba')}, scorer {result.get('scorer', '?')}",
        f"{result['messages']} messages x {result['repetitions']} repetitions, "
        "time.perf_counter_ns per message, after a warm-up",
    ]
    if result.get("load_average"):
        before = ", ".join(f"{x:.2f}" for x in result["load_average"])
        after = ", ".join(f"{x:.2f}" for x in result.get("load_average_after") or [])
        lines.append(f"load average (1, 5, 15 min) at start {before}; at end {after}")
    lines += [
        "",
        f"{'cost per message (µs)':<26}{'entries':>8}{'examples':>10}{'index':>7}"
        f"{'mean':>9}{'p50':>9}{'p99':>9}{'x jieba':>9}{'exhaust.':>10}"
        f"{'build s':>9}{'rebuild s':>10}",
    ]
    j = result["jieba"]
    lines.append(
        f"{'bare jieba.lcut':<26}{'':>8}{'':>10}{'':>7}{_fmt(j['mean_us']):>9}"
        f"{_fmt(j['p50_us']):>9}{_fmt(j['p99_us']):>9}{'1.00':>9}"
    )
    rows = [("seeded", result["seeded"])] + [("generated", p) for p in result["curve"]]
    for name, p in rows:
        lines.append(
            f"{name:<26}{p['entries']:>8,}{p['examples']:>10,}"
            f"{'yes' if p['indexed'] else 'no':>7}{_fmt(p['mean_us']):>9}"
            f"{_fmt(p['p50_us']):>9}{_fmt(p['p99_us']):>9}{p['ratio']:>9.2f}"
            f"{_fmt(p.get('exhaustive_mean_us')):>10}{_fmt(p.get('build_s'), 2):>9}"
            f"{_fmt(p.get('rebuild_s'), 2):>10}"
        )
    u, c = result["updates"], result["cold_start"]
    lines += [
        "",
        f"updates: {u['count']:,} text updates in {u['seconds']:.2f} s on one core, "
        f"{u['replies']:,} replies, {u['errors']} errors",
        f"cold start: runs {', '.join(_fmt(s, 2) for s in c['runs'])} s; exit status after "
        f"SIGTERM {c['exit_status']}; command {' '.join(c['command'])}",
        "",
        f"{'figure':<56}{'value':>12}{'budget':>12}  verdict",
    ]
    for ch in result["checks"]:
        digits = 0 if ch["unit"] in ("/s", "") else 2
        value = "-" if ch["value"] is None else f"{ch['value']:,.{digits}f} {ch['unit']}"
        lines.append(
            f"{ch['figure']:<56}{value:>12}{ch['op'] + ' ' + str(ch['budget']):>12}"
            f"  {'PASS' if ch['pass'] else 'OVER'}"
        )
    if "stderr" in c:
        lines += ["", "jiebei-bot run stderr (tail):", c["stderr"]]
    return "\n".join(lines)


def run_bench(as_json: bool, quick: bool) -> None:
    """Measure everything and print the table (or JSON)."""
    result = measure(quick)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        click.echo(render(result))
