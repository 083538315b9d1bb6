"""The SQLite store on real files: migrations, edits, history and undo, import/export."""

from __future__ import annotations

import json
import sqlite3

import pytest

from knowledge.entries import CAUSE_SLUGS, DocumentError, parse_document
from knowledge.store import Store, StoreError, migrations

SMALL_DOC = {
    "version": 1,
    "entries": [
        {
            "slug": "alpha",
            "title": "甲",
            "explanation": "说明<b>&",
            "solution": "办法",
            "examples": ["第一句", "第二句"],
            "keywords": ["甲"],
            "related": ["beta"],
        },
        {"slug": "beta", "title": "乙", "kind": "overview", "examples": ["乙的例子"]},
    ],
}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "kb.db", seed=False)
    s.import_document(json.dumps(SMALL_DOC, ensure_ascii=False), actor="test")
    yield s
    s.close()


def test_first_open_seeds_the_shipped_entries(tmp_path):
    s = Store(tmp_path / "sub" / "kb.db")
    slugs = {e.slug for e in s.entries()}
    assert set(CAUSE_SLUGS) <= slugs
    assert "overview" in slugs
    assert all(e.examples for e in s.entries())


def test_migrations_are_idempotent_and_recorded(tmp_path):
    path = tmp_path / "kb.db"
    Store(path).close()
    before = Store(path).export()
    again = Store(path)
    assert again.export() == before
    applied = [m.name for m in migrations.applied(again.db)]
    assert applied == sorted(set(applied), key=applied.index)  # each once
    assert applied[0] == "m001_initial"


def test_wal_mode(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_export_import_round_trip(store, tmp_path):
    exported = store.export()
    other = Store(tmp_path / "other.db", seed=False)
    other.import_document(exported, actor="test")
    assert other.export() == exported
    assert parse_document(store.export("yaml"))[0].explanation == "说明<b>&"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not json: [", "neither valid JSON nor valid YAML"),
        ('{"version": 2, "entries": []}', "unknown document version"),
        ('{"version": 1, "entries": [{"slug": "ok_slug"}]}', "entry 1 (ok_slug): field 'title'"),
        ('{"version": 1, "entries": [{"slug": "A!", "title": "x"}]}', "field 'slug'"),
        (
            '{"version": 1, "entries": '
            '[{"slug": "aa", "title": "x"}, {"slug": "aa", "title": "y"}]}',
            "entry 2 (aa): field 'slug' duplicates entry 1",
        ),
        (
            '{"version": 1, "entries": [{"slug": "aa", "title": "x", "examples": "no"}]}',
            "field 'examples'",
        ),
        (
            '{"version": 1, "entries": [{"slug": "aa", "title": "x", "related": ["zz"]}]}',
            "unknown entry 'zz'",
        ),
        (
            "version: 1\nentries:\n  - !!python/object/apply:os.system ['echo hi']\n",
            "neither valid JSON nor valid YAML",
        ),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_invalid_documents_change_nothing(store, doc, message):
    before = store.export()
    revision = store.revision()
    with pytest.raises(DocumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.import_document(doc, actor="test")
    assert store.export() == before
    assert store.revision() == revision


def test_edits_are_recorded_and_undone_exactly(store):
    original = store.export()
    store.set_field("alpha", "title", "新标题", actor="tg:1")
    store.add_example("alpha", "第三句", actor="tg:1")
    store.add("gamma", "丙", actor="tg:2")
    store.delete("beta", actor="tg:1")
    assert [c.action for c in store.history()] == ["delete", "add", "example", "set", "import"]
    assert store.history("alpha")[0].before["examples"] == ["第一句", "第二句"]
    for expected in ("delete", "add", "example", "set"):
        change = store.undo(actor="tg:1")
        assert change is not None and change.action == expected
    assert store.export() == original
    assert store.history()[0].action == "undo"


def test_undo_of_an_import_restores_the_whole_base(store):
    before = store.export()
    store.import_document(
        json.dumps({"version": 1, "entries": [{"slug": "only", "title": "唯一"}]}), actor="cli"
    )
    assert [e.slug for e in store.entries()] == ["only"]
    store.undo(actor="cli")
    assert store.export() == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add("alpha", "重复", actor="t"), "exists already"),
        (lambda s: s.add("Bad Slug", "x", actor="t"), "slug"),
        (lambda s: s.set_field("nope", "title", "x", actor="t"), "no entry"),
        (lambda s: s.set_field("alpha", "colour", "x", actor="t"), "unknown field"),
        (lambda s: s.set_field("alpha", "title", "", actor="t"), "title must be"),
        (lambda s: s.add_example("alpha", "长" * 2000, actor="t"), "1-200 characters"),
        (lambda s: s.add_example("alpha", "第一句", actor="t"), "already"),
        (lambda s: s.remove_example("alpha", "没有这句", actor="t"), "no such example"),
        (lambda s: s.delete("nope", actor="t"), "no entry"),
    ],
)
def test_refused_edits_change_nothing(store, call, message):
    before = store.export()
    history = len(store.history(limit=100))
    with pytest.raises(StoreError, match=message):
        call(store)
    assert store.export() == before
    assert len(store.history(limit=100)) == history


