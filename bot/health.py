"""Is the bot answering? The running bot's heartbeat, and what ``jiebei-bot health`` makes of it.

The running bot keeps, in memory, when it last heard from Telegram: a completed
``getUpdates`` (polling), a webhook call, or in webhook mode a periodic ``getWebhookInfo``
that shows Telegram can deliver (:class:`BotApiMonitor`, fed by the request layer in
bot/app.py). A thread writes that to a small JSON file next to the knowledge base,
``<KNOWLEDGE_DB>-heartbeat``, when it changed, at most every ``HEARTBEAT_SECONDS``; a clean
stop marks the file stopped. A file rather than a table: written every few seconds, it must
not compete with admin edits for SQLite's write lock.

``jiebei-bot health`` reads it (:func:`bot_status`):

- no file: no bot has run on this knowledge base; only the knowledge base is checked;
- stopped cleanly, or the process named in it is gone (same host): no bot runs; the same;
- a bot runs and heard from Telegram within ``HEALTH_MAX_POLL_AGE`` seconds: healthy;
- a bot runs and did not (or never did since it started that long ago): unhealthy, with the
  failed tries and the last error.

A Bot API that stays unreachable is logged at WARNING with the number of failed tries: at the
first failure, then at most once every ``WARN_EVERY`` seconds; and at INFO once it answers again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
WARN_EVERY = 60.0


def heartbeat_path(knowledge_db: str | Path) -> Path:
    """Where the bot running on ``knowledge_db`` writes its heartbeat."""
    return Path(f"{knowledge_db}-heartbeat")


def _clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(ts))


class BotApiMonitor:
    """How the bot's calls to the Bot API are going: the last time it heard from Telegram,
    and the failed tries since the last success. Called from the event loop only."""

    def __init__(
        self,
        mode: str = "polling",
        *,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
        warn_every: float = WARN_EVERY,
    ) -> None:
        self.mode = mode
        self._token = token
        self._clock = clock
        self._warn_every = warn_every
        self.started = clock()
        self.last_ok: float | None = None
        self.failures = 0
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._warned_at: float | None = None

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def reached(self, method: str) -> None:
        """A call to the Bot API succeeded: it is reachable (again)."""
        if self.failures:
            log.info(
                "Bot API reachable again (%s) after %d failed %s in %.0fs",
                method,
                self.failures,
                "try" if self.failures == 1 else "tries",
                self._clock() - (self.failing_since or self._clock()),
            )
        self.failures = 0
        self.failing_since = None
        self._warned_at = None

    def heard(self, method: str) -> None:
        """Telegram delivered (or can deliver) updates: a completed getUpdates, a webhook call."""
        self.reached(method)
        self.last_ok = self._clock()

    def failed(self, method: str, exc: BaseException) -> None:
        """A call to the Bot API failed; WARNING now and then, never once per try."""
        now = self._clock()
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = self._redact(f"{type(exc).__name__} on {method}: {exc}")
        if self._warned_at is not None and now - self._warned_at < self._warn_every:
            return
        self._warned_at = now
        log.warning(
            "Bot API unreachable: %s; %d failed %s since %s, still retrying",
            self.last_error,
            self.failures,
            "try" if self.failures == 1 else "tries",
            _clock_text(self.failing_since),
        )

    def snapshot(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "mode": self.mode,
            "started": self.started,
            "last_ok": self.last_ok,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class Heartbeat:
    """Writes the monitor's state to ``path`` from a daemon thread, when it changed."""

    def __init__(
        self, path: Path, monitor: BotApiMonitor, interval: float = HEARTBEAT_SECONDS
    ) -> None:
        self.path = path
        self.monitor = monitor
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: dict[str, object] | None = None

    def write(self, **extra: object) -> None:
        state = {**self.monitor.snapshot(), **extra}
        if state == self._written:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(state), "utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # health then reports a stale bot: say why here
            log.warning("could not write the heartbeat %s: %s", self.path, exc)
            return
        self._written = state

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def start(self) -> None:
        self.write()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop writing and mark the bot stopped (a clean stop: health no longer expects it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.write(stopped=time.time())


@dataclass(frozen=True)
class BotStatus:
    ok: bool
    message: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def bot_status(
    path: Path,
    max_age: float,
    *,
    now: float | None = None,
    host: str | None = None,
    pid_alive: Callable[[int], bool] = _pid_alive,
) -> BotStatus:
    """What the heartbeat at ``path`` says about the bot running on that knowledge base."""
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    try:
        state = json.loads(path.read_text("utf-8"))
        pid, mode, started = int(state["pid"]), str(state["mode"]), float(state["started"])
        last_ok = None if state.get("last_ok") is None else float(state["last_ok"])
    except FileNotFoundError:
        return BotStatus(True, "no bot has run on it")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return BotStatus(False, f"cannot read the bot's heartbeat {path}: {exc}")
    if state.get("stopped") is not None:
        stopped = _clock_text(float(state["stopped"]))
        return BotStatus(True, f"no bot running (the last one stopped at {stopped})")
    if state.get("host") == host and not pid_alive(pid):
        return BotStatus(
            True, f"no bot running (the last one, pid {pid}, ended without a clean stop)"
        )
    heard = "completed a getUpdates" if mode == "polling" else "heard from Telegram"
    failures = int(state.get("failures") or 0)
    why = ""
    if failures:
        tries = "try" if failures == 1 else "tries"
        why = f"; {failures} failed {tries}, the last: {state.get('last_error')}"
    limit = f"HEALTH_MAX_POLL_AGE is {max_age:.0f}s"
    if last_ok is None:
        age = now - started
        if age > max_age:
            return BotStatus(
                False,
                f"the bot (pid {pid}, {mode}) started {age:.0f}s ago and has not {heard} yet "
                f"({limit}){why}",
            )
        return BotStatus(True, f"bot {mode}, starting ({age:.0f}s ago)")
    age = now - last_ok
    if age > max_age:
        return BotStatus(
            False,
            f"the bot (pid {pid}, {mode}) last {heard} {age:.0f}s ago ({limit}){why}",
        )
    return BotStatus(True, f"bot {mode}, last {heard} {max(age, 0):.0f}s ago")
