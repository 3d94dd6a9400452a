"""Vector indexes keyed by database ids (FAISS, inner product on unit vectors).

Each record may have several passage vectors; a vector's FAISS id is
``record_id * CHUNK_SLOTS + chunk``, so a record's vectors are one id range.
An index is saved beside the database with a manifest; the database stays the
source of truth and :meth:`matcher.sideindex.SideIndex.verify` rebuilds
whatever disagrees with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

CHUNK_SLOTS = 1024


def chunk_id(record_id: int, chunk: int) -> int:
    return record_id * CHUNK_SLOTS + chunk


def ids_checksum(record_ids: Iterable[int]) -> str:
    h = hashlib.sha256()
    for rid in sorted(set(int(i) for i in record_ids)):
        h.update(rid.to_bytes(8, "little", signed=True))
    return h.hexdigest()


@dataclass
class Manifest:
    model_id: str
    dim: int
    count: int
    records: int
    checksum: str
    revision: int
    backend: str = "flat"

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


class VectorIndex(Protocol):
    """What the matcher needs of a vector index."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove_records(self, record_ids: Iterable[int]) -> int: ...
    def search(
        self, queries: np.ndarray, k: int, allowed_records: Iterable[int] | None = None,
        first_passage_only: bool = False,
    ) -> dict[int, float]: ...
    def record_ids(self) -> set[int]: ...
    def save(self, path: Path, manifest: Manifest) -> None: ...


class FaissIndex:
    """An exact ``IndexFlatIP`` inside an ``IndexIDMap2``; thread-safe.

    Args:
        dim: vector dimension.
    """

    backend = "flat"

    def __init__(self, dim: int, index=None):
        import faiss

        self.dim = dim
        self._faiss = faiss
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def _ids(self) -> np.ndarray:
        return self._faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def record_ids(self) -> set[int]:
        with self._lock:
            return set((self._ids() // CHUNK_SLOTS).tolist())

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under FAISS ids made by :func:`chunk_id`."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got {vectors.shape}")
        with self._lock:
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove_records(self, record_ids: Iterable[int]) -> int:
        """Remove every vector of the given records; returns how many went."""
        removed = 0
        with self._lock:
            for rid in record_ids:
                sel = self._faiss.IDSelectorRange(chunk_id(rid, 0), chunk_id(rid + 1, 0))
                removed += int(self._index.remove_ids(sel))
        return removed

    def search(
        self, queries: np.ndarray, k: int, allowed_records: Iterable[int] | None = None,
        first_passage_only: bool = False,
    ) -> dict[int, float]:
        """Best records for any of the query vectors: ``{record_id: best inner product}``.

        Records are ranked by their best passage against their best query
        vector.  With ``allowed_records`` only those records are searched, so a
        filter never cuts the answer below ``k`` when ``k`` such records exist.
        ``first_passage_only`` ignores later passages (the ablation baseline).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        with self._lock:
            if self.ntotal == 0 or k <= 0:
                return {}
            params = None
            if allowed_records is not None or first_passage_only:
                ids = self._ids()
                keep = ids
                if allowed_records is not None:
                    keep = keep[np.isin(keep // CHUNK_SLOTS,
                                        np.fromiter(allowed_records, dtype=np.int64))]
                if first_passage_only:
                    keep = keep[keep % CHUNK_SLOTS == 0]
                if keep.size == 0:
                    return {}
                params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorBatch(keep))
                total = int(keep.size)
            else:
                total = self.ntotal
            fetch = min(total, k)
            while True:
                scores, found = self._index.search(queries, fetch, params=params)
                best: dict[int, float] = {}
                for row_scores, row_ids in zip(scores, found, strict=True):
                    for s, i in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                        if i < 0:
                            continue
                        rid = i // CHUNK_SLOTS
                        if s > best.get(rid, -np.inf):
                            best[rid] = s
                if len(best) >= k or fetch >= total:
                    return dict(sorted(best.items(), key=lambda kv: -kv[1])[:k])
                fetch = min(total, fetch * 4)

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored vector with its FAISS id: ``(ids, vectors)``."""
        with self._lock:
            n = self.ntotal
            if n == 0:
                return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
            return self._ids(), self._index.index.reconstruct_n(0, n)

    def scores_for(self, queries: np.ndarray, record_ids: Iterable[int],
                   first_passage_only: bool = False) -> dict[int, float]:
        """Exact best inner product of each given record (any passage, any query vector)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        wanted = np.fromiter(record_ids, dtype=np.int64)
        with self._lock:
            if wanted.size == 0 or self.ntotal == 0:
                return {}
            ids = self._ids()
            chunks = ids[np.isin(ids // CHUNK_SLOTS, wanted)]
            if first_passage_only:
                chunks = chunks[chunks % CHUNK_SLOTS == 0]
            if chunks.size == 0:
                return {}
            vecs = np.vstack([self._index.reconstruct(int(c)) for c in chunks])
        best = (vecs @ queries.T).max(axis=1)
        out: dict[int, float] = {}
        for c, s in zip((chunks // CHUNK_SLOTS).tolist(), best.tolist(), strict=True):
            if s > out.get(c, -np.inf):
                out[c] = s
        return out

    def save(self, path: Path, manifest: Manifest) -> None:
        """Write index then manifest, each atomically (temp file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
            os.close(fd)
            try:
                self._faiss.write_index(self._index, tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        _atomic_write(manifest_path(path), json.dumps(asdict(manifest), indent=2))

    @classmethod
    def load(cls, path: Path) -> FaissIndex:
        import faiss

        index = faiss.read_index(str(path))
        return cls(index.d, index)


def manifest_path(index_path: Path) -> Path:
    return index_path.with_suffix(index_path.suffix + ".manifest.json")


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


INDEX_BACKENDS = {"flat": FaissIndex}


def make_index(backend: str, dim: int) -> FaissIndex:
    try:
        return INDEX_BACKENDS[backend](dim)
    except KeyError:
        raise ValueError(f"unknown index backend {backend!r}; known: {', '.join(INDEX_BACKENDS)}") from None
