"""Accuracy of the matcher on a labelled set (one ``{"text", "expect"}`` JSON object a line).

A label is a cause slug, ``overview``, or ``none`` (not about 借呗 being stopped). A ``none``
question is answered correctly when the matched intent is neither a cause nor ``overview``:
no match, or an entry of its own (a greeting, a redirect for a near-miss topic).

``cross_validate`` measures the knowledge base on its own example phrases: each entry's
examples are dealt into K folds (shuffled with a fixed seed, so the folds are the same every
run); for each fold the matcher is rebuilt without that fold's examples and asked each of
them. An example of a cause or the overview is labelled with its entry; one of a redirect or
small-talk entry is labelled ``none``. The report has the figures of ``evaluate`` plus each
entry's recall (held-out examples answered with that very entry) and where the rest went.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.entries import Entry
from knowledge.matcher import Matcher
from knowledge.text import TextPipeline


class EvalFileError(ValueError):
    """The labelled file cannot be read; the message names the line."""


@dataclass
class Report:
    total: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def group(self, which: str) -> tuple[int, int]:
        """(correct, total) for ``cause``, ``overview`` or ``none`` questions."""
        rows = [r for r in self.rows if _group(r["expect"]) == which]
        return sum(r["ok"] for r in rows), len(rows)

    def top3(self) -> tuple[int, int]:
        rows = [r for r in self.rows if _group(r["expect"]) == "cause"]
        return sum(r["expect"] in r["top3"] for r in rows), len(rows)

    def per_label(self) -> dict[str, dict[str, float]]:
        labels = sorted({r["expect"] for r in self.rows} | {r["got"] for r in self.rows})
        out = {}
        for label in labels:
            tp = sum(1 for r in self.rows if r["expect"] == label and r["got"] == label)
            fp = sum(1 for r in self.rows if r["expect"] != label and r["got"] == label)
            fn = sum(1 for r in self.rows if r["expect"] == label and r["got"] != label)
            p = tp / (tp + fp) if tp + fp else 0.0
            rc = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
            out[label] = {"precision": p, "recall": rc, "f1": f1, "support": tp + fn}
        return out

    def confusion(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for r in self.rows:
            table.setdefault(r["expect"], Counter())[r["got"]] += 1
        return {k: dict(v) for k, v in sorted(table.items())}

    def per_entry(self) -> dict[str, dict[str, Any]]:
        """Cross-validation only: per entry, the share of its held-out examples answered with
        that entry, and what the others were answered with (``-`` for no match)."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.rows:
            if "entry" not in r:
                continue
            slot = out.setdefault(r["entry"], {"hits": 0, "total": 0, "went": Counter()})
            slot["total"] += 1
            if r["intent"] == r["entry"]:
                slot["hits"] += 1
            else:
                slot["went"][r["intent"] or "-"] += 1
        return {
            slug: {
                "recall": round(v["hits"] / v["total"], 3),
                "hits": v["hits"],
                "total": v["total"],
                "went": dict(v["went"].most_common()),
            }
            for slug, v in sorted(out.items())
        }

    def misses(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if not r["ok"]]

    def summary(self) -> dict[str, Any]:
        def pct(pair: tuple[int, int]) -> dict[str, Any]:
            ok, n = pair
            return {"correct": ok, "total": n, "percent": round(100 * ok / n, 1) if n else None}

        return {
            "total": self.total,
            "cause_top1": pct(self.group("cause")),
            "cause_top3": pct(self.top3()),
            "overview": pct(self.group("overview")),
            "none_kept_out": pct(self.group("none")),
        }

    def to_json(self) -> dict[str, Any]:
        out = {
            "summary": self.summary(),
            "per_label": self.per_label(),
            "confusion": self.confusion(),
            "misses": self.misses(),
        }
        per_entry = self.per_entry()
        if per_entry:
            out["per_entry"] = per_entry
        return out

    def to_text(self, max_misses: int = 200) -> str:
        s = self.summary()
        lines = [f"questions: {self.total}"]
        for key, name in (
            ("cause_top1", "cause top-1"),
            ("cause_top3", "cause top-3"),
            ("overview", "overview"),
            ("none_kept_out", "none kept out"),
        ):
            v = s[key]
            if v["total"]:
                lines.append(f"{name:>14}: {v['percent']:5.1f}%  ({v['correct']}/{v['total']})")
        lines.append("")
        lines.append(f"{'label':<16} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>4}")
        for label, m in self.per_label().items():
            lines.append(
                f"{label:<16} {m['precision']:6.2f} {m['recall']:6.2f} {m['f1']:6.2f} "
                f"{int(m['support']):4d}"
            )
        lines.append("")
        lines.append("confusion (expected -> got: count):")
        for expect, got in self.confusion().items():
            wrong = {k: v for k, v in got.items() if k != expect}
            if wrong:
                lines.append(
                    f"  {expect}: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(wrong.items(), key=lambda x: -x[1]))
                )
        per_entry = self.per_entry()
        if per_entry:
            lines.append("")
            lines.append("per entry (held-out examples answered with their own entry):")
            for slug, v in sorted(per_entry.items(), key=lambda x: (x[1]["recall"], x[0])):
                went = ", ".join(f"{k} {n}" for k, n in list(v["went"].items())[:4])
                lines.append(
                    f"  {slug:<16} {100 * v['recall']:5.1f}%  ({v['hits']}/{v['total']})"
                    + (f"  else: {went}" if went else "")
                )
        misses = self.misses()
        lines.append("")
        lines.append(f"misses: {len(misses)}")
        for r in misses[:max_misses]:
            lines.append(f"  [{r['expect']} -> {r['intent'] or '-'} {r['score']:.0f}] {r['text']}")
        return "\n".join(lines)


