"""Accuracy of the matcher on a labelled set (one ``{"text", "expect"}`` JSON object a line).

A label is a cause slug, ``overview``, or ``none`` (not about 借呗 being stopped). A ``none``
question is answered correctly when the matched intent is neither a cause nor ``overview``:
no match, or an entry of its own (a greeting, a redirect for a near-miss topic).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.matcher import Matcher


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
        return {
            "summary": self.summary(),
            "per_label": self.per_label(),
            "confusion": self.confusion(),
            "misses": self.misses(),
        }

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


def evaluate(matcher: Matcher, rows: Iterable[dict[str, str]]) -> Report:
    report = Report()
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
            }
        )
        report.total += 1
    return report
