"""Shared fixtures: one text pipeline per session (loading jieba takes seconds), and knowledge
bases on real SQLite files in ``tmp_path``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from knowledge.base import KnowledgeBase, default_pipeline
from knowledge.store import Store
from knowledge.text import TextPipeline


@pytest.fixture(scope="session")
def pipeline() -> TextPipeline:
    """The process-wide pipeline, so code that calls ``default_pipeline()`` shares it too."""
    return default_pipeline()


@pytest.fixture
def kb(tmp_path, pipeline) -> Iterator[KnowledgeBase]:
    """The shipped knowledge base, seeded into a fresh SQLite file."""
    base = KnowledgeBase(Store(tmp_path / "knowledge.db"), pipeline)
    yield base
    base.store.close()


def make_kb(path, pipeline: TextPipeline, document: dict) -> KnowledgeBase:
    """A knowledge base holding only ``document`` (the ``kb import`` format)."""
    store = Store(path, seed=False)
    store.import_document(json.dumps(document, ensure_ascii=False), actor="test")
    return KnowledgeBase(store, pipeline)
