"""Crash safety: a ``kb import`` or an admin edit killed with SIGKILL half-way leaves the
knowledge base exactly as before or exactly as after, never in between; concurrent writers
(the CLI while the bot runs, several at once) lose no edit and corrupt nothing.

The kills are done to real processes. To kill at a chosen point, the process runs the real
CLI (``bot.cli.main``) or the real store methods with a hook that, at that point, writes
``AT <point>`` to stderr and stops itself with SIGSTOP; the test reads the line and sends
SIGKILL. Other runs of the plain ``jiebei-bot kb import`` are killed at moments spread over
its running time. Afterwards the file must pass ``PRAGMA integrity_check`` and hold either the
old or the new knowledge base: export, revision and history compared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from knowledge.base import KnowledgeBase
from knowledge.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ENTRIES = 1500
EXAMPLES = 20
ADMIN_ACTOR = "tg:1001"

HOOKED = r'''
"""Run the real CLI or a real store edit, stopping (SIGSTOP) at the point named CRASH_AT."""
import json, os, signal, sys

from knowledge import store as st

POINT = os.environ["CRASH_AT"]
TOTAL = int(os.environ.get("CRASH_WRITES", "1"))


def pause(name):
    if name == POINT:
        sys.stderr.write(f"AT {name}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP)


def wrap(cls, name, before=None, after=None):
    real = getattr(cls, name)

    def hooked(*args, **kwargs):
        if before:
            pause(before)
        result = real(*args, **kwargs)
        if after:
            pause(after)
        return result

    setattr(cls, name, hooked)


_parse = st.parse_document


def parse(data):
    pause("parsing")
    entries = _parse(data)
    pause("parsed")
    return entries


st.parse_document = parse
writes = 0
for name in ("_write_entry", "_delete_entry"):
    real = getattr(st.Store, name)

    def counted(self, *args, _real=real, **kwargs):
        global writes
        result = _real(self, *args, **kwargs)
        writes += 1
        pause(f"write-{writes}")
        if writes == TOTAL // 2:
            pause("write-half")
        if writes == TOTAL:
            pause("write-last")
        return result

    setattr(st.Store, name, counted)
wrap(st.Store, "_write_all", before="begun")
wrap(st.Store, "_require", after="read")
wrap(st.Store, "_record", after="recorded")
wrap(st.Store, "_bump_revision", after="bumped")
for method in ("import_document", "add_example", "set_field", "delete", "undo", "add"):
    wrap(st.Store, method, after="committed")

if sys.argv[1] == "cli":
    from bot.cli import main

    sys.argv = ["jiebei-bot", *sys.argv[2:]]
    main()
else:  # an admin's edit: the store call the admin handlers make, as actor tg:<id>
    store = st.Store(os.environ["KNOWLEDGE_DB"], seed=False)
    op, args = sys.argv[1], json.loads(sys.argv[2])
    getattr(store, op)(*args, actor="tg:1001")
    sys.stderr.write("DONE\n")
'''


# -- helpers --------------------------------------------------------------------------------


def large_document() -> dict[str, Any]:
    return {
        "version": 1,
        "entries": [
            {
                "slug": f"e{i:05d}",
                "title": f"条目{i}",
                "explanation": "说明" * 40,
                "solution": "办法" * 20,
                "examples": [f"例句{i}-{j} 借呗被关了" for j in range(EXAMPLES)],
            }
            for i in range(ENTRIES)
        ],
    }


def state(path: Path) -> dict[str, Any]:
    """What the file holds, read the way the bot reads it; integrity checked first."""
    store = Store(path, seed=False)
    try:
        db = store.db
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        return {
            "export": store.export(),
            "revision": store.revision(),
            "history": [
                (r[0], r[1], r[2]) for r in db.execute("SELECT id, action, detail FROM history")
            ],
        }
    finally:
        store.close()


def fresh_copy(base: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "kb.db"
    shutil.copyfile(base, target)
    return target


def env_for(db: Path, point: str, writes: int = 1) -> dict[str, str]:
    return {
        **os.environ,
        "KNOWLEDGE_DB": str(db),
        "CRASH_AT": point,
        "CRASH_WRITES": str(writes),
        "PYTHONIOENCODING": "utf-8",
    }


def run_until(args: list[str], env: dict[str, str], point: str, cwd: Path) -> None:
    """Start the process, wait until it stopped itself at ``point``, then SIGKILL it."""
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.strip() == f"AT {point}":
                break
        else:
            raise AssertionError(f"never reached {point}: {''.join(seen)[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A seeded knowledge base (before), a large document, and the state after importing it."""
    root = tmp_path_factory.mktemp("crash")
    base = root / "base.db"
    Store(base).close()  # seeded with the shipped entries; closing checkpoints the WAL
    assert not Path(f"{base}-wal").exists()
    document = root / "large.json"
    document.write_text(json.dumps(large_document(), ensure_ascii=False), "utf-8")
    done = fresh_copy(base, root / "after")
    store = Store(done, seed=False)
    store.import_document(document.read_bytes(), actor="cli")
    store.close()
    hooked = root / "hooked.py"
    hooked.write_text(HOOKED, "utf-8")
    return {
        "root": root,
        "base": base,
        "document": document,
        "hooked": hooked,
        "before": state(base),
        "after": state(done),
    }


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    return (
        got["export"] == want["export"]
        and got["revision"] == want["revision"]
        and [h[1:] for h in got["history"]] == [h[1:] for h in want["history"]]
    )


