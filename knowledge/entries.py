"""Knowledge entries and the document format that carries them.

An *entry* is one thing the bot can answer: one of the eleven causes, the overview, a redirect
for a near-miss topic, or small talk. A *document* is the whole knowledge base as JSON or YAML:
``{"version": 1, "entries": [...]}``. Documents are validated completely before anything is
stored, so an invalid one changes nothing; :class:`DocumentError` names the entry and field.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import yaml

DOCUMENT_VERSION = 1
SLUG_RE = re.compile(r"^[a-z0-9_]{2,40}$")
KINDS = ("cause", "overview", "redirect", "smalltalk")
CAUSE_SLUGS = (
    "huabei_overdue",
    "credit_record",
    "account_risk",
    "jiebei_overdue",
    "misuse",
    "inactive",
    "maintenance",
    "high_debt",
    "unsafe_network",
    "frequent_prepay",
    "id_expired",
)
# Fields an admin may set with /set, and their size limits (characters).
TEXT_FIELDS = {"title": 60, "explanation": 3000, "solution": 3000}
MAX_EXAMPLE_CHARS = 200
MAX_EXAMPLES = 1000
MAX_KEYWORDS = 100
MAX_ENTRIES = 20000
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024


class DocumentError(ValueError):
    """A knowledge document or entry is invalid; the message says where and why."""


class _DocumentLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader without aliases: ``*name`` lets a small document expand into
    a huge one ("billion laughs"), and no document we write uses them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            line = self.peek_event().start_mark.line + 1
            raise DocumentError(f"YAML aliases (*name) are not allowed (line {line})")
        return super().compose_node(parent, index)


@dataclass
class Entry:
    slug: str
    title: str
    explanation: str = ""
    solution: str = ""
    kind: str = "cause"
    examples: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_cause(self) -> bool:
        return self.kind == "cause"


def _where(index: int, raw: Any) -> str:
    slug = raw.get("slug") if isinstance(raw, dict) else None
    return f"entry {index + 1}" + (f" ({slug})" if isinstance(slug, str) and slug else "")


def _string_list(where: str, name: str, value: Any, limit: int, item_chars: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DocumentError(f"{where}: field '{name}' must be a list of strings")
    if len(value) > limit:
        raise DocumentError(f"{where}: field '{name}' has more than {limit} items")
    out: list[str] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise DocumentError(f"{where}: field '{name}' must hold non-empty strings")
        item = clean_text(item)
        if len(item) > item_chars:
            raise DocumentError(f"{where}: an item of '{name}' is over {item_chars} characters")
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def clean_text(value: str) -> str:
    """Strip surrounding blanks and control characters (keeping newlines) from stored text."""
    value = "".join(ch for ch in value if ch in "\n\t" or ch.isprintable())
    return value.strip()


def validate_slug(slug: Any) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise DocumentError(f"slug {slug!r} must match [a-z0-9_]{{2,40}}")
    return slug


def entry_from_dict(raw: Any, index: int = 0) -> Entry:
    """Validate one entry of a document and build it; raises DocumentError."""
    where = _where(index, raw)
    if not isinstance(raw, dict):
        raise DocumentError(f"{where}: must be an object")
    try:
        slug = validate_slug(raw.get("slug"))
    except DocumentError as exc:
        raise DocumentError(f"{where}: field 'slug': {exc}") from None
    values: dict[str, str] = {}
    for name, limit in TEXT_FIELDS.items():
        value = raw.get(name, "" if name != "title" else None)
        if not isinstance(value, str):
            raise DocumentError(f"{where}: field '{name}' must be a string")
        value = clean_text(value)
        if name == "title" and not value:
            raise DocumentError(f"{where}: field 'title' must not be empty")
        if len(value) > limit:
            raise DocumentError(f"{where}: field '{name}' is over {limit} characters")
        values[name] = value
    kind = raw.get("kind", "cause")
    if kind not in KINDS:
        raise DocumentError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}")
    examples = _string_list(where, "examples", raw.get("examples"), MAX_EXAMPLES, MAX_EXAMPLE_CHARS)
    keywords = _string_list(where, "keywords", raw.get("keywords"), MAX_KEYWORDS, 40)
    related = _string_list(where, "related", raw.get("related"), 20, 40)
    for other in related:
        if not SLUG_RE.match(other):
            raise DocumentError(f"{where}: field 'related' holds an invalid slug {other!r}")
    return Entry(
        slug=slug, kind=kind, examples=examples, keywords=keywords, related=related, **values
    )


def parse_document(data: bytes | str) -> list[Entry]:
    """Parse and validate a whole document (JSON or YAML); raises DocumentError."""
    if isinstance(data, bytes):
        if len(data) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"document is larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DocumentError("document is not UTF-8 text") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"document is larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
    if "\x00" in data:
        raise DocumentError("document is not text (it contains NUL bytes)")
    try:
        doc = json.loads(data)
    except RecursionError:
        raise DocumentError("document is nested too deeply") from None
    except ValueError:
        try:
            # A SafeLoader builds plain data only: tags that try to construct objects fail here.
            doc = yaml.load(data, Loader=_DocumentLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise DocumentError(f"document is neither valid JSON nor valid YAML{at}") from None
        except RecursionError:
            raise DocumentError("document is nested too deeply") from None
        except DocumentError:
            raise
        except Exception:
            # PyYAML's constructors raise plain errors on malformed scalars: an empty !!int,
            # !!timestamp 2020-13-45, an integer of 5,000 digits.
            raise DocumentError("document is neither valid JSON nor valid YAML") from None
    if not isinstance(doc, dict):
        raise DocumentError("document must be an object with 'version' and 'entries'")
    version = doc.get("version")
    if isinstance(version, bool) or version != DOCUMENT_VERSION:  # True == 1 in Python
        raise DocumentError(f"unknown document version {version!r} (expected {DOCUMENT_VERSION})")
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise DocumentError("field 'entries' must be a non-empty list")
    if len(raw_entries) > MAX_ENTRIES:
        raise DocumentError(f"document has more than {MAX_ENTRIES} entries")
    entries = [entry_from_dict(raw, i) for i, raw in enumerate(raw_entries)]
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.slug in seen:
            first = seen[entry.slug] + 1
            where = f"entry {i + 1} ({entry.slug})"
            raise DocumentError(f"{where}: field 'slug' duplicates entry {first}")
        seen[entry.slug] = i
    for i, entry in enumerate(entries):
        for other in entry.related:
            if other not in seen:
                raise DocumentError(
                    f"entry {i + 1} ({entry.slug}): field 'related' names unknown entry {other!r}"
                )
    return entries


def dump_document(entries: list[Entry], fmt: str = "json") -> str:
    """Serialise entries as a document; ``fmt`` is ``json`` or ``yaml``."""
    doc = {"version": DOCUMENT_VERSION, "entries": [e.to_dict() for e in entries]}
    if fmt == "yaml":
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def shipped_entries() -> list[Entry]:
    """The knowledge base shipped with the package (knowledge/data/entries.yaml)."""
    text = resources.files("knowledge").joinpath("data/entries.yaml").read_text("utf-8")
    return parse_document(text)