def test_revision_rises_with_every_change_and_is_seen_by_other_connections(store, tmp_path):
    other = Store(store.path, seed=False)
    r0 = other.revision()
    store.add_example("alpha", "又一句", actor="t")
    assert other.revision() == r0 + 1
    assert "又一句" in other.get("alpha").examples


def test_questions_feedback_and_stats(store):
    q = store.log_question("完全无关的问题", None, 12.0)
    store.log_question("第一句", "alpha", 90.0)
    store.record_feedback("alpha", True, "c1")
    store.record_feedback("alpha", False, "c2")
    assert [r["text"] for r in store.unmatched()] == ["完全无关的问题"]
    stats = store.stats()
    assert stats["total"] == 2 and stats["unmatched"] == 1
    assert stats["feedback"]["alpha"] == (1, 1)
    store.assign_question(q, "alpha", actor="tg:1")
    assert "完全无关的问题" in store.get("alpha").examples
    assert store.unmatched() == []
    with pytest.raises(StoreError):
        store.assign_question(q, "alpha", actor="tg:1")


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create directory"):
        Store(blocker / "kb.db")


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "kb.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open knowledge base"):
        Store(path)


def test_transaction_rolls_back_on_failure(store):
    before = store.export()
    with pytest.raises(sqlite3.IntegrityError), store._tx():
        store.db.execute("DELETE FROM examples")
        store.db.execute("INSERT INTO entries(slug) VALUES ('alpha')")
    assert store.export() == before


def test_queued_questions_are_written_in_batches_and_seen_by_reads(store, monkeypatch):
    import knowledge.store as module

    monkeypatch.setattr(module, "QUESTION_BATCH", 3)
    count = "SELECT COUNT(*) FROM questions"
    store.queue_question("一", None, 0.0)
    store.queue_question("二", "alpha", 80.0)
    assert store.db.execute(count).fetchone()[0] == 0  # queued, not yet written
    assert [r["text"] for r in store.unmatched()] == ["一"]  # a read flushes first
    for text in ("三", "四", "五"):
        store.queue_question(text, None, 0.0)
    assert store.db.execute(count).fetchone()[0] == 5  # the third queued one filled a batch
    store.queue_question("六", None, 0.0)
    store.close()
    reopened = Store(store.path, seed=False)
    assert reopened.stats()["total"] == 6  # close() wrote the rest


def test_a_full_batch_can_be_left_for_the_caller_to_write(store, monkeypatch):
    import knowledge.store as module

    monkeypatch.setattr(module, "QUESTION_BATCH", 2)
    count = "SELECT COUNT(*) FROM questions"
    assert store.queue_question("一", None, 0.0, write_full_batch=False) is False
    assert store.queue_question("二", None, 0.0, write_full_batch=False) is True
    assert store.queue_question("三", None, 0.0, write_full_batch=False) is True
    assert store.db.execute(count).fetchone()[0] == 0  # nothing written by queueing
    assert store.flush_questions() == 3
    assert store.db.execute(count).fetchone()[0] == 3
    assert store.queue_question("四", None, 0.0, write_full_batch=False) is False
    assert store.queue_question("五", None, 0.0) is False  # written here: none waits
    assert store.db.execute(count).fetchone()[0] == 5
