"""Cross-validation over the knowledge base's own examples (``jiebei-bot eval --cross-validate``).

Real jieba, real rapidfuzz, real SQLite for the CLI; the phrasings are written for these tests.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from knowledge.entries import Entry, shipped_entries
from knowledge.evaluation import cross_validate, folds, label_of
from knowledge.matcher import Matcher


def tiny() -> list[Entry]:
    return [
        Entry(
            "huabei_overdue",
            "花呗逾期",
            examples=["花呗逾期了借呗没了", "花呗晚还了借呗关了", "花呗忘还借呗用不了"],
        ),
        Entry(
            "id_expired",
            "身份证过期",
            examples=["身份证过期借呗没了", "身份证到期了借呗关了", "身份证没更新借呗用不了"],
        ),
        # One example says nothing its siblings say: it cannot be found without itself.
        Entry("misuse", "挪用", examples=["借呗的钱拿去炒股了", "借呗的钱买房被发现", "天气真好"]),
        Entry("greeting", "你好", kind="smalltalk", examples=["你好", "在吗", "哈喽"]),
    ]


def test_folds_hold_every_example_once_and_are_the_same_for_a_seed():
    entries = shipped_entries()
    a, b, c = folds(entries, 5, seed=0), folds(entries, 5, seed=0), folds(entries, 5, seed=1)
    assert a == b and a != c
    dealt = sorted((e.slug, p) for fold in a for e, p in fold)
    assert dealt == sorted({(e.slug, p) for e in entries for p in e.examples})
    sizes = [len(f) for f in a]
    assert max(sizes) - min(sizes) <= len(entries)
    # Every entry with at least K examples is in every fold.
    for fold in a:
        assert {e.slug for e, _ in fold} == {e.slug for e in entries if len(e.examples) >= 5}


def test_folds_need_two():
    with pytest.raises(ValueError):
        folds(tiny(), 1)


def test_each_matcher_is_built_without_its_held_out_fold(pipeline):
    built: list[list[Entry]] = []

    def build(entries):
        built.append(entries)
        return Matcher(entries, pipeline)

    report = cross_validate(tiny(), pipeline, 3, build=build)
    assert len(built) == 3
    asked = [r for r in report.rows]
    assert len(asked) == sum(len(e.examples) for e in tiny())
    for entries, fold in zip(built, folds(tiny(), 3), strict=True):
        trained = {(e.slug, p) for e in entries for p in e.examples}
        held = set((e.slug, p) for e, p in fold)
        assert not trained & held
        assert trained | held == {(e.slug, p) for e in tiny() for p in e.examples}


def test_per_entry_recall_names_the_weak_entry(pipeline):
    report = cross_validate(tiny(), pipeline, 3)
    per = report.per_entry()
    assert per["misuse"]["hits"] < per["misuse"]["total"] == 3
    assert per["id_expired"]["recall"] == 1.0
    assert sum(per["misuse"]["went"].values()) == 3 - per["misuse"]["hits"]
    # Labels as in eval: small talk is "none", causes are themselves.
    assert {r["expect"] for r in report.rows if r["entry"] == "greeting"} == {"none"}
    assert label_of(tiny()[0]) == "huabei_overdue"
    assert report.summary()["total"] == 12


def test_cli_cross_validate_text_and_json(tmp_path, monkeypatch, pipeline):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNOWLEDGE_DB", str(tmp_path / "knowledge.db"))
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "--cross-validate", "4", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["total"] == sum(len(set(e.examples)) for e in shipped_entries())
    assert set(data["per_entry"]) == {e.slug for e in shipped_entries()}
    assert data["summary"]["cause_top1"]["percent"] > 80
    again = runner.invoke(cli, ["eval", "--cross-validate", "4", "--json"])
    assert json.loads(again.stdout) == data
    text = runner.invoke(cli, ["eval", "--cross-validate", "4", "--misses", "0"])
    assert "per entry" in text.stdout and "cause top-1" in text.stdout
    for args in (["eval"], ["eval", "x.jsonl", "--cross-validate", "3"]):
        bad = runner.invoke(cli, args)
        assert bad.exit_code != 0 and "either FILE or --cross-validate" in bad.output
    assert runner.invoke(cli, ["eval", "--cross-validate", "1"]).exit_code != 0
