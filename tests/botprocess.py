"""``python -m bot run`` as a child process against tests/botapi.FakeBotAPI, for the tests
that need the whole bot: running and stopping (tests/test_run.py), faults
(tests/test_faults.py) and load (tests/test_load.py).

The child's output (stdout and stderr together) is read line by line as it arrives, so a test
can block until the bot logged something (:meth:`BotProcess.wait_for_log`) instead of sleeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from knowledge.base import KnowledgeBase
from tests.botapi import FakeBotAPI

# Distinctive, so that a leak into a log line is found by a plain substring search.
TOKEN = "731246:SECRET-fault_token-abcdefXYZ0123456789"
TOKEN_SECRET = TOKEN.split(":", 1)[1]


class BotProcess:
    """The bot in a child process; every output line is kept in ``lines``."""

    def __init__(
        self,
        api: FakeBotAPI,
        workdir: Path,
        *,
        log_level: str = "INFO",
        admin_ids: str = "",
        args: tuple[str, ...] = (),
        **extra_env: str,
    ) -> None:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "KNOWLEDGE_DB": str(workdir / "knowledge.db"),
            "ADMIN_IDS": admin_ids,
            "LOG_LEVEL": log_level,
            "PYTHONIOENCODING": "utf-8",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", *args],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.lines: list[str] = []
        self.ended = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """A position in the output: :meth:`wait_for_log` can look only after it."""
        with self._cond:
            return len(self.lines)

    def wait_for_log(self, fragment: str, timeout: float = 60.0, *, since: int = 0) -> str:
        """Block until a line containing ``fragment`` was written (after ``since``)."""

        def found() -> str | None:
            return next((ln for ln in self.lines[since:] if fragment in ln), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None or self.ended, timeout):
                raise TimeoutError(f"no log line with {fragment!r} in {timeout}s:\n{self.tail()}")
            line = found()
            if line is None:
                raise AssertionError(f"the bot exited without logging {fragment!r}:\n{self.tail()}")
            return line

    def wait_for_count(self, fragment: str, count: int, timeout: float = 60.0) -> None:
        """Block until ``count`` lines containing ``fragment`` were written."""

        def seen() -> int:
            return sum(fragment in ln for ln in self.lines)

        with self._cond:
            if not self._cond.wait_for(lambda: seen() >= count or self.ended, timeout):
                raise TimeoutError(
                    f"fewer than {count} log lines with {fragment!r}:\n{self.tail()}"
                )
            if seen() < count:
                raise AssertionError(f"the bot ended early:\n{self.tail()}")

    @property
    def log(self) -> str:
        return self.output

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """SIGTERM (as a container runtime would) or ``sig``; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=5)


def known_questions(kb: KnowledgeBase, limit: int = 11) -> list[tuple[str, str]]:
    """(question, reply title) pairs the bot answers with one cause, taken from the knowledge
    base as it is now: an example phrase of each cause that matches that cause unambiguously
    (so the tests follow the tuning of the matcher instead of fighting it)."""
    out: list[tuple[str, str]] = []
    for entry in kb.causes():
        for phrase in entry.examples:
            match = kb.match(phrase)
            if match.intent == entry.slug and not match.ambiguous:
                out.append((phrase, entry.title))
                break
        if len(out) >= limit:
            break
    assert len(out) >= 5, "too few cause examples match their own cause"
    return out


def title_of(message: dict) -> str:
    """The first line of a bot message as Telegram shows it (the fake parsed the HTML)."""
    return (message.get("text") or "").split("\n", 1)[0]
