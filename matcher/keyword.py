"""Keyword index per side: BM25 over jieba tokens, with corpus statistics frozen in snapshots.

Scoring is BM25 in the Lucene variant, exactly as bm25s computes it
(``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, term weight
``idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))``, a query's score the sum of
its tokens' weights, repeated tokens counted again; ``tests/matcher/test_keyword.py``
checks the scores against bm25s itself).  It is computed here on scipy sparse
matrices rather than by bm25s because the platform needs three things bm25s
does not offer:

- adding, changing and removing one document without rebuilding the index
  (bm25s indexes a whole corpus at once: seconds at 100k records, per write);
- corpus statistics (``N``, ``avgdl``, document frequencies) frozen in a
  :class:`KeywordStats` snapshot, so that a score computed now and one computed
  after a few more writes agree exactly, and several processes agree, until the
  snapshot is deliberately refreshed (the stored match graph relies on it);
- the weight vector of one document, to score it against many queries at once
  (a new record entering the stored match lists of the other side).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from matcher.text import tokenize

TITLE_WEIGHT = 2  # a title's words count this many times: titles are dense with the topic
MERGE_DELTA = 2000  # rows added since the last merge before the main matrix is rebuilt


def record_tokens(title: str, body: str) -> list[str]:
    return tokenize(title) * TITLE_WEIGHT + tokenize(body)


class Vocabulary:
    """Token ids shared by both sides' keyword indexes (ids only ever grow)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._tokens: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, token: str) -> int | None:
        return self._ids.get(token)

    def token(self, i: int) -> str:
        return self._tokens[i]

    def ids(self, tokens: Iterable[str], *, add: bool = True) -> list[int]:
        out = []
        with self._lock:
            for t in tokens:
                i = self._ids.get(t)
                if i is None and add:
                    i = self._ids[t] = len(self._ids)
                    self._tokens.append(t)
                if i is not None:
                    out.append(i)
        return out

    def counts(self, tokens: Iterable[str], *, add: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Distinct token ids and how often each occurs (sorted by id)."""
        ids = np.asarray(self.ids(tokens, add=add), dtype=np.int64)
        if ids.size == 0:
            return ids, np.zeros(0, dtype=np.float32)
        uniq, cnt = np.unique(ids, return_counts=True)
        return uniq, cnt.astype(np.float32)


@dataclass
class KeywordStats:
    """Corpus statistics of one snapshot: document count, mean length, document frequencies."""

    n: int
    avgdl: float
    df: dict[str, int]

    def idf(self, token: str, *, unseen: bool = False) -> float:
        df = self.df.get(token, 0)
        if not df:
            return math.log(1 + (self.n + 0.5) / 0.5) if unseen else 0.0
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))


class KeywordIndex:
    """BM25 over token lists, keyed by record id.

    Args:
        k1, b: BM25 parameters.
        vocab: the token-id vocabulary (shared by both sides so that one side's
            documents can be scored against the other side's queries).
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, vocab: Vocabulary | None = None):
        self.k1 = k1
        self.b = b
        self.vocab = vocab if vocab is not None else Vocabulary()
        self._lock = threading.RLock()
        self._tokens: dict[int, list[str]] = {}
        self._row: dict[int, int] = {}  # record id -> its current row
        self._row_ids: list[int] = []  # row -> record id (-1: a removed or replaced row)
        self._tids: list[np.ndarray] = []
        self._tfs: list[np.ndarray] = []
        self._lens: list[int] = []
        self.stats = KeywordStats(0, 1.0, {})
        self._idf_cache: np.ndarray = np.zeros(0, dtype=np.float64)
        self._main: sparse.csc_matrix | None = None  # weights of rows [0, _main_rows)
        self._main_rows = 0
        self._delta: sparse.csc_matrix | None = None  # weights of rows [_main_rows, n)
        self._alive = np.zeros(0, dtype=bool)
        self._ids_arr = np.zeros(0, dtype=np.int64)
        self._rows_changed = True

    def __len__(self) -> int:
        return len(self._row)

    # --- documents ------------------------------------------------------------------------

    def set(self, record_id: int, tokens: list[str]) -> None:
        self.set_many([(record_id, tokens)])

    def set_many(self, items: Iterable[tuple[int, list[str]]]) -> None:
        with self._lock:
            for record_id, tokens in items:
                old = self._row.get(record_id)
                if old is not None:
                    self._row_ids[old] = -1
                tids, tfs = self.vocab.counts(tokens)
                self._row[record_id] = len(self._row_ids)
                self._row_ids.append(record_id)
                self._tids.append(tids)
                self._tfs.append(tfs)
                self._lens.append(len(tokens))
                self._tokens[record_id] = tokens
            self._delta = None
            self._rows_changed = True

    def remove(self, record_id: int) -> None:
        with self._lock:
            row = self._row.pop(record_id, None)
            if row is not None:
                self._row_ids[row] = -1
                self._tokens.pop(record_id, None)
                self._rows_changed = True

    def record_ids(self) -> set[int]:
        return set(self._row)

    def tokens(self, record_id: int) -> list[str]:
        return self._tokens.get(record_id, [])

    def counts_of(self, record_id: int) -> tuple[np.ndarray, np.ndarray]:
        """A document's distinct token ids and their counts (its tokens as a query)."""
        row = self._row[record_id]
        return self._tids[row], self._tfs[row]

    # --- statistics ------------------------------------------------------------------------

    def compute_stats(self) -> KeywordStats:
        """The statistics of the documents indexed now (not yet applied)."""
        with self._lock:
            rows = list(self._row.values())
            n = len(rows)
            if not n:
                return KeywordStats(0, 1.0, {})
            df_ids = np.bincount(np.concatenate([self._tids[r] for r in rows] + [np.zeros(0, np.int64)]),
                                 minlength=len(self.vocab))
            total = sum(self._lens[r] for r in rows)
            return KeywordStats(n, total / n, {self.vocab.token(int(i)): int(df_ids[i])
                                               for i in np.flatnonzero(df_ids)})

    def use_stats(self, stats: KeywordStats) -> None:
        """Score with these statistics from now on (all weights are recomputed)."""
        with self._lock:
            self.stats = stats
            self._idf_cache = np.zeros(0, dtype=np.float64)
            self._compact()
            self._main = None
            self._delta = None

    def _compact(self) -> None:
        """Drop removed rows (renumbering the rest in record order of their rows)."""
        keep = [r for r in range(len(self._row_ids)) if self._row_ids[r] >= 0]
        if len(keep) == len(self._row_ids):
            return
        self._row_ids = [self._row_ids[r] for r in keep]
        self._tids = [self._tids[r] for r in keep]
        self._tfs = [self._tfs[r] for r in keep]
        self._lens = [self._lens[r] for r in keep]
        self._row = {rid: i for i, rid in enumerate(self._row_ids)}
        self._main = None
        self._rows_changed = True

    def _idf_array(self) -> np.ndarray:
        """The idf of every token id (tokens no document had: the unseen weight)."""
        have, n_vocab = len(self._idf_cache), len(self.vocab)
        if have < n_vocab:  # token ids only grow: compute the new ones once per snapshot
            more = np.array([self.stats.idf(self.vocab.token(i), unseen=True) for i in range(have, n_vocab)],
                            dtype=np.float64)
            self._idf_cache = np.concatenate([self._idf_cache, more])
        return self._idf_cache

    def idf(self, token: str, *, unseen: bool = False) -> float:
        """Inverse document frequency (BM25's) in the current snapshot.

        A token no record had is worth 0, unless ``unseen`` asks for the weight
        it would have in a record of its own (the self-score anchor needs that:
        words the corpus lacks are the most specific ones of a query).
        """
        return self.stats.idf(token, unseen=unseen)

    def weights(self, tids: np.ndarray, tfs: np.ndarray, length: int) -> np.ndarray:
        """BM25 term weights of one document (Lucene variant, current snapshot)."""
        idf = self._idf_array()[tids]
        norm = self.k1 * ((1 - self.b) + self.b * length / max(self.stats.avgdl, 1e-9))
        return (idf * tfs / (tfs + norm)).astype(np.float32)

    def weights_of(self, record_id: int) -> tuple[np.ndarray, np.ndarray]:
        """A document's token ids and BM25 weights (to score it against many queries)."""
        with self._lock:
            row = self._row[record_id]
            return self._tids[row], self.weights(self._tids[row], self._tfs[row], self._lens[row])

    def _block(self, start: int, stop: int, n_vocab: int) -> sparse.csc_matrix:
        rows, cols, vals = [], [], []
        for r in range(start, stop):
            tids = self._tids[r]
            if tids.size:
                rows.append(np.full(tids.size, r - start, dtype=np.int64))
                cols.append(tids)
                vals.append(self.weights(tids, self._tfs[r], self._lens[r]))
        if not rows:
            return sparse.csc_matrix((stop - start, n_vocab), dtype=np.float32)
        return sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(stop - start, n_vocab), dtype=np.float32)

    def _ensure(self) -> None:
        n_rows, n_vocab = len(self._row_ids), len(self.vocab)
        if self._main is None or n_rows - self._main_rows > MERGE_DELTA:
            self._main = self._block(0, n_rows, n_vocab)
            self._main_rows = n_rows
            self._delta = None
        if self._delta is None or self._delta.shape[0] != n_rows - self._main_rows:
            self._delta = self._block(self._main_rows, n_rows, n_vocab)
        if self._rows_changed:
            self._ids_arr = np.asarray(self._row_ids, dtype=np.int64)
            self._alive = self._ids_arr >= 0
            self._rows_changed = False

    # --- queries ----------------------------------------------------------------------------

    def score_all(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of every indexed record: ``(record ids, scores)``, aligned by row
        (a removed row has id -1 and score 0)."""
        with self._lock:
            self._ensure()
            ids = self._ids_arr
            tids, counts = self.vocab.counts(tokens, add=False)
            scores = np.zeros(len(ids), dtype=np.float32)
            if tids.size:
                for block, offset in ((self._main, 0), (self._delta, self._main_rows)):
                    inside = tids < block.shape[1]
                    if block.shape[0] and inside.any():
                        part = block[:, tids[inside]] @ counts[inside]
                        scores[offset:offset + block.shape[0]] += np.asarray(part).ravel()
            scores[~self._alive] = 0.0
            return ids, scores

    def score_of(self, scored: tuple[np.ndarray, np.ndarray], record_id: int) -> float:
        """One record's score in a :meth:`score_all` result (0 if it has none)."""
        ids, scores = scored
        row = self._row.get(record_id)
        return float(scores[row]) if row is not None and row < len(ids) and ids[row] == record_id else 0.0

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
