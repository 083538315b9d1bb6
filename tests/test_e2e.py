"""The whole bot as a process over HTTP: ``python -m bot run`` against the fake Bot API server
on 127.0.0.1, driven the way users and an admin drive it.

One bot process serves the whole module (starting one costs seconds: jieba, the matcher),
so every test talks from its own user id and asserts only what its own messages changed.
Waiting is always for something to happen (a reply, an edit, a consumed update), never a
sleep. The last test stops the process with SIGTERM; a test after it would get a new one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import admin, texts
from bot.render import Button, Reply, to_plain_text, to_script
from knowledge.diagnosis import MAX_QUESTIONS
from knowledge.followups import load_followups
from knowledge.store import Store
from tests.botapi import FakeBotAPI

pytestmark = pytest.mark.slow

TOKEN = "918273:TEST-e2e-secret_Zq8wLx3vNk5pRt"
ADMIN = 4242
START_TIMEOUT = 60.0  # a cold jieba cache takes a while; a warm one about four seconds
REPLY_TIMEOUT = 15.0


class BotProcess:
    """``python -m bot run`` in a child process; stdout and stderr are collected as they come."""

    def __init__(self, api: FakeBotAPI, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "KNOWLEDGE_DB": str(workdir / "knowledge.db"),
            "ADMIN_IDS": str(ADMIN),
            "LOG_LEVEL": "DEBUG",  # the token must stay out of even the most talkative log
            "PYTHONIOENCODING": "utf-8",
            "PYTHONUNBUFFERED": "1",
        }
        # The user's own JIEBA_CACHE_DIR (or its default) is kept: no cold build per test run.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            cwd=workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            with self._cond:
                self._out[name].append(line)
                self._cond.notify_all()

    @property
    def output(self) -> str:
        """Everything the process wrote so far, stdout then stderr."""
        with self._cond:
            return "".join(self._out["stdout"]) + "".join(self._out["stderr"])

    def count(self, fragment: str) -> int:
        """How many lines of stderr (the log) contain ``fragment`` so far."""
        with self._cond:
            return sum(fragment in line for line in self._out["stderr"])

    def wait_for_log(self, fragment: str, more_than: int, timeout: float) -> bool:
        """Wait until more than ``more_than`` log lines contain ``fragment``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(fragment in line for line in self._out["stderr"]) > more_than,
                timeout,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(30)


class E2E:
    """The fake server, the bot process, and the user side of the conversation."""

    def __init__(self, api: FakeBotAPI, workdir: Path) -> None:
        self.api = api
        self.workdir = workdir
        self.process: BotProcess | None = None

    @property
    def db(self) -> Path:
        return self.workdir / "knowledge.db"

    def ensure_running(self) -> BotProcess:
        if self.process is None or not self.process.alive():
            self.process = BotProcess(self.api, self.workdir)
            self.api.wait_until_polling(timeout=START_TIMEOUT)
        return self.process

    def title(self, slug: str) -> str:
        """An entry's title as stored now (the bot seeded the file from the shipped entries)."""
        store = Store(self.db, seed=False)
        try:
            entry = store.get(slug)
        finally:
            store.close()
        assert entry is not None, slug
        return entry.title

    def say(self, user: int, text: str, **group: Any) -> dict:
        """The user sends ``text`` (in a group with ``chat_id=``, ``chat_type=``...) and gets
        exactly one reply."""
        chat = group.get("chat_id", user)
        self.api.mark(chat)
        self.api.send_text(user, text, **group)
        [reply] = self.api.wait_for_messages(chat, 1, REPLY_TIMEOUT)
        return reply

    def press(
        self, user: int, message: dict, *, text: str | None = None, data: str | None = None
    ) -> dict:
        """The user presses a button; returns once the bot answered the callback query."""
        query = self.api.press_button(user, message, data, text=text)
        deadline = time.monotonic() + REPLY_TIMEOUT
        while query["id"] not in {a["callback_query_id"] for a in self.api.callback_answers()}:
            self.api.wait_for_call("answerCallbackQuery", max(deadline - time.monotonic(), 0.1))
        return query