def still_writable(path: Path) -> None:
    """No lock or half-finished transaction was left behind: a new edit goes through."""
    store = Store(path, seed=False)
    try:
        store.add("zz_after_crash", "崩溃之后", actor="test")
        assert store.get("zz_after_crash") is not None
    finally:
        store.close()


# -- kb import killed ---------------------------------------------------------------------


IMPORT_POINTS = [
    ("parsing", "before"),
    ("parsed", "before"),
    ("begun", "before"),
    ("write-1", "before"),
    ("write-half", "before"),
    ("write-last", "before"),
    ("recorded", "before"),
    ("bumped", "before"),  # the last statement before COMMIT
    ("committed", "after"),
]


@pytest.mark.parametrize(("point", "expect"), IMPORT_POINTS)
def test_kb_import_killed_at_a_point_leaves_before_or_after(setup, tmp_path, point, expect):
    db = fresh_copy(setup["base"], tmp_path)
    args = [sys.executable, str(setup["hooked"]), "cli", "kb", "import", str(setup["document"])]
    run_until(args, env_for(db, point, ENTRIES), point, tmp_path)
    got = state(db)
    assert same(got, setup[expect]), f"killed at {point}: neither the expected {expect} state"
    still_writable(db)


def test_plain_kb_import_killed_at_moments_across_its_run(setup, tmp_path):
    """The unmodified ``jiebei-bot kb import``, killed after 10%...95% of its running time:
    each time the knowledge base is the old one or the new one."""
    script = Path(sys.executable).parent / "jiebei-bot"
    args = [str(script), "kb", "import", str(setup["document"])]
    db = fresh_copy(setup["base"], tmp_path / "timing")
    started = time.monotonic()
    subprocess.run(args, env=env_for(db, "-"), check=True, capture_output=True, cwd=tmp_path)
    duration = time.monotonic() - started
    assert same(state(db), setup["after"])
    outcomes = []
    for i, share in enumerate((0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)):
        db = fresh_copy(setup["base"], tmp_path / f"kill{i}")
        proc = subprocess.Popen(
            args,
            env=env_for(db, "-"),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(duration * share)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = state(db)
        assert same(got, setup["before"]) or same(got, setup["after"]), f"killed at {share}"
        outcomes.append("after" if same(got, setup["after"]) else "before")
        still_writable(db)
    print(f"\nkb import ({duration:.1f}s) killed at 10..95%: {outcomes}")


# -- admin edits killed ---------------------------------------------------------------------

EDITS = {
    "add_example": ["overview", "管理员加的新例句"],
    "set_field": ["overview", "explanation", "管理员改的说明"],
    "add": ["zz_new_entry", "新条目"],
    "delete": ["id_expired"],
    "undo": [],  # takes back an import: every entry rewritten
}
EDIT_POINTS = ["read", "write-1", "recorded", "bumped", "committed"]


def prepared_for_undo(setup, db: Path) -> None:
    store = Store(db, seed=False)
    store.import_document(
        json.dumps(
            {
                "version": 1,
                "entries": [{"slug": "only", "title": "唯一", "examples": ["借呗被关了"]}],
            }
        ),
        actor="cli",
    )
    store.close()


@pytest.mark.parametrize("op", list(EDITS))
def test_admin_edit_killed_at_each_point_leaves_before_or_after(setup, tmp_path, op):
    base = fresh_copy(setup["base"], tmp_path / "base")
    if op == "undo":
        prepared_for_undo(setup, base)
    before = state(base)
    done = fresh_copy(base, tmp_path / "done")
    store = Store(done, seed=False)
    getattr(store, op)(*EDITS[op], actor=ADMIN_ACTOR)
    store.close()
    after = state(done)
    assert not same(before, after)
    # add and undo read without _require
    points = [p for p in EDIT_POINTS if not (op in ("add", "undo") and p == "read")]
    for point in points:
        db = fresh_copy(base, tmp_path / point)
        args = [sys.executable, str(setup["hooked"]), op, json.dumps(EDITS[op])]
        run_until(args, env_for(db, point), point, tmp_path)
        got = state(db)
        want = after if point == "committed" else before
        assert same(got, want), f"{op} killed at {point}"
        still_writable(db)


# -- concurrent writers -----------------------------------------------------------------------

WRITER = r"""
import sys
from knowledge.store import Store
store = Store(sys.argv[1], seed=False)
sys.stdin.readline()  # all writers start together
for i in range(int(sys.argv[3])):
    store.add_example("overview", f"{sys.argv[2]}-{i}", actor=f"proc:{sys.argv[2]}")
    store.log_question(f"{sys.argv[2]} 问题 {i}", None, 0.0)
"""


def replay_checks(store: Store, initial: list[dict[str, Any]]) -> None:
    """Every history row's "before" is exactly the state the rows before it left: no write
    was made from a stale read (a lost update would show here), and replaying all "after"s
    gives what the file holds."""
    current = {e["slug"]: e for e in initial}
    rows = list(store.db.query("SELECT * FROM history ORDER BY id"))
    for row in rows:
        before, after = json.loads(row["before"] or "null"), json.loads(row["after"] or "null")
        if row["slug"] is None:  # an import, or the undo of one: the whole knowledge base
            assert list(current.values()) == before, row["detail"]
            current = {e["slug"]: e for e in after}
        else:
            assert current.get(row["slug"]) == before, row["detail"]
            if after is None:
                current.pop(row["slug"], None)
            else:
                current[row["slug"]] = after
    assert sorted(current.values(), key=lambda e: e["slug"]) == sorted(
        (e.to_dict() for e in store.entries()), key=lambda e: e["slug"]
    )


def test_concurrent_writers_lose_no_edit(setup, tmp_path, pipeline):
    """Four processes and two threads of a running bot's knowledge base add 150 distinct
    examples to one entry at the same time, with questions logged in between."""
    db = fresh_copy(setup["base"], tmp_path)
    writer = tmp_path / "writer.py"
    writer.write_text(WRITER, "utf-8")
    kb = KnowledgeBase(Store(db, seed=False), pipeline)
    initial = [e.to_dict() for e in kb.store.entries()]
    revision = kb.store.revision()
    per = 25
    procs = [
        subprocess.Popen(
            [sys.executable, str(writer), str(db), f"p{k}", str(per)],
            stdin=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        for k in range(4)
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def bot_thread(name: str) -> None:
        try:
            start.wait()
            for i in range(per):
                kb.write(lambda s, i=i: s.add_example("overview", f"{name}-{i}", actor=name))
                kb.store.log_question(f"{name} 问题 {i}", "overview", 90.0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=bot_thread, args=(f"t{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    start.wait()
    for p in procs:
        assert p.wait(120) == 0
    for t in threads:
        t.join(120)
    assert errors == []
    kb.refresh()
    names = [f"p{k}" for k in range(4)] + [f"t{k}" for k in range(2)]
    wanted = {f"{n}-{i}" for n in names for i in range(per)}
    examples = kb.store.get("overview").examples
    assert wanted <= set(examples), f"lost: {sorted(wanted - set(examples))[:10]}"
    assert wanted <= set(kb.entry("overview").examples)  # the bot's matcher sees them too
    details = [r["detail"] for r in kb.store.db.query("SELECT detail FROM history")]
    assert sorted(d.split(" + ")[1] for d in details) == sorted(wanted)
    assert kb.store.revision() == revision + len(wanted)
    questions = kb.store.db.execute("SELECT COUNT(*) FROM questions").fetchone()[0]
    assert questions == len(wanted)
    replay_checks(kb.store, initial)
    assert kb.store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kb.store.close()


# At most this many edits race the import (an entry holds at most 1,000 examples).
EDITS_DURING_IMPORT = 500


def test_kb_import_while_the_bot_edits(setup, tmp_path, pipeline):
    """The CLI imports a large document while the bot's admin adds examples: the edits
    before the import are replaced by it (and recorded), those after it land in the new
    knowledge base; the history explains the final state exactly."""
    db = fresh_copy(setup["base"], tmp_path)
    doc = large_document()
    doc["entries"].append({"slug": "overview", "title": "总览", "examples": ["借呗被关了"]})
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    store = Store(db, seed=False)  # the running bot's store (its matcher plays no part here)
    initial = [e.to_dict() for e in store.entries()]
    script = Path(sys.executable).parent / "jiebei-bot"
    cli = subprocess.Popen(
        [str(script), "kb", "import", str(document)],
        env=env_for(db, "-"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    added, after_cli = 0, 0
    while after_cli < 5:
        running = cli.poll() is None
        if running and added >= EDITS_DURING_IMPORT:
            # A slow machine: stay under the entry's example limit, let the import finish.
            cli.wait(120)
            continue
        store.add_example("overview", f"并发-{added}", actor=ADMIN_ACTOR)
        added += 1
        after_cli += not running
    assert cli.wait(60) == 0, cli.stderr.read() if cli.stderr else ""
    replay_checks(store, initial)
    actions = [r["action"] for r in store.db.query("SELECT action FROM history ORDER BY id")]
    assert actions.count("import") == 1 and actions.count("example") == added
    imported_at = actions.index("import")  # examples numbered from here came after it
    assert 0 < imported_at < added, "the import did not happen while the edits went on"
    examples = store.get("overview").examples
    assert examples == ["借呗被关了"] + [f"并发-{n}" for n in range(imported_at, added)]
    assert len(store.entries()) == ENTRIES + 1
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()
