"""Every generated table in README.md and docs/*.md equals what its committed results/*.json renders."""
from __future__ import annotations

from neurohw.results import default_documents, stale_blocks


def test_documents_match_committed_results():
    docs = default_documents()
    assert docs, "README.md / docs/*.md not found next to the neurohw package"
    assert stale_blocks(docs) == []