def buttons(message: dict) -> list[dict]:
    return [b for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def labels(message: dict) -> list[str]:
    return [b["text"] for b in buttons(message)]


def datas(message: dict) -> list[str]:
    return [b["callback_data"] for b in buttons(message)]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> Iterator[E2E]:
    workdir = tmp_path_factory.mktemp("e2e")
    with FakeBotAPI(TOKEN) as api:
        world = E2E(api, workdir)
        try:
            yield world
        finally:
            if world.process is not None:
                world.process.kill()
        assert api.server_errors() == []


@pytest.fixture
def bot(e2e) -> E2E:
    e2e.ensure_running()
    return e2e


# -- users --------------------------------------------------------------------------------


def test_start_greets_and_offers_the_causes_and_the_diagnosis(bot):
    reply = bot.say(1001, "/start")
    assert reply["text"].startswith("您好！")
    assert any(e["type"] == "bold" for e in reply["entities"])  # the HTML was parsed
    data = datas(reply)
    assert "u:e:huabei_overdue" in data and "u:e:id_expired" in data
    assert data[-1] == "u:ds"
    assert [c["command"] for c in bot.api.commands()] == [n for n, _ in texts.USER_COMMANDS]
    admin_menu = bot.api.commands({"type": "chat", "chat_id": ADMIN})
    assert admin_menu is not None and "example" in [c["command"] for c in admin_menu]


def test_a_described_cause_gets_that_cause_and_its_follow_up_buttons_work(bot):
    user = 1002
    title = bot.title("huabei_overdue")
    answer = bot.say(user, "花呗晚还了几天，借呗就用不了了")
    assert answer["text"].startswith(title)
    assert texts.SOLUTION_HEADING in answer["text"]
    assert texts.BTN_NOT_MINE in labels(answer) and texts.BTN_HELPFUL in labels(answer)

    bot.api.mark(user)
    bot.press(user, answer, text=texts.BTN_NOT_MINE)
    [others] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert others["text"] in (texts.NOT_MINE, texts.NOT_MINE_NONE)
    entry_buttons = [d for d in datas(others) if d.startswith("u:e:")]
    assert entry_buttons and "u:e:huabei_overdue" not in entry_buttons

    bot.press(user, others, data=entry_buttons[0])
    [shown] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert shown["text"].startswith(bot.title(entry_buttons[0].removeprefix("u:e:")))

    bot.press(user, answer, text=texts.BTN_HELPFUL)
    [thanks] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert thanks["text"] == texts.FEEDBACK_THANKS


def test_a_generic_question_gets_the_overview_with_every_cause(bot):
    reply = bot.say(1003, "借呗突然用不了了")
    assert reply["text"].startswith(bot.title("overview"))
    causes = [d for d in datas(reply) if d.startswith("u:e:")]
    assert len(causes) == 11 and "u:ds" in datas(reply)


def test_an_off_topic_message_gets_a_short_friendly_reply(bot):
    reply = bot.say(1004, "明天天气如何")
    assert reply["text"] == to_plain_text(texts.OFF_TOPIC)
    assert datas(reply) == ["u:c", "u:ds"]


def test_an_unmatched_question_about_jiebei_gets_the_honest_fallback(bot):
    reply = bot.say(1004, "借呗的电子合同去哪里找")
    assert reply["text"] == texts.NO_MATCH
    assert len([d for d in datas(reply) if d.startswith("u:e:")]) == 11


def test_the_guided_diagnosis_runs_to_its_result_with_button_presses(bot):
    user = 1005
    message = bot.say(user, "/diagnose")
    assert "问题 1" in message["text"]
    for _ in range(MAX_QUESTIONS + 1):
        if texts.DIAG_RESULT in message["text"]:
            break
        bot.press(user, message, text=texts.BTN_UNSURE)
        message = bot.api.wait_for_edit(user, message["message_id"], REPLY_TIMEOUT)
    else:
        pytest.fail(f"no result after {MAX_QUESTIONS} answers: {message['text']}")
    assert any(d.startswith("u:e:") for d in datas(message))
    assert bot.api.bot_messages(user)[-1]["message_id"] == message["message_id"]  # edited only


def run_diagnosis(bot: E2E, user: int, labels_in_turn: list[str]) -> dict:
    """/diagnose, then press the answers in turn (each edits the question) until the result."""
    message = bot.say(user, "/diagnose")
    for n in range(MAX_QUESTIONS + 1):
        if texts.DIAG_RESULT in message["text"]:
            return message
        bot.press(user, message, text=labels_in_turn[n % len(labels_in_turn)])
        message = bot.api.wait_for_edit(user, message["message_id"], REPLY_TIMEOUT)
    pytest.fail(f"no result after {MAX_QUESTIONS} answers: {message['text']}")


def test_the_diagnosis_answered_all_no_singles_out_no_cause(bot):
    result = run_diagnosis(bot, 1006, [texts.BTN_NO])
    assert texts.DIAG_NONE_WHY["no"] in result["text"]
    assert "最可能" not in result["text"] and "建议您先这样处理" not in result["text"]
    assert "没有直接问到" in result["text"] and "支付宝App里联系官方客服" in result["text"]


def test_the_diagnosis_answered_all_unsure_singles_out_no_cause(bot):
    result = run_diagnosis(bot, 1007, [texts.BTN_UNSURE])
    assert texts.DIAG_NONE_WHY["unsure"] in result["text"]
    assert "建议您先这样处理" not in result["text"] and "%" not in result["text"]


def test_a_follow_up_gets_an_answer_about_the_cause_just_discussed(bot):
    user = 1008
    bot.say(user, "花呗晚还了几天，借呗就用不了了")
    reply = bot.say(user, "大概要等多长时间呀")
    wait = load_followups().causes["huabei_overdue"]["wait"]
    assert wait in reply["text"] and "重新评估" in reply["text"]
    reply = bot.say(user, "还清了是不是就能用了")
    assert load_followups().causes["huabei_overdue"]["repay"] in reply["text"]


def test_three_rejections_in_a_row_never_offer_a_rejected_cause_again(bot):
    user = 1009
    answer = bot.say(user, "花呗晚还了几天，借呗就用不了了")
    rejected = ["huabei_overdue"]
    for _ in range(3):
        bot.api.mark(user)
        bot.press(user, answer, text=texts.BTN_NOT_MINE)
        [others] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
        offered = [d.removeprefix("u:e:") for d in datas(others) if d.startswith("u:e:")]
        assert offered and not set(offered) & set(rejected)
        bot.press(user, others, data=f"u:e:{offered[0]}")
        [answer] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
        rejected.append(offered[0])
    # typed, the same: the cause shown last is rejected too
    reply = bot.say(user, "这不是我的情况")
    offered = [d.removeprefix("u:e:") for d in datas(reply) if d.startswith("u:e:")]
    assert offered and not set(offered) & set(rejected)
    # and "都不是" until nothing is left: official customer service, no invented number
    while offered:
        reply = bot.say(user, "都不是啊")
        offered = [d.removeprefix("u:e:") for d in datas(reply) if d.startswith("u:e:")]
    assert reply["text"] == to_plain_text(texts.NOT_MINE_NOTHING_LEFT)


@pytest.mark.parametrize(
    "question",
    [
        "有人打电话说能帮我恢复借呗额度，要先交手续费，可信吗",
        "有个人说给他转一笔钱就能让我的借呗重新开通",
        "对方说先交点费用能把我的额度解冻，这个靠谱吗",
    ],
)
def test_a_fee_offer_to_restore_jiebei_gets_the_safety_warning(bot, question):
    reply = bot.say(1010, question)
    assert reply["text"].startswith("⚠️")
    for words in ("诈骗", "不要给对方转账", "验证码", "屏幕共享", "官方渠道"):
        assert words in reply["text"]


def test_a_traditional_writer_gets_traditional_replies_until_writing_simplified(bot):
    user = 1011
    answer = bot.say(user, "身份證過期了，借唄就不能用了")
    assert answer["text"].startswith("身份證過期") and "身份证" not in answer["text"]
    tw = {
        label: to_script(Reply("", [[Button(label, "u:x")]]), "tw").buttons[0][0].label
        for label in (texts.BTN_NOT_MINE, texts.BTN_DIAGNOSE, texts.BTN_YES, texts.BTN_UNSURE)
    }
    assert tw[texts.BTN_NOT_MINE] in labels(answer) and tw[texts.BTN_DIAGNOSE] in labels(answer)
    bot.api.mark(user)
    bot.press(user, answer, text=tw[texts.BTN_NOT_MINE])
    [others] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert others["text"].startswith("那可能是") or others["text"].startswith("那您看看")
    assert "這些" in others["text"] or "其他" in others["text"]
    question = bot.say(user, "/diagnose")
    assert "問題 1" in question["text"]
    bot.press(user, question, text=tw[texts.BTN_UNSURE])
    edited = bot.api.wait_for_edit(user, question["message_id"], REPLY_TIMEOUT)
    assert "問題 2" in edited["text"]
    back = bot.say(user, "借呗被关了")
    assert back["text"].startswith("借呗为什么被关停")


def test_a_question_about_another_product_names_it(bot):
    reply = bot.say(1012, "微信分付用不了了")
    assert reply["text"].startswith("我是借呗助手") and "微信分付的问题" in reply["text"]
    assert "资料" not in reply["text"]
    assert datas(reply) == ["u:c", "u:ds"]


def test_a_sticker_gets_a_request_for_text(bot):
    user = 1006
    bot.api.mark(user)
    bot.api.send_sticker(user)
    [reply] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert reply["text"] == texts.NOT_TEXT.strip()


def test_in_a_group_only_messages_addressed_to_the_bot_are_answered(bot):
    group, user = -500100, 1007
    bot.api.send_text(user, "借呗突然用不了了", chat_id=group, chat_type="group")
    mention = f"@{bot.api.username}"
    addressed = bot.api.send_text(
        user,
        f"{mention} 借呗突然用不了了",
        chat_id=group,
        chat_type="group",
        entities=[{"type": "mention", "offset": 0, "length": len(mention)}],  # as Telegram does
    )
    # Updates are handled in order: once the addressed one is answered, the first was seen.
    [reply] = bot.api.wait_for_messages(group, 1, REPLY_TIMEOUT)
    bot.api.wait_for_updates_consumed(REPLY_TIMEOUT)
    assert reply["reply_to_message"]["message_id"] == addressed["message_id"]
    assert reply["text"].startswith(bot.title("overview"))
    assert len(bot.api.bot_messages(group)) == 1


# -- admins -------------------------------------------------------------------------------


def test_an_example_added_by_the_admin_answers_the_next_user_at_once(bot):
    phrase = "阿里那个小花花没按时给钱"
    title = bot.title("huabei_overdue")
    before = bot.say(1008, phrase)
    assert not before["text"].startswith(title)

    done = bot.say(ADMIN, f"/example huabei_overdue {phrase}")
    assert done["text"].startswith("已为 huabei_overdue 添加示例"), done["text"]
    after = bot.say(1009, phrase)
    assert after["text"].startswith(title)


def test_a_title_set_by_the_admin_is_in_the_next_reply(bot):
    new_title = "身份证件已过期（管理员改过的标题）"
    done = bot.say(ADMIN, f"/set id_expired title {new_title}")
    assert done["text"].startswith("已修改 id_expired.title"), done["text"]
    reply = bot.say(1010, "身份证过期了借呗用不了")
    assert reply["text"].startswith(new_title)


def test_a_non_admin_is_refused_and_nothing_changes(bot):
    refused = bot.say(1011, "/add e2e_extra 不该出现的条目")
    assert refused["text"] == admin.REFUSED
    looked_up = bot.say(ADMIN, "/entry e2e_extra")
    assert looked_up["text"].startswith("没有条目 e2e_extra")


def test_a_correction_is_reviewed_added_with_one_tap_and_undone(bot):
    """The learning loop: a user says 这不是我的情况 and opens another entry; the admin's
    /review shows the question under it; one tap adds it as an example, the next user asking
    the same gets that entry, /undo takes it back, /stats shows the corrected answer."""
    question, user = "信用卡逾期一天借呗就关了", 1012
    answer = bot.say(user, question)
    [not_mine] = [d for d in datas(answer) if d.startswith("u:o:")]
    answered = not_mine.rsplit(":", 1)[1]
    assert answer["text"].startswith(bot.title(answered))
    bot.api.mark(user)
    bot.press(user, answer, data=not_mine)
    [others] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    opened = next(d for d in datas(others) if d.startswith("u:e:")).removeprefix("u:e:")
    bot.press(user, others, data=f"u:e:{opened}")
    [shown] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert shown["text"].startswith(bot.title(opened))

    review = bot.say(ADMIN, "/review")
    assert f"→ {opened} " in review["text"] and f"「{question}」" in review["text"]
    assert f"原回答：{answered}（这不是我的情况 1）" in review["text"]
    [group] = [x for x in review["text"].splitlines() if f"→ {opened} " in x and question in x]
    number = group.split(".", 1)[0]
    [accept] = [b["callback_data"] for b in buttons(review) if b["text"] == f"{number} ✅ {opened}"]
    bot.api.mark(ADMIN)
    bot.press(ADMIN, review, data=accept)
    [done] = bot.api.wait_for_messages(ADMIN, 1, REPLY_TIMEOUT)
    assert f"已把「{question}」加为 {opened} 的示例" in done["text"], done["text"]
    redrawn = bot.api.bot_messages(ADMIN)[-2]
    assert redrawn["message_id"] == review["message_id"] and question not in redrawn["text"]

    assert bot.say(1013, question)["text"].startswith(bot.title(opened))
    undone = bot.say(ADMIN, "/undo")
    assert undone["text"].startswith("已撤销") and question in undone["text"]
    assert bot.say(1014, question)["text"].startswith(bot.title(answered))
    stats = bot.say(ADMIN, "/stats")["text"]
    line = next(x for x in stats.splitlines() if x.startswith(f"{answered} ") and "被纠正" in x)
    assert "被纠正 1，" in line, stats


# -- operators ----------------------------------------------------------------------------


def test_kb_import_while_the_bot_runs_is_picked_up_without_a_restart(bot, tmp_path):
    cli = [sys.executable, "-m", "bot", "kb"]
    env = bot.process.env
    document = tmp_path / "kb.json"
    subprocess.run([*cli, "export", str(document)], env=env, cwd=tmp_path, check=True, timeout=60)
    data = json.loads(document.read_text("utf-8"))
    new_title = "系统升级维护中（命令行导入的标题）"
    [maintenance] = [e for e in data["entries"] if e["slug"] == "maintenance"]
    maintenance["title"] = new_title
    document.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    done = subprocess.run(
        [*cli, "import", str(document)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    # The bot reloads on its own every few seconds: ask until a real reply shows the change,
    # between questions waiting (briefly) for the bot to log a reload.
    user, deadline = 1012, time.monotonic() + 20
    while True:
        reloads = bot.process.count("knowledge base reloaded")
        causes = bot.say(user, "/causes")
        if new_title in labels(causes):
            break
        assert time.monotonic() < deadline, f"still the old titles: {labels(causes)}"
        bot.process.wait_for_log("knowledge base reloaded", reloads, timeout=1.0)
    bot.api.mark(user)
    bot.press(user, causes, text=new_title)
    [shown] = bot.api.wait_for_messages(user, 1, REPLY_TIMEOUT)
    assert shown["text"].startswith(new_title)


def test_sigterm_stops_with_exit_0_and_the_token_never_shows(bot):
    bot.say(1013, "花呗晚还了几天，借呗就用不了了")
    process = bot.process
    assert process.stop(signal.SIGTERM) == 0
    output = process.output
    assert "handled text intent=huabei_overdue" in output  # the log really was captured
    assert "DEBUG telegram.ext" in output
    assert "Traceback" not in output
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