def _group(label: str) -> str:
    if label == "overview":
        return "overview"
    if label == "none":
        return "none"
    return "cause"


def read_labelled(path: Path) -> list[dict[str, str]]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"cannot read {path}: {exc}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise EvalFileError(f"{path}:{n}: not a JSON object") from None
        if not (
            isinstance(obj, dict)
            and isinstance(obj.get("text"), str)
            and isinstance(obj.get("expect"), str)
        ):
            raise EvalFileError(f'{path}:{n}: expected {{"text": ..., "expect": ...}}')
        rows.append({"text": obj["text"], "expect": obj["expect"]})
    return rows


def evaluate(
    matcher: Matcher, rows: Iterable[dict[str, str]], report: Report | None = None
) -> Report:
    report = report if report is not None else Report()
    for row in rows:
        m = matcher.match(row["text"])
        kind = m.candidates[0].kind if m.intent else None
        got = m.intent if kind in ("cause", "overview") else "none"
        expect = row["expect"]
        report.rows.append(
            {
                "text": row["text"],
                "expect": expect,
                "got": got,
                "intent": m.intent,
                "score": m.score,
                "ok": got == expect,
                "top3": [c.slug for c in m.candidates[:3]],
                **({"entry": row["entry"]} if "entry" in row else {}),
            }
        )
        report.total += 1
    return report


def label_of(entry: Entry) -> str:
    """What a question phrased like one of ``entry``'s examples should be labelled."""
    return entry.slug if entry.kind in ("cause", "overview") else "none"


def folds(entries: Sequence[Entry], k: int, seed: int = 0) -> list[list[tuple[Entry, str]]]:
    """Every example dealt into ``k`` folds as (entry, phrase): each entry's examples are
    shuffled with ``seed`` and dealt round-robin, starting one fold further for each entry, so
    the folds are the same size within one and every entry is in every fold it can be."""
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    out: list[list[tuple[Entry, str]]] = [[] for _ in range(k)]
    rng = random.Random(seed)
    for n, entry in enumerate(entries):
        phrases = list(dict.fromkeys(entry.examples))
        rng.shuffle(phrases)
        for i, phrase in enumerate(phrases):
            out[(n + i) % k].append((entry, phrase))
    return out


def cross_validate(
    entries: Sequence[Entry],
    pipeline: TextPipeline,
    k: int = 5,
    *,
    seed: int = 0,
    build: Callable[[list[Entry]], Matcher] | None = None,
) -> Report:
    """K-fold cross-validation over the entries' own examples (see the module docstring).
    ``build`` makes a matcher from entries (default: ``Matcher(entries, pipeline)``)."""
    make = build or (lambda es: Matcher(es, pipeline))
    report = Report()
    for held in folds(entries, k, seed):
        out = {(e.slug, p) for e, p in held}
        train = [
            Entry(**{**e.to_dict(), "examples": [p for p in e.examples if (e.slug, p) not in out]})
            for e in entries
        ]
        rows = [{"text": p, "expect": label_of(e), "entry": e.slug} for e, p in held]
        evaluate(make(train), rows, report)
    return report
