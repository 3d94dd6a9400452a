"""The matcher service: one facade over records, side indexes, retrieval and the directory.

Each part does one job (see the README's architecture section):

- :mod:`matcher.sides` describes the two sides once;
- :mod:`matcher.records` writes and reads records (encode first, then one
  transaction, then the indexes follow) with the one visibility rule;
- :mod:`matcher.sideindex` keeps each side's stored vectors and in-memory
  indexes in step with the database;
- :mod:`matcher.retrieval` ranks (and :mod:`matcher.explain` says why);
- :mod:`matcher.directory` holds organisations and users.

Views and the CLI call one method of this facade per action.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from matcher.directory import Directory
from matcher.errors import ValidationFailed
from matcher.jobs import Outbox
from matcher.keyword import Vocabulary
from matcher.matchstore import MatchStore
from matcher.models import Side
from matcher.records import Records
from matcher.retrieval import MAX_K, Filters, MatchResult, Query, RankSettings, Retriever
from matcher.sideindex import SideIndex, SideState, record_lang, text_hash
from matcher.sides import SIDES, of, spec
from matcher.visibility import Viewer

__all__ = ["MatcherService", "Filters", "MatchResult", "RankSettings", "record_lang", "text_hash"]


class MatcherService:
    """Records, vectors, indexes and ranking for both sides.

    Args:
        engine: the database (source of truth).
        encoder: an :class:`embeddings.Encoder`.
        index_dir: where indexes are saved; None keeps them in memory only.
        backend: vector index backend name.
        settings: ranking settings.
    """

    def __init__(self, engine: Engine, encoder, index_dir: Path | None = None, *,
                 backend: str = "flat", settings: RankSettings | None = None):
        self.engine = engine
        self.encoder = encoder
        self.index_dir = Path(index_dir) if index_dir else None
        self.backend = backend
        self.vocab = Vocabulary()  # shared: one side's records are scored against the other's queries
        self.indexes: dict[Side, SideIndex] = {
            side: SideIndex(s, engine, encoder, index_dir, backend=backend, vocab=self.vocab)
            for side, s in SIDES.items()}
        self.outbox = Outbox(engine, context=self)  # the web layer gives it a queue
        self.mail = None  # mail settings for alert jobs (the web layer sets them)
        self.records = Records(engine, self.indexes, self.outbox)
        self.retriever = Retriever(self.indexes, self.records.fetch, settings or RankSettings())
        self.store = MatchStore(self)
        self.directory = Directory(engine)

    @property
    def settings(self) -> RankSettings:
        return self.retriever.settings

    @settings.setter
    def settings(self, value: RankSettings) -> None:
        self.retriever.settings = value

    @property
    def listeners(self) -> list[Callable[[str, Side, int], None]]:
        """Called as ``listener(event, side, record_id)`` after each committed write."""
        return self.records.listeners

    # --- indexes ---------------------------------------------------------------------------

    def state(self, side: Side) -> SideState:
        return self.indexes[Side(side)].state()

    def rebuild(self, side: Side | None = None) -> dict[str, int]:
        """Rebuild indexes from the database (re-encoding only stale vectors)."""
        return {s.value: self.indexes[s].rebuild().vectors.ntotal for s in ([side] if side else list(Side))}

    def verify(self) -> dict[str, dict[str, Any]]:
        """Compare each saved index with the database; rebuild what disagrees."""
        return {s.value: self.indexes[s].verify() for s in Side}

    def reencode(self, side: Side, record_ids: Sequence[int], progress: bool = False) -> int:
        return self.indexes[Side(side)].reencode(record_ids, progress)

    def query_vectors(self, title: str, body: str, kind: str = "query") -> np.ndarray:
        return self.retriever.query_vectors(title, body, kind)

    # --- records ---------------------------------------------------------------------------

    def create(self, side: Side | str, data) -> Any:
        return self.records.create(side, data)

    def update(self, side: Side | str, record_id: int, data) -> Any:
        return self.records.update(side, record_id, data)

    def delete(self, side: Side | str, record_id: int) -> None:
        self.records.delete(side, record_id)

    def create_demand(self, *, data) -> Any:
        return self.records.create(Side.demand, data)

    def create_achievement(self, *, data) -> Any:
        return self.records.create(Side.achievement, data)

    def update_demand(self, demand_id: int, *, data) -> Any:
        return self.records.update(Side.demand, demand_id, data)

    def update_achievement(self, achievement_id: int, *, data) -> Any:
        return self.records.update(Side.achievement, achievement_id, data)

    def bulk_create(self, side: Side | str, items, *, progress: bool = False, batch_size: int = 256,
                    maintain: bool = True) -> list[int]:
        return self.records.bulk_create(side, items, progress=progress, batch_size=batch_size,
                                        maintain=maintain)

    def get(self, side: Side | str, record_id: int, viewer: Viewer | None = None) -> Any:
        return self.records.get(side, record_id, viewer)

    def list_records(self, side: Side | str, *, viewer: Viewer | None = None, filters: Filters | None = None,
                     page: int = 1, per_page: int = 20) -> tuple[list[Any], int]:
        return self.records.list(side, viewer=viewer, filters=filters, page=page, per_page=per_page)

    def count(self, side: Side | str, *, viewer: Viewer | None = None, filters: Filters | None = None) -> int:
        return self.records.count(side, viewer=viewer, filters=filters)

    # --- ranking ---------------------------------------------------------------------------

    def rank(self, *, title: str, body: str, target: Side, k: int = 10, profile=None,
             filters: Filters | None = None, viewer: Viewer | None = None, explain: bool = True,
             prompt: str = "query", vectors: np.ndarray | None = None) -> list[MatchResult]:
        """Rank matchable records of ``target`` for a text (and its structured profile)."""
        return self.retriever.rank(Query(title, body, profile, vectors, prompt), spec(target), k=k,
                                   filters=filters, viewer=viewer, explain_results=explain)

    def match_record(self, record, *, k: int = 10, filters: Filters | None = None,
                     viewer: Viewer | None = None, explain: bool = True) -> list[MatchResult]:
        """Rank the other side for a record: a stored one from its stored vectors (never
        re-encoded), an unsaved one (evaluation) encoded with the record prompt."""
        s = of(record)
        vectors = self.indexes[s.side].vectors_of(record.id) if record.id is not None else None
        return self.rank(title=record.title, body=record.description, target=s.other.side, k=k,
                         profile=s.profile(record), filters=filters, viewer=viewer, explain=explain,
                         prompt=self.settings.record_prompt, vectors=vectors)

    def match(self, side: Side | str, record_id: int, *, k: int = 10, filters: Filters | None = None,
              viewer: Viewer | None = None, explain: bool = True) -> list[MatchResult]:
        """The best records of the other side for a stored record the viewer may see.

        Read from the record's stored list (computed now if it has none for its
        present text); ranked live only when filters or the viewer's visibility hide
        part of a full list.
        """
        record = self.records.get(side, record_id, viewer)
        return self.stored_matches(record, k=k, filters=filters, viewer=viewer, explain=explain)

    def stored_matches(self, record, *, k: int = 10, filters: Filters | None = None,
                       viewer: Viewer | None = None, explain: bool = True) -> list[MatchResult]:
        """A stored record's matches from the stored match graph (see :meth:`match`)."""
        k = max(1, min(int(k), MAX_K))
        if record.deleted_at is None and k <= self.store.k and self.store.exact():
            found = self.store.read(record, k=k, viewer=viewer, filters=filters, explain=explain)
            if found is None and not self.store.current(record):
                self.store.compute(of(record).side, [record])
                found = self.store.read(record, k=k, viewer=viewer, filters=filters, explain=explain)
            if found is not None:
                return found
        return self.match_record(record, k=k, filters=filters, viewer=viewer, explain=explain)

    def match_demand(self, demand_id: int, k: int = 10, **kw) -> list[MatchResult]:
        return self.match(Side.demand, demand_id, k=k, **kw)

    def match_achievement(self, achievement_id: int, k: int = 10, **kw) -> list[MatchResult]:
        return self.match(Side.achievement, achievement_id, k=k, **kw)

    def search(self, text: str, side: Side | str, k: int = 10, *, filters: Filters | None = None,
               viewer: Viewer | None = None, explain: bool = False) -> list[MatchResult]:
        """Free-text search of one side (the text is encoded once, with the query prompt)."""
        text = (text or "").strip()
        if not text:
            raise ValidationFailed({"q": "请输入检索内容 / enter something to search for"})
        return self.rank(title="", body=text, target=spec(side).side, k=k, filters=filters,
                         viewer=viewer, explain=explain)


import matcher.tasks  # noqa: E402,F401 - registers the jobs that follow writes
