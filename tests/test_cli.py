"""The command line: ``ask``, ``ask --jsonl``, ``chat`` and ``run`` without a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bot import texts
from bot.cli import cli

CAUSE_QUESTION = "花呗逾期了，借呗也用不了了"


@pytest.fixture
def env(tmp_path, monkeypatch, pipeline):
    """A clean environment: the knowledge base in tmp_path, no token, no .env file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNOWLEDGE_DB", str(tmp_path / "knowledge.db"))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_API_BASE_URL", raising=False)
    return tmp_path


def invoke(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(cli, args, input=stdin, catch_exceptions=False)


def test_ask_prints_the_reply_as_a_user_sees_it(env):
    result = invoke(["ask", CAUSE_QUESTION])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("花呗或备用金逾期\n")
    assert "<b>" not in out
    assert "[1]" in out and texts.BTN_HELPFUL in out


def test_ask_jsonl_keeps_order_and_shape(env):
    lines = [CAUSE_QUESTION, "明天天气如何", "借呗被关了", "身份证过期了借呗用不了", ""]
    result = invoke(["ask", "--jsonl"], "\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == lines
    assert [r["intent"] for r in rows[:4]] == ["huabei_overdue", None, "overview", "id_expired"]
    for row in rows:
        assert set(row) == {"text", "intent", "score", "candidates"}
        assert 0 <= row["score"] <= 100
        assert len(row["candidates"]) <= 3
        assert all(set(c) == {"intent", "score"} for c in row["candidates"])
        scores = [c["score"] for c in row["candidates"]]
        assert scores == sorted(scores, reverse=True)
    assert rows[0]["candidates"][0]["intent"] == "huabei_overdue"


@pytest.mark.parametrize("args", [["ask"], ["ask", "x", "--jsonl"]])
def test_ask_needs_exactly_one_of_text_and_jsonl(env, args):
    result = invoke(args)
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")


def test_chat_reads_stdin_and_numbers_press_buttons(env):
    result = invoke(["chat"], f"{CAUSE_QUESTION}\n那怎么办\n/causes\n2\n99\n/quit\nnever read\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(texts.START.replace("<b>", "").replace("</b>", ""))
    assert "关于“花呗或备用金逾期”" in out  # the follow-up knew the context
    assert "征信有不良记录\n\n" in out  # button 2 of /causes
    assert texts.CHAT_CHOICE_RANGE.format(n=7) in out  # the answer to button 2 has 7
    assert "never read" not in out


def test_chat_runs_a_diagnosis_with_typed_numbers(env):
    result = invoke(["chat"], "/diagnose\n" + "3\n" * 6)  # 不确定 six times, then EOF
    assert result.exit_code == 0, result.output
    assert "问题 6" in result.stdout and texts.DIAG_RESULT in result.stdout


@pytest.mark.slow
def test_chat_in_a_subprocess_with_a_pipe_for_stdin(env):
    run = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input=f"{CAUSE_QUESTION}\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert run.returncode == 0, run.stderr
    assert "花呗或备用金逾期" in run.stdout
    assert "> " not in run.stdout  # no prompt when stdin is not a terminal


def test_run_without_a_token_is_one_line_on_stderr(env):
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_chat_admin_in_a_subprocess_reviews_a_correction_and_undoes_it(env, kb):
    """The learning loop in the terminal: a user's 这不是我的情况 and the entry then opened
    show in /review; one choice adds the question to that entry; /undo takes it back."""
    from bot.conversation import Conversation

    question = "信用卡逾期一天借呗就关了"
    [answer] = Conversation(kb, store_writes=False).on_text(0, question)
    not_mine = [b.label for b in answer.button_list()].index(texts.BTN_NOT_MINE) + 1
    answered = answer.intent

    def chat(*lines: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "bot", "chat", "--admin"],
            input="".join(f"{line}\n" for line in lines),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONIOENCODING": "utf-8", "LOGNAME": "wang"},
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    out = chat(question, str(not_mine), "1", "/review")
    review = out[out.index("待审核的建议：") :]
    went_to = review.split("→ ", 1)[1].split()[0]
    assert went_to != answered and kb.entry(went_to).is_cause
    assert f"×1「{question}」" in review and f"原回答：{answered}（这不是我的情况 1）" in review
    assert "[1] 1 ✅" in review

    out = chat("/review", "1")
    assert f"已把「{question}」加为 {went_to} 的示例" in out
    assert after_start(chat(question)).startswith(kb.entry(went_to).title)  # live at once
    out = after_start(chat("/history", "/undo"))
    assert f"cli:wang example {went_to} + {question}" in out.split("已撤销", 1)[0]
    assert after_start(chat(question)).startswith(kb.entry(answered).title)
    stats = chat("/stats")
    assert f"{answered} {kb.entry(answered).title}：回答 2，被纠正 1" in stats


def after_start(out: str) -> str:
    """The output after the greeting the terminal chat starts with."""
    return out.split(texts.BTN_DIAGNOSE + "\n", 1)[1].lstrip("\n")


def test_kb_prune_deletes_what_is_older_than_the_retention_period(env, monkeypatch):
    import time

    from knowledge.store import DAY, Store

    store = Store(env / "knowledge.db")
    for age_days in (200, 40, 1):
        qid = store.log_question(f"{age_days} 天前的问题", None, 0.0, chat="5")
        store.db.execute(
            "UPDATE questions SET at = ? WHERE id = ?", [time.time() - age_days * DAY, qid]
        )
    store.close()
    result = invoke(["kb", "prune"])
    assert result.exit_code == 0, result.output
    assert "1 questions" in result.stderr
    monkeypatch.setenv("QUESTION_RETENTION_DAYS", "30")
    assert "1 questions" in invoke(["kb", "prune"]).stderr
    assert "0 questions" in invoke(["kb", "prune", "--days", "30"]).stderr
    store = Store(env / "knowledge.db")
    assert [r[0] for r in store.db.execute("SELECT text FROM questions")] == ["1 天前的问题"]
    store.close()
    monkeypatch.setenv("QUESTION_RETENTION_DAYS", "zero")
    bad = CliRunner().invoke(cli, ["kb", "prune"])
    assert bad.exit_code == 1 and "QUESTION_RETENTION_DAYS" in bad.stderr


def test_chat_admin_exports_and_imports_files_and_asks_before_replacing(env):
    out = invoke(["chat", "--admin"], "/export\n").stdout
    [exported] = list(env.glob("jiebei-kb-*.json"))
    assert f"已导出到 {exported}" in out
    assert "文件与当前知识库相同" in invoke(["chat", "--admin"], f"/import {exported}\n").stdout
    assert "找不到这个文件" in invoke(["chat", "--admin"], "/import nowhere.json\n").stdout
    doc = json.loads(exported.read_text("utf-8"))
    doc["entries"][0]["title"] = "改过的标题"
    changed = env / "changed.json"
    changed.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    out = invoke(["chat", "--admin"], f"/import {changed}\n/entries\n").stdout
    assert "导入预览" in out and "[1] 确认导入" in out and "改过的标题" not in out
    out = invoke(["chat", "--admin"], f"/import {changed}\n1\n/entries\n").stdout
    assert "已导入" in out and "改过的标题" in out.split("已导入", 1)[1]
    assert "整体导入" in invoke(["chat", "--admin"], "/undo\n").stdout  # asks first


def test_chat_without_admin_knows_no_admin_commands(env):
    out = invoke(["chat"], "/entries\n/review\n").stdout
    assert out.count(texts.UNKNOWN_COMMAND) == 2 and "待审核" not in out
