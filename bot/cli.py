"""The ``jiebei-bot`` command line (the same as ``python -m bot``).

Every command reads its settings from the environment (then ``.env``). A bad argument, a
missing token or an unreadable file gets one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import click

from bot.config import ConfigError, Settings, load_settings


class CliError(click.ClickException):
    """Shown as one line, ``error: ...``, exit status 1."""

    def format_message(self) -> str:
        return self.message

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _settings(require_token: bool = False) -> Settings:
    try:
        return load_settings(require_token=require_token)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _unwritable_hint(path: Path) -> str:
    """What to do when the knowledge base's folder cannot be written (typically a host folder
    owned by root bind-mounted into the container, where the bot runs as uid 10001)."""
    folder = path.parent
    if not folder.is_dir() or os.access(folder, os.W_OK | os.X_OK):
        return ""
    try:
        owner = folder.stat().st_uid
    except OSError:
        return ""
    uid = os.getuid()
    return (
        f"; the folder {folder} is owned by uid {owner} and this process (uid {uid}) cannot "
        f"write to it: make it writable for uid {uid} (on the host: "
        f"sudo chown -R {uid}:{os.getgid()} <the host folder>), or use a named volume"
    )


def _kb(settings: Settings):
    from knowledge.base import KnowledgeBase
    from knowledge.store import StoreError

    try:
        return KnowledgeBase.open(settings.knowledge_db)
    except StoreError as exc:
        raise CliError(f"{exc}{_unwritable_hint(Path(settings.knowledge_db))}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jiebei-bot")
def cli() -> None:
    """借呗助手: why a 借呗 credit line stopped, and what to do about it."""


@cli.command()
@click.option(
    "--webhook",
    "webhook_url",
    metavar="URL",
    help="Serve a webhook at this public HTTPS URL instead of long polling.",
)
@click.option("--listen", default="0.0.0.0", show_default=True, help="Webhook listen address.")
@click.option("--port", default=8443, show_default=True, help="Webhook listen port.")
def run(webhook_url: str | None, listen: str, port: int) -> None:
    """Run the Telegram bot (long polling; --webhook URL for webhook mode).

    Example: TELEGRAM_BOT_TOKEN=123:abc jiebei-bot run
    """
    settings = _settings(require_token=True)
    from bot.app import run_bot
    from bot.config import setup_logging

    setup_logging(settings)
    kb = _kb(settings)
    sys.exit(run_bot(settings, kb, webhook_url=webhook_url, listen=listen, port=port))


@cli.command()
@click.option(
    "--admin",
    "as_admin",
    is_flag=True,
    help="Also the admin commands (/entries, /set, /review, /undo...), as cli:<login name>.",
)
def chat(as_admin: bool) -> None:
    """Talk to the bot in this terminal (buttons are numbered choices).

    Example: jiebei-bot chat --admin
    """
    settings = _settings()
    from bot.chat import run_chat, terminal_admin

    run_chat(_kb(settings), admin=terminal_admin() if as_admin else None)


@cli.command()
@click.argument("text", required=False)
@click.option("--jsonl", is_flag=True, help="Read one message a line on stdin, write JSON lines.")
def ask(text: str | None, jsonl: bool) -> None:
    """One reply, as a user would see it; --jsonl for machines.

    Example: jiebei-bot ask "花呗逾期了借呗还能用吗"
    """
    if jsonl == (text is not None):
        raise CliError("give either TEXT or --jsonl")
    kb = _kb(_settings())
    if jsonl:
        for line in sys.stdin:
            m = kb.match(line.rstrip("\n"))
            obj = {
                "text": m.text,
                "intent": m.intent,
                "score": round(m.score, 1),
                "candidates": [{"intent": c.slug, "score": c.score} for c in m.candidates[:3]],
            }
            click.echo(json.dumps(obj, ensure_ascii=False))
        return
    from bot.conversation import Conversation
    from bot.render import plain

    conv = Conversation(kb)
    for reply in conv.on_text(0, text or ""):
        click.echo(plain(reply))


@cli.command("eval")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option("--misses", default=200, show_default=True, help="How many misses to list.")
@click.option(
    "--cross-validate",
    "folds",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Instead of FILE: K-fold cross-validation over the knowledge base's own examples.",
)
@click.option("--seed", default=0, show_default=True, help="Shuffles the folds (--cross-validate).")
def eval_cmd(file: Path | None, as_json: bool, misses: int, folds: int | None, seed: int) -> None:
    """Accuracy report on a labelled set ({"text", "expect"} JSON lines), or with
    --cross-validate K on the knowledge base's own examples, each fold held out in turn.

    Examples: jiebei-bot eval ../shared/eval/dev.jsonl; jiebei-bot eval --cross-validate 5
    """
    from knowledge.evaluation import EvalFileError, cross_validate, evaluate, read_labelled

    if (file is None) == (folds is None):
        raise CliError("give either FILE or --cross-validate K")
    kb = _kb(_settings())
    if folds is not None:
        report = cross_validate(kb.entries(), kb.pipeline, folds, seed=seed)
    else:
        try:
            rows = read_labelled(file)
        except EvalFileError as exc:
            raise CliError(str(exc)) from None
        report = evaluate(kb.matcher, rows)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(report.to_text(max_misses=misses))


@cli.group()
def kb() -> None:
    """The knowledge base from the shell: list, export, import, prune."""


@kb.command("list")
def kb_list() -> None:
    """List entries: slug, kind, examples, title."""
    from knowledge.store import Store, StoreError

    try:
        store = Store(_settings().knowledge_db)
    except StoreError as exc:
        raise CliError(f"{exc}{_unwritable_hint(_settings().knowledge_db)}") from None
    for e in store.entries():
        click.echo(f"{e.slug:<20} {e.kind:<10} {len(e.examples):>4}  {e.title}")


@kb.command("export")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "yaml"]),
    default=None,
    help="Document format (default: from the file name, else JSON).",
)
def kb_export(file: Path | None, fmt: str | None) -> None:
    """Write the knowledge base as a document (stdout when no FILE).

    Example: jiebei-bot kb export backup.json
    """
    from knowledge.store import Store, StoreError

    if fmt is None:
        fmt = "yaml" if file is not None and file.suffix in (".yaml", ".yml") else "json"
    try:
        text = Store(_settings().knowledge_db).export(fmt)
    except StoreError as exc:
        raise CliError(f"{exc}{_unwritable_hint(_settings().knowledge_db)}") from None
    if file is None:
        click.echo(text, nl=False)
        return
    try:
        file.write_text(text, "utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {file}: {exc.strerror or exc}") from None
    click.echo(f"exported to {file}", err=True)


@kb.command("import")
@click.argument("file", type=click.Path(path_type=Path))
def kb_import(file: Path) -> None:
    """Replace the knowledge base with a document, all or nothing.

    Example: jiebei-bot kb import backup.json
    """
    from knowledge.entries import DocumentError
    from knowledge.store import Store, StoreError

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        entries = Store(_settings().knowledge_db).import_document(data, actor="cli")
    except (DocumentError, StoreError) as exc:
        raise CliError(f"{file}: {exc}; nothing was changed") from None
    click.echo(f"imported {len(entries)} entries", err=True)


@kb.command("prune")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep this many days (default: QUESTION_RETENTION_DAYS, else 180).",
)
def kb_prune(days: int | None) -> None:
    """Delete stored questions and feedback older than the retention period.

    Example: jiebei-bot kb prune
    """
    from knowledge.store import Store, StoreError

    settings = _settings()
    days = days if days is not None else settings.retention_days
    try:
        store = Store(settings.knowledge_db)
        deleted = store.prune(days)
        store.close()
    except (StoreError, sqlite3.Error) as exc:
        raise CliError(f"{exc}{_unwritable_hint(_settings().knowledge_db)}") from None
    counts = ", ".join(f"{n} {table}" for table, n in deleted.items())
    click.echo(f"deleted rows older than {days} days: {counts}", err=True)


@cli.command()
def health() -> None:
    """Exit 0 when the knowledge base answers and, while a bot runs on it, the bot heard
    from Telegram within HEALTH_MAX_POLL_AGE seconds; else exit 1 saying why (HEALTHCHECK).

    Example: jiebei-bot health
    """
    from bot.health import bot_status, heartbeat_path

    settings = _settings()
    kb = _kb(settings)
    m = kb.match("花呗逾期了借呗用不了")
    if not kb.entries() or not m.candidates:
        raise CliError("the matcher returned nothing")
    status = bot_status(heartbeat_path(settings.knowledge_db), settings.health_max_poll_age)
    if not status.ok:
        raise CliError(f"unhealthy: {status.message}")
    click.echo(f"ok: {len(kb.entries())} entries, {kb.matcher.engine} scorer; {status.message}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable figures.")
@click.option("--quick", is_flag=True, help="A tiny run (for tests): small bases, few repeats.")
def bench(as_json: bool, quick: bool) -> None:
    """Measure speed: cost per message against bare jieba, updates/s, start-up, memory."""
    from bot.bench import run_bench

    run_bench(as_json=as_json, quick=quick)


def main() -> None:
    try:
        cli.main(prog_name="jiebei-bot", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
