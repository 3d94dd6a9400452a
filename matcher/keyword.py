"""Keyword index per side: BM25 (bm25s) over jieba tokens.

Cheap to rebuild from the database, so it lives in memory only.  Changes mark
it dirty; the BM25 matrices are rebuilt on the next query.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable

import numpy as np

from matcher.text import tokenize

TITLE_WEIGHT = 2  # a title's words count this many times: titles are dense with the topic


def record_tokens(title: str, body: str) -> list[str]:
    return tokenize(title) * TITLE_WEIGHT + tokenize(body)


class KeywordIndex:
    """BM25 over token lists, keyed by record id."""

    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self._tokens: dict[int, list[str]] = {}
        self._lock = threading.RLock()
        self._model = None
        self._ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self._df: Counter[str] = Counter()
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def set(self, record_id: int, tokens: list[str]) -> None:
        with self._lock:
            self._tokens[record_id] = tokens
            self._model = None

    def set_many(self, items: Iterable[tuple[int, list[str]]]) -> None:
        with self._lock:
            self._tokens.update(items)
            self._model = None

    def remove(self, record_id: int) -> None:
        with self._lock:
            if self._tokens.pop(record_id, None) is not None:
                self._model = None

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._model = None

    def record_ids(self) -> set[int]:
        return set(self._tokens)

    def tokens(self, record_id: int) -> list[str]:
        return self._tokens.get(record_id, [])

    def _ensure(self):
        if self._model is None:
            import bm25s

            ids = np.fromiter(self._tokens, dtype=np.int64, count=len(self._tokens))
            model = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
            docs = [self._tokens[int(i)] or [""] for i in ids]
            if docs:
                model.index(docs, show_progress=False)
            self._df = Counter(t for doc in docs for t in set(doc))
            self._ids = ids
            self._pos = {int(rid): i for i, rid in enumerate(ids.tolist())}
            self._model = model
        return self._model

    def idf(self, token: str, *, unseen: bool = False) -> float:
        """Inverse document frequency (BM25's).

        A token no record has is worth 0, unless ``unseen`` asks for the weight
        it would have in a record of its own (the self-score anchor needs that:
        words the corpus lacks are the most specific ones of a query).
        """
        with self._lock:
            self._ensure()
            n, df = len(self._ids), self._df.get(token, 0)
            if not df:
                return math.log(1 + (n + 0.5) / 0.5) if unseen else 0.0
            return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def score_all(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of every record: ``(record ids, scores)``, aligned."""
        with self._lock:
            model = self._ensure()
            ids = self._ids
            token_ids = model.get_tokens_ids(tokens) if len(ids) and tokens else []
            if not token_ids:
                return ids, np.zeros(len(ids), dtype=np.float32)
            return ids, model.get_scores(token_ids)

    def score_of(self, scored: tuple[np.ndarray, np.ndarray], record_id: int) -> float:
        """One record's score in a :meth:`score_all` result (0 if it has none)."""
        i = self._pos.get(record_id)
        ids, scores = scored
        return float(scores[i]) if i is not None and i < len(ids) and ids[i] == record_id else 0.0

    def search(
        self, tokens: list[str], k: int, allowed_records: Iterable[int] | None = None,
        scored: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[int, float]:
        """Top ``k`` records by BM25 score (only those scoring above zero).

        ``scored`` reuses a :meth:`score_all` result for the same tokens.
        """
        ids, scores = scored if scored is not None else self.score_all(tokens)
        if not len(ids) or k <= 0:
            return {}
        if allowed_records is not None:
            mask = np.isin(ids, np.fromiter(allowed_records, dtype=np.int64))
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return {int(ids[i]): float(scores[i]) for i in top if scores[i] > 0}
