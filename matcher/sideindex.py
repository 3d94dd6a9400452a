"""One side's search state: stored vectors, the FAISS and BM25 indexes, and their revision.

The database is the source of truth.  Each record's passage vectors are stored
(:class:`~matcher.models.Embedding`) with the id of the model that made them and
the hash of the text they were made from; the side's revision counter
(:class:`~matcher.models.IndexRevision`) is bumped in the same transaction as
every write.  A process keeps the side's indexes in memory, tagged with the
revision they were built at, and rebuilds them from the stored vectors (never
re-encoding a current one) when the database has moved on, when the saved
FAISS file disagrees with the database, or when asked to.

Only matchable records are indexed: live (not deleted) records in the side's
active status.  A stored record is matched from its stored vectors
(:meth:`SideIndex.vectors_of`), so it is never re-encoded to be matched.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from matcher.index import (
    CHUNK_SLOTS,
    FaissIndex,
    Manifest,
    chunk_id,
    ids_checksum,
    make_index,
    manifest_path,
)
from matcher.keyword import KeywordIndex, KeywordStats, Vocabulary, record_tokens
from matcher.models import CorpusStats, Embedding, IndexChange, IndexRevision
from matcher.sides import SideSpec
from matcher.text import is_chinese, passages

log = logging.getLogger(__name__)

MIN_STATS_ROWS = 20  # fewer vectors than this in a language: use the prior below
# Cosine mean and spread of one record against unrelated records, by (its language,
# theirs), measured on the demo seeds with multilingual-e5-small: used for a language
# with too few vectors of its own to estimate them.
PRIOR_MOMENTS = {("zh", "zh"): (0.86, 0.015), ("en", "en"): (0.82, 0.016),
                 ("zh", "en"): (0.77, 0.015), ("en", "zh"): (0.77, 0.015)}
MIN_SD = 0.005
# A new corpus-statistics snapshot is taken once this share of the side has changed
# since the last one (at least one change: small sides follow every write).
STATS_DRIFT = 0.1


def text_hash(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\x00{body}".encode()).hexdigest()


def record_lang(title: str, body: str) -> str:
    return "zh" if is_chinese(f"{title} {body}") else "en"


@dataclass
class Meta:
    """What ranking needs to know of an indexed record without loading it."""

    lang: str
    organisation_id: int
    confidential: bool
    status: str
    industry_chain: str
    region: str
    trl: int
    modes: tuple[str, ...]


def meta_of(spec: SideSpec, record: Any) -> Meta:
    return Meta(record_lang(record.title, record.description), record.organisation_id,
                spec.is_confidential(record), str(record.status), str(record.industry_chain),
                record.region or "", spec.trl(record), spec.modes(record))


def matchable(spec: SideSpec, record: Any) -> bool:
    """Is the record one that the other side is matched against (live and active)?"""
    return getattr(record, "deleted_at", None) is None and str(record.status) == spec.active_status


@dataclass
class Snapshot:
    """The corpus statistics a side is scored with (see :class:`matcher.models.CorpusStats`)."""

    version: int
    revision: int
    n: int
    keyword: KeywordStats
    lang_stats: dict[str, tuple[np.ndarray, np.ndarray]]

    def encode(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps({"n": self.keyword.n, "avgdl": self.keyword.avgdl,
                                         "df": self.keyword.df, "langs": sorted(self.lang_stats)},
                                        ensure_ascii=False))}
        for lang, (mean, cov) in self.lang_stats.items():
            arrays[f"mean_{lang}"], arrays[f"cov_{lang}"] = mean, cov
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def decode(cls, row: CorpusStats) -> Snapshot:
        with np.load(io.BytesIO(row.payload), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            stats = {lang: (data[f"mean_{lang}"], data[f"cov_{lang}"]) for lang in meta["langs"]}
        return cls(row.version, row.revision, row.records,
                   KeywordStats(meta["n"], meta["avgdl"], meta["df"]), stats)


def language_stats(ids: np.ndarray, vecs: np.ndarray, meta: dict[int, Meta],
                   max_rows: int = 20_000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and covariance of the vectors of each language (a fixed sample of large sides)."""
    if len(vecs) < 2:
        return {}
    order = np.argsort(ids, kind="stable")  # the same answer whatever order the index holds them in
    ids, vecs = ids[order], vecs[order]
    langs = np.array([meta[r].lang if r in meta else "zh" for r in (ids // CHUNK_SLOTS).tolist()])
    rng = np.random.default_rng(0)
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lang in sorted(set(langs.tolist())):
        rows = np.flatnonzero(langs == lang)
        if len(rows) < MIN_STATS_ROWS:
            continue
        if len(rows) > max_rows:
            rows = np.sort(rng.choice(rows, max_rows, replace=False))
        sel = vecs[rows].astype(np.float64)
        stats[lang] = (sel.mean(axis=0), np.cov(sel, rowvar=False))
    return stats


@dataclass
class SideState:
    """A side's in-memory indexes at one revision."""

    spec: SideSpec
    vectors: FaissIndex
    keywords: KeywordIndex = field(default_factory=KeywordIndex)
    meta: dict[int, Meta] = field(default_factory=dict)
    revision: int = -1
    # per language: mean vector and covariance of the side's passage vectors
    lang_stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    confidential: set[int] = field(default_factory=set)  # confidential records among ``meta``
    snapshot: Snapshot | None = None

    @property
    def side(self):
        return self.spec.side

    def put(self, record_id: int, meta: Meta) -> None:
        self.meta[record_id] = meta
        if meta.confidential:
            self.confidential.add(record_id)
        else:
            self.confidential.discard(record_id)

    def drop(self, record_id: int) -> None:
        self.meta.pop(record_id, None)
        self.confidential.discard(record_id)

    def languages(self) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {}
        for rid, m in self.meta.items():
            groups.setdefault(m.lang, set()).add(rid)
        return groups

    def use(self, snapshot: Snapshot) -> None:
        """Score with this snapshot's statistics from now on."""
        self.snapshot = snapshot
        self.lang_stats = snapshot.lang_stats
        self.keywords.use_stats(snapshot.keyword)

    def compute_snapshot(self, version: int) -> Snapshot:
        """The statistics of what is indexed now, as snapshot ``version``."""
        ids, vecs = self.vectors.all_vectors()
        return Snapshot(version, self.revision, len(self.meta), self.keywords.compute_stats(),
                        language_stats(ids, vecs, self.meta))

    def drifted(self) -> bool:
        """Has the side changed enough since its snapshot to take a new one?"""
        snap = self.snapshot
        if snap is None:
            return True
        drift = max(self.revision - snap.revision, abs(len(self.meta) - snap.n))
        return drift >= max(1, math.ceil(STATS_DRIFT * snap.n))

    def standardise(self, query: np.ndarray, cosines: dict[int, float],
                    query_lang: str = "zh") -> dict[int, float]:
        """Cosines as z-scores against the query's score distribution in each record's language.

        The mean of ``q . v`` over a language's vectors is ``q . mean`` and its
        variance ``q' C q``, so no pass over the vectors is needed per query.
        """
        out: dict[int, float] = {}
        moments: dict[str, tuple[float, float]] = {}
        for rid, cos in cosines.items():
            lang = self.meta[rid].lang if rid in self.meta else "zh"
            if lang not in moments:
                if lang in self.lang_stats:
                    mean, cov = self.lang_stats[lang]
                    moments[lang] = (float(query @ mean),
                                     max(float(np.sqrt(max(query @ cov @ query, 0.0))), MIN_SD))
                else:
                    moments[lang] = PRIOR_MOMENTS.get((query_lang, lang), (0.8, 0.02))
            mu, sd = moments[lang]
            out[rid] = (cos - mu) / sd
        return out


class SideIndex:
    """Vectors and indexes of one side: storage, staleness, load / save / verify / rebuild.

    Args:
        spec: the side.
        engine: the database.
        encoder: an :class:`embeddings.Encoder`.
        index_dir: where the FAISS index is saved; None keeps it in memory only.
        backend: vector index backend name.
        vocab: the token vocabulary shared with the other side.
    """

    def __init__(self, spec: SideSpec, engine: Engine, encoder, index_dir: Path | None = None, *,
                 backend: str = "flat", vocab: Vocabulary | None = None):
        self.spec = spec
        self.engine = engine
        self.encoder = encoder
        self.index_dir = Path(index_dir) if index_dir else None
        self.backend = backend
        self.vocab = vocab if vocab is not None else Vocabulary()
        self._state: SideState | None = None
        self._lock = threading.RLock()

    # --- texts and vectors --------------------------------------------------------------

    def passages(self, title: str, body: str) -> list[str]:
        """The record's text cut into passages the model reads whole."""
        return passages(title, body, self.encoder.count_tokens, max(32, self.encoder.max_tokens - 16))

    def encode(self, items: Sequence[tuple[str, str]], progress: bool = False) -> list[np.ndarray]:
        """Passage vectors of many (title, body) texts, in one encoder call (length-sorted batches)."""
        texts: list[str] = []
        bounds = []
        for title, body in items:
            ps = self.passages(title, body)
            bounds.append((len(texts), len(texts) + len(ps)))
            texts.extend(ps)
        vecs = self.encoder.encode(texts, "passage", progress=progress)
        return [vecs[a:b] for a, b in bounds]

    def store_vectors(self, session: Session, record: Any, vecs: np.ndarray) -> None:
        """Replace the record's stored vectors (in the caller's transaction)."""
        session.exec(delete(Embedding).where(Embedding.side == self.spec.name,
                                             Embedding.record_id == record.id))
        th = text_hash(record.title, record.description)
        for i, v in enumerate(vecs):
            session.add(Embedding(side=self.spec.name, record_id=record.id, chunk=i,
                                  model_id=self.encoder.model_id, text_hash=th,
                                  vector=np.asarray(v, dtype=np.float32).tobytes()))

    def vectors_of(self, record_id: int) -> np.ndarray | None:
        """The record's stored passage vectors of the current model (None if it has none)."""
        return self.vectors_of_many([record_id]).get(record_id)

    def vectors_of_many(self, record_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """Stored passage vectors of the current model, by record (records without any are missing)."""
        ids = list(record_ids)
        if not ids:
            return {}
        out: dict[int, list[bytes]] = {}
        with Session(self.engine) as session:
            for start in range(0, len(ids), 5000):
                for rid, vec in session.exec(select(Embedding.record_id, Embedding.vector).where(
                        Embedding.side == self.spec.name, Embedding.record_id.in_(ids[start:start + 5000]),
                        Embedding.model_id == self.encoder.model_id).order_by(
                        Embedding.record_id, Embedding.chunk)).all():
                    out.setdefault(rid, []).append(vec)
        return {rid: np.frombuffer(b"".join(v), dtype=np.float32).reshape(len(v), -1)
                for rid, v in out.items()}

    # --- revision ----------------------------------------------------------------------------

    def db_revision(self, session: Session) -> int:
        row = session.get(IndexRevision, self.spec.name)
        return row.revision if row else 0

    def bump(self, session: Session, record_ids: Iterable[int] = ()) -> int:
        """Move the side's revision on and log which records it changed (in the caller's
        transaction, the revision row locked)."""
        row = session.get(IndexRevision, self.spec.name, with_for_update=True)
        if row is None:
            row = IndexRevision(side=self.spec.name, revision=0)
        row.revision += 1
        session.add(row)
        for rid in dict.fromkeys(record_ids):
            session.add(IndexChange(side=self.spec.name, revision=row.revision, record_id=rid))
        return row.revision

    # --- state ---------------------------------------------------------------------------------

    def _path(self) -> Path | None:
        return self.index_dir / f"{self.spec.name}.faiss" if self.index_dir else None

    def state(self) -> SideState:
        """The side's indexes, following the database: changes another process made are
        caught up on (or the side reloaded), and its corpus statistics are the current ones."""
        with self._lock:
            with Session(self.engine) as session:
                row = session.get(IndexRevision, self.spec.name)
            rev, stats_version = (row.revision, row.stats_version) if row else (0, 0)
            st = self._state
            if st is not None and st.revision != rev and not self._catch_up(st, rev):
                st = None
            if st is None:
                st = self._state = self._load()
            elif st.snapshot is None or st.snapshot.version != stats_version:
                self._use_snapshot(st, stats_version)
            self._maybe_refresh(st)
            return st

    def forget(self) -> None:
        """Drop the in-memory state: the next use reloads it."""
        with self._lock:
            self._state = None

    def stale_ids(self, session: Session) -> list[int]:
        """Live records without current vectors: missing, other model, or text changed."""
        table = self.spec.table
        rows = session.exec(select(table.id, table.title, table.description)
                            .where(table.deleted_at == None)).all()  # noqa: E711
        have: dict[int, tuple[str, str]] = {}
        for rid, model_id, th in session.exec(
            select(Embedding.record_id, Embedding.model_id, Embedding.text_hash).where(
                Embedding.side == self.spec.name, Embedding.chunk == 0)
        ).all():
            have[rid] = (model_id, th)
        return [rid for rid, title, body in rows
                if have.get(rid) != (self.encoder.model_id, text_hash(title, body))]

    def reencode(self, record_ids: Sequence[int], progress: bool = False) -> int:
        """Encode the given records again and store their vectors (one transaction per batch)."""
        table = self.spec.table
        done = 0
        for start in range(0, len(record_ids), 256):
            batch = list(record_ids[start : start + 256])
            with Session(self.engine) as session:
                records = session.exec(select(table).where(table.id.in_(batch))).all()
                vecs = self.encode([(r.title, r.description) for r in records], progress)
                for r, v in zip(records, vecs, strict=True):
                    self.store_vectors(session, r, v)
                self.bump(session, [r.id for r in records])
                session.commit()
                done += len(records)
        return done

    def _matchable_records(self, session: Session) -> list[Any]:
        table = self.spec.table
        return list(session.exec(select(table).where(
            table.deleted_at == None, table.status == self.spec.active_status)).all())  # noqa: E711

    def _catch_up(self, st: SideState, revision: int) -> bool:
        """Apply the changes logged between the state's revision and ``revision``.

        Returns False when that is not possible (a gap in the log, a record without
        current vectors): the caller reloads the side.
        """
        if revision < st.revision:
            return False
        with Session(self.engine, expire_on_commit=False) as session:
            changes = session.exec(select(IndexChange.revision, IndexChange.record_id).where(
                IndexChange.side == self.spec.name, IndexChange.revision > st.revision,
                IndexChange.revision <= revision)).all()
            if {r for r, _ in changes} != set(range(st.revision + 1, revision + 1)):
                return False
            ids = list(dict.fromkeys(rid for _, rid in changes))
            table = self.spec.table
            records = {r.id: r for r in session.exec(select(table).where(table.id.in_(ids))).all()} if ids else {}
        vectors = self.vectors_of_many([r.id for r in records.values() if matchable(self.spec, r)])
        upsert, remove = [], []
        for rid in ids:
            record = records.get(rid)
            if record is None or not matchable(self.spec, record):
                remove.append(rid)
            elif rid in vectors:
                upsert.append((record, vectors[rid]))
            else:
                return False  # no current vectors: a reload re-encodes it
        self._apply_to(st, upsert, remove)
        st.revision = revision
        return True

    def _load(self, *, force_rebuild: bool = False) -> SideState:
        """Build the side's in-memory state from the database (and a saved index if current)."""
        with Session(self.engine) as session:
            stale = self.stale_ids(session)
        if stale:
            log.info("re-encoding %d %s records (new, changed or other model)", len(stale), self.spec.name)
            self.reencode(stale, progress=len(stale) > 200)
        with Session(self.engine) as session:
            row = session.get(IndexRevision, self.spec.name)
            revision, stats_version = (row.revision, row.stats_version) if row else (0, 0)
            records = self._matchable_records(session)
            ids = [r.id for r in records]
            checksum = ids_checksum(ids)
            path = self._path()
            vectors = None
            if path is not None and path.exists() and not force_rebuild:
                manifest = Manifest.read(manifest_path(path))
                if (manifest and manifest.model_id == self.encoder.model_id
                        and manifest.checksum == checksum and manifest.revision == revision
                        and manifest.backend == self.backend):
                    try:
                        vectors = FaissIndex.load(path)
                    except Exception:  # a damaged file is rebuilt, never trusted
                        vectors = None
                    if vectors is not None and vectors.ntotal != manifest.count:
                        vectors = None
            if vectors is None:
                vectors = make_index(self.backend, self.encoder.dim)
                wanted = set(ids)
                rows = [r for r in session.exec(
                    select(Embedding.record_id, Embedding.chunk, Embedding.vector).where(
                        Embedding.side == self.spec.name,
                        Embedding.model_id == self.encoder.model_id)
                ).all() if r[0] in wanted]
                if rows:
                    vectors.add(
                        np.array([chunk_id(r, c) for r, c, _ in rows], dtype=np.int64),
                        np.frombuffer(b"".join(v for _, _, v in rows), dtype=np.float32)
                        .reshape(len(rows), -1),
                    )
                if path is not None:
                    vectors.save(path, self._manifest(vectors, checksum, revision, len(ids)))
        st = SideState(self.spec, vectors, KeywordIndex(vocab=self.vocab), revision=revision)
        st.keywords.set_many((r.id, record_tokens(r.title, r.description)) for r in records)
        for r in records:
            st.put(r.id, meta_of(self.spec, r))
        self._use_snapshot(st, stats_version)
        return st

    # --- corpus statistics ----------------------------------------------------------------------

    def _use_snapshot(self, st: SideState, version: int) -> None:
        """Score with the stored snapshot ``version`` (of this model); without one, take one."""
        row = None
        if version:
            with Session(self.engine) as session:
                row = session.exec(select(CorpusStats).where(
                    CorpusStats.side == self.spec.name, CorpusStats.version == version)).first()
        if row is not None and row.model_id == self.encoder.model_id:
            st.use(Snapshot.decode(row))
        else:
            st.snapshot = None  # taken by _maybe_refresh

    def _maybe_refresh(self, st: SideState) -> None:
        """Take a new snapshot of the side's statistics once it has drifted from the last one.

        The snapshot is stored with the next version number; if another process took
        one first, that one is used instead, so every process scores alike.
        """
        if not st.drifted():
            return
        with Session(self.engine) as session:
            row = session.get(IndexRevision, self.spec.name, with_for_update=True)
            if row is None:
                row = IndexRevision(side=self.spec.name, revision=0)
            current = st.snapshot.version if st.snapshot else 0
            if row.stats_version > current:  # another process moved on: use its snapshot
                session.rollback()
                self._use_snapshot(st, row.stats_version)
                if st.snapshot is not None:
                    return
                with Session(self.engine) as again:
                    row = again.get(IndexRevision, self.spec.name, with_for_update=True)
                    self._store_snapshot(again, row, st)
                return
            self._store_snapshot(session, row, st)

    def _store_snapshot(self, session: Session, row: IndexRevision, st: SideState) -> None:
        snap = st.compute_snapshot(row.stats_version + 1)
        row.stats_version = snap.version
        session.add(row)
        session.add(CorpusStats(side=self.spec.name, version=snap.version, revision=snap.revision,
                                records=snap.n, model_id=self.encoder.model_id, payload=snap.encode()))
        session.commit()
        st.use(snap)
        log.info("%s: corpus statistics snapshot %d (%d records)", self.spec.name, snap.version, snap.n)

    def _manifest(self, vectors, checksum, revision, records) -> Manifest:
        return Manifest(self.encoder.model_id, vectors.dim, vectors.ntotal, records, checksum,
                        revision, self.backend)

    def rebuild(self) -> SideState:
        """Rebuild the indexes from the database (re-encoding only stale vectors)."""
        with self._lock:
            self._state = self._load(force_rebuild=True)
            self._maybe_refresh(self._state)
            return self._state

    def verify(self) -> dict[str, Any]:
        """Compare the saved index with the database; rebuild it if they disagree.

        Returns:
            Records in the database and in the index, vectors in the index, stale
            vectors, whether the saved index was current and whether it was rebuilt.
        """
        table = self.spec.table
        with Session(self.engine) as session:
            ids = [r.id for r in self._matchable_records(session)]
            live = len(session.exec(select(table.id).where(table.deleted_at == None)).all())  # noqa: E711
            revision = self.db_revision(session)
            stale = self.stale_ids(session)
        path = self._path()
        manifest = Manifest.read(manifest_path(path)) if path else None
        current = bool(
            manifest and not stale and manifest.model_id == self.encoder.model_id
            and manifest.checksum == ids_checksum(ids) and manifest.revision == revision
        )
        with self._lock:
            self._state = self._load(force_rebuild=not current)
            self._maybe_refresh(self._state)
            st = self._state
        return {
            "db_records": live,
            "matchable_records": len(ids),
            "index_records": len(st.vectors.record_ids()),
            "index_vectors": st.vectors.ntotal,
            "stale_vectors": len(stale),
            "saved_index_current": current,
            "rebuilt": not current,
            "stats_version": st.snapshot.version if st.snapshot else 0,
        }

    def _apply_to(self, st: SideState, upsert: Iterable[tuple[Any, np.ndarray]], remove: Iterable[int]) -> None:
        gone = list(remove)
        for record, vecs in upsert:
            if not matchable(self.spec, record):
                gone.append(record.id)
                continue
            st.vectors.remove_records([record.id])
            st.vectors.add(np.array([chunk_id(record.id, i) for i in range(len(vecs))]), vecs)
            st.keywords.set(record.id, record_tokens(record.title, record.description))
            st.put(record.id, meta_of(self.spec, record))
        for rid in gone:
            st.vectors.remove_records([rid])
            st.keywords.remove(rid)
            st.drop(rid)

    def apply(self, revision: int, *, upsert: Iterable[tuple[Any, np.ndarray]] = (),
              remove: Iterable[int] = ()) -> None:
        """Follow a committed write in memory: upsert records (with their vectors), remove others.

        A record that is not matchable (deleted, or not in the active status) is
        removed.  If another writer moved the revision on meanwhile, the state
        catches up on next use.
        """
        with self._lock:
            st = self._state
            if st is None or st.revision != revision - 1:
                return  # another writer moved on: state() catches up on next use
            self._apply_to(st, upsert, remove)
            st.revision = revision
            self._maybe_refresh(st)
            path = self._path()
            if path is not None:
                st.vectors.save(path, self._manifest(st.vectors, ids_checksum(st.meta),
                                                     revision, len(st.meta)))
