"""The matcher service: writes records with their vectors, keeps indexes, ranks.

One way through: a validated ``...Create`` model comes in, the text is encoded
*before* anything is written, the record, its vectors and the side's revision
are committed in one transaction, then the in-memory indexes follow and are
saved.  A crash at any point leaves the database whole; an index that
disagrees with the database is rebuilt from the stored vectors on start.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from matcher import ranking
from matcher.errors import NotFound, ValidationFailed
from matcher.index import (
    CHUNK_SLOTS,
    FaissIndex,
    Manifest,
    chunk_id,
    ids_checksum,
    make_index,
    manifest_path,
)
from matcher.keyword import KeywordIndex, record_tokens
from matcher.models import (
    Achievement,
    AchievementCreate,
    AchievementStatus,
    AchievementUpdate,
    Demand,
    DemandCreate,
    DemandStatus,
    DemandUpdate,
    Embedding,
    IndexRevision,
    Organisation,
    Side,
    utcnow,
)
from matcher.text import is_chinese, passages, sentences, tokenize
from matcher.visibility import Viewer

log = logging.getLogger(__name__)

TABLES: dict[Side, type[Demand] | type[Achievement]] = {
    Side.demand: Demand,
    Side.achievement: Achievement,
}
ACTIVE_STATUS = {Side.demand: DemandStatus.open.value, Side.achievement: AchievementStatus.available.value}
CANDIDATES = 100  # per retriever, before fusion
MIN_STATS_ROWS = 20  # fewer vectors than this in a language: use the prior below
# Cosine mean and spread of one record against unrelated records, by (its language,
# theirs), measured on the demo seeds with multilingual-e5-small: used for a language
# with too few vectors of its own to estimate them.
PRIOR_MOMENTS = {("zh", "zh"): (0.86, 0.015), ("en", "en"): (0.82, 0.016),
                 ("zh", "en"): (0.77, 0.015), ("en", "zh"): (0.77, 0.015)}
MIN_SD = 0.005


@dataclass
class Filters:
    """Filters on the records being ranked; None means no restriction.

    ``status`` defaults to the active status (open demands, available
    achievements); pass ``"any"`` to rank every status.
    """

    industry_chain: str | None = None
    region: str | None = None
    min_trl: int | None = None
    cooperation_mode: str | None = None
    status: str | None = None
    organisation_id: int | None = None


@dataclass
class Meta:
    lang: str
    organisation_id: int
    confidential: bool
    status: str
    industry_chain: str
    region: str
    trl: int
    modes: tuple[str, ...]


@dataclass
class MatchResult:
    record: Demand | Achievement
    score: float
    strength: float
    good: bool
    breakdown: dict[str, Any]
    explanation: dict[str, Any] = field(default_factory=dict)


@dataclass
class SideState:
    side: Side
    vectors: FaissIndex
    keywords: KeywordIndex = field(default_factory=KeywordIndex)
    meta: dict[int, Meta] = field(default_factory=dict)
    revision: int = -1
    # per language: mean vector and covariance of the side's passage vectors
    lang_stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def languages(self) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {}
        for rid, m in self.meta.items():
            groups.setdefault(m.lang, set()).add(rid)
        return groups

    def refresh_stats(self, max_rows: int = 20_000) -> None:
        """Mean and covariance of the vectors of each language (a sample of large sides)."""
        ids, vecs = self.vectors.all_vectors()
        if len(vecs) < 2:
            self.lang_stats = {}
            return
        langs = np.array([self.meta[r].lang if r in self.meta else "zh"
                          for r in (ids // CHUNK_SLOTS).tolist()])
        rng = np.random.default_rng(0)
        stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for lang in set(langs.tolist()):
            rows = np.flatnonzero(langs == lang)
            if len(rows) < MIN_STATS_ROWS:
                continue
            if len(rows) > max_rows:
                rows = rng.choice(rows, max_rows, replace=False)
            sel = vecs[rows].astype(np.float64)
            stats[lang] = (sel.mean(axis=0), np.cov(sel, rowvar=False))
        self.lang_stats = stats

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


@dataclass
class RankSettings:
    fusion: str = "absolute"
    dense_weight: float = 0.4
    threshold: float = 0.45  # minimum strength of a "good" match (calibration: README)
    passages: bool = True  # False: only the first passage of each text counts (ablation)
    compatibility: bool = True
    use_dense: bool = True
    use_keyword: bool = True
    # Prompt for a whole record matched against the other side.  Record-to-record
    # matching is symmetric (a description against descriptions): on jishu51 dev the
    # passage prompt on both sides beat "query: " (dense nDCG@10 0.315 vs 0.262,
    # Recall@100 0.93 vs 0.75).  Free-text search always uses the query prompt.
    record_prompt: str = "passage"


def text_hash(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\x00{body}".encode()).hexdigest()


def _profile(record: Demand | Achievement) -> ranking.Profile:
    if isinstance(record, Demand):
        return ranking.Profile(
            record.industry_chain, record.technical_field or "", record.region or "",
            record.required_trl, tuple(record.cooperation_modes or ()), record.budget_wan,
        )
    return ranking.Profile(
        record.industry_chain, record.technical_field or "", record.region or "",
        record.trl, tuple(record.transfer_modes or ()), record.asking_price_wan,
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def record_lang(title: str, body: str) -> str:
    return "zh" if is_chinese(f"{title} {body}") else "en"


def _meta(record: Demand | Achievement) -> Meta:
    lang = record_lang(record.title, record.description)
    if isinstance(record, Demand):
        return Meta(lang, record.organisation_id, bool(record.confidential), str(record.status),
                    str(record.industry_chain), record.region or "", record.required_trl,
                    tuple(record.cooperation_modes or ()))
    return Meta(lang, record.organisation_id, False, str(record.status), str(record.industry_chain),
                record.region or "", record.trl, tuple(record.transfer_modes or ()))


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
        self.settings = settings or RankSettings()
        self._states: dict[Side, SideState] = {}
        self._lock = threading.RLock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # Called as listener(event, side, record_id) after a write has committed
        # ("created", "updated", "deleted"); the web layer queues alert jobs here.
        self.listeners: list[Callable[[str, Side, int], None]] = []

    # --- texts and vectors ------------------------------------------------------

    def _max_passage_tokens(self) -> int:
        return max(32, self.encoder.max_tokens - 16)

    def record_passages(self, title: str, body: str) -> list[str]:
        return passages(title, body, self.encoder.count_tokens, self._max_passage_tokens())

    def _encode_passages(self, items: Sequence[tuple[str, str]], progress: bool = False) -> list[np.ndarray]:
        texts: list[str] = []
        bounds = []
        for title, body in items:
            ps = self.record_passages(title, body)
            bounds.append((len(texts), len(texts) + len(ps)))
            texts.extend(ps)
        vecs = self.encoder.encode(texts, "passage", progress=progress)
        return [vecs[a:b] for a, b in bounds]

    def query_vectors(self, title: str, body: str, kind: str = "query") -> np.ndarray:
        key = kind + text_hash(title, body)
        with self._lock:
            if key in self._query_cache:
                self._query_cache.move_to_end(key)
                return self._query_cache[key]
        vecs = self.encoder.encode(self.record_passages(title, body), kind)
        with self._lock:
            self._query_cache[key] = vecs
            while len(self._query_cache) > 512:
                self._query_cache.popitem(last=False)
        return vecs

    # --- index state --------------------------------------------------------------

    def _index_path(self, side: Side) -> Path | None:
        return self.index_dir / f"{side.value}.faiss" if self.index_dir else None

    @staticmethod
    def _db_revision(session: Session, side: Side) -> int:
        row = session.get(IndexRevision, side.value)
        return row.revision if row else 0

    @staticmethod
    def _bump(session: Session, side: Side) -> int:
        row = session.get(IndexRevision, side.value, with_for_update=True)
        if row is None:
            row = IndexRevision(side=side.value, revision=0)
        row.revision += 1
        session.add(row)
        return row.revision

    def state(self, side: Side) -> SideState:
        """The side's indexes, reloaded from the database when another writer moved on."""
        with self._lock:
            st = self._states.get(side)
            with Session(self.engine) as session:
                rev = self._db_revision(session, side)
            if st is None or st.revision != rev:
                st = self._load_side(side)
                self._states[side] = st
            return st

    def _stale_vectors(self, session: Session, side: Side) -> list[int]:
        """Records without current vectors: missing, other model, or text changed."""
        table = TABLES[side]
        rows = session.exec(select(table.id, table.title, table.description)).all()
        have: dict[int, tuple[str, str]] = {}
        for rid, model_id, th in session.exec(
            select(Embedding.record_id, Embedding.model_id, Embedding.text_hash).where(
                Embedding.side == side.value, Embedding.chunk == 0)
        ).all():
            have[rid] = (model_id, th)
        return [
            rid for rid, title, body in rows
            if have.get(rid) != (self.encoder.model_id, text_hash(title, body))
        ]

    def reencode(self, side: Side, record_ids: Sequence[int], progress: bool = False) -> int:
        """Encode the given records again and store their vectors (one transaction per batch)."""
        table = TABLES[side]
        done = 0
        for start in range(0, len(record_ids), 256):
            batch = list(record_ids[start : start + 256])
            with Session(self.engine) as session:
                records = session.exec(select(table).where(table.id.in_(batch))).all()
                vecs = self._encode_passages([(r.title, r.description) for r in records], progress)
                session.exec(delete(Embedding).where(
                    Embedding.side == side.value, Embedding.record_id.in_(batch)))
                for r, v in zip(records, vecs, strict=True):
                    self._add_embeddings(session, side, r, v)
                self._bump(session, side)
                session.commit()
                done += len(records)
        return done

    def _add_embeddings(self, session: Session, side: Side, record, vecs: np.ndarray) -> None:
        th = text_hash(record.title, record.description)
        for i, v in enumerate(vecs):
            session.add(Embedding(side=side.value, record_id=record.id, chunk=i,
                                  model_id=self.encoder.model_id, text_hash=th,
                                  vector=np.asarray(v, dtype=np.float32).tobytes()))

    def _load_side(self, side: Side, *, force_rebuild: bool = False) -> SideState:
        """Build the side's in-memory state from the database (and a saved index if current)."""
        with Session(self.engine) as session:
            stale = self._stale_vectors(session, side)
        if stale:
            log.info("re-encoding %d %s records (new, changed or other model)", len(stale), side.value)
            self.reencode(side, stale, progress=len(stale) > 200)
        table = TABLES[side]
        with Session(self.engine) as session:
            revision = self._db_revision(session, side)
            records = session.exec(select(table)).all()
            ids = [r.id for r in records]
            checksum = ids_checksum(ids)
            path = self._index_path(side)
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
                rows = session.exec(
                    select(Embedding.record_id, Embedding.chunk, Embedding.vector).where(
                        Embedding.side == side.value,
                        Embedding.model_id == self.encoder.model_id)
                ).all()
                if rows:
                    vectors.add(
                        np.array([chunk_id(r, c) for r, c, _ in rows], dtype=np.int64),
                        np.frombuffer(b"".join(v for _, _, v in rows), dtype=np.float32)
                        .reshape(len(rows), -1),
                    )
                if path is not None:
                    vectors.save(path, self._manifest(vectors, checksum, revision, len(ids)))
        st = SideState(side, vectors, revision=revision)
        st.keywords.set_many((r.id, record_tokens(r.title, r.description)) for r in records)
        st.meta = {r.id: _meta(r) for r in records}
        st.refresh_stats()
        return st

    def _manifest(self, vectors, checksum, revision, records) -> Manifest:
        return Manifest(self.encoder.model_id, vectors.dim, vectors.ntotal, records, checksum,
                        revision, self.backend)

    def rebuild(self, side: Side | None = None) -> dict[str, int]:
        """Rebuild indexes from the database (re-encoding only stale vectors)."""
        out = {}
        for s in [side] if side else list(Side):
            with self._lock:
                st = self._load_side(s, force_rebuild=True)
                self._states[s] = st
            out[s.value] = st.vectors.ntotal
        return out

    def verify(self) -> dict[str, dict[str, Any]]:
        """Compare each saved index with the database; rebuild what disagrees.

        Returns:
            Per side: records in the database, vectors and records in the index,
            whether the saved index was current, and whether it was rebuilt.
        """
        report: dict[str, dict[str, Any]] = {}
        for side in Side:
            table = TABLES[side]
            with Session(self.engine) as session:
                ids = session.exec(select(table.id)).all()
                revision = self._db_revision(session, side)
                stale = self._stale_vectors(session, side)
            path = self._index_path(side)
            manifest = Manifest.read(manifest_path(path)) if path else None
            current = bool(
                manifest and not stale and manifest.model_id == self.encoder.model_id
                and manifest.checksum == ids_checksum(ids) and manifest.revision == revision
            )
            with self._lock:
                st = self._load_side(side, force_rebuild=not current)
                self._states[side] = st
            report[side.value] = {
                "db_records": len(ids),
                "index_records": len(st.vectors.record_ids()),
                "index_vectors": st.vectors.ntotal,
                "stale_vectors": len(stale),
                "saved_index_current": current,
                "rebuilt": not current,
            }
        return report

    # --- writes ----------------------------------------------------------------------

    def _notify(self, event: str, side: Side, record_id: int) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, side, record_id)
            except Exception:  # a failing listener never undoes a committed write
                log.exception("listener %r failed on %s %s %s", listener, event, side.value, record_id)

    def _write(self, side: Side, record, *, new: bool) -> Any:
        vecs = self._encode_passages([(record.title, record.description)])[0]
        with Session(self.engine, expire_on_commit=False) as session:
            if session.get(Organisation, record.organisation_id) is None:
                raise ValidationFailed({"organisation_id": "机构不存在 / no such organisation"})
            record.updated_at = utcnow()
            session.add(record)
            session.flush()
            session.exec(delete(Embedding).where(
                Embedding.side == side.value, Embedding.record_id == record.id))
            self._add_embeddings(session, side, record, vecs)
            revision = self._bump(session, side)
            session.commit()
            session.refresh(record)
        self._apply(side, revision, upsert=(record, vecs))
        self._notify("created" if new else "updated", side, record.id)
        return record

    def _apply(self, side: Side, revision: int, *, upsert=None, remove: int | None = None) -> None:
        with self._lock:
            st = self._states.get(side)
            if st is None or st.revision != revision - 1:
                self._states.pop(side, None)  # another writer moved on: reload on next use
                return
            if upsert is not None:
                record, vecs = upsert
                st.vectors.remove_records([record.id])
                st.vectors.add(np.array([chunk_id(record.id, i) for i in range(len(vecs))]), vecs)
                st.keywords.set(record.id, record_tokens(record.title, record.description))
                st.meta[record.id] = _meta(record)
            if remove is not None:
                st.vectors.remove_records([remove])
                st.keywords.remove(remove)
                st.meta.pop(remove, None)
            st.revision = revision
            if st.vectors.ntotal <= 5000:  # cheap: keep the language statistics exact
                st.refresh_stats()
            path = self._index_path(side)
            if path is not None:
                st.vectors.save(path, self._manifest(st.vectors, ids_checksum(st.meta),
                                                     revision, len(st.meta)))

    def create_demand(self, *, data: DemandCreate) -> Demand:
        """Store a new demand with its vectors and index it."""
        return self._write(Side.demand, Demand.model_validate(data.model_dump(mode="json")), new=True)

    def create_achievement(self, *, data: AchievementCreate) -> Achievement:
        """Store a new achievement with its vectors and index it."""
        return self._write(Side.achievement,
                           Achievement.model_validate(data.model_dump(mode="json")), new=True)

    def _update(self, side: Side, record_id: int, data) -> Any:
        table = TABLES[side]
        with Session(self.engine, expire_on_commit=False) as session:
            record = session.get(table, record_id)
            if record is None:
                raise NotFound(f"{side.value} {record_id} not found")
        changes = data.model_dump(mode="json", exclude_unset=True)
        merged = {**record.model_dump(mode="json"), **changes}
        create_model = DemandCreate if side is Side.demand else AchievementCreate
        from pydantic import ValidationError

        try:
            valid = create_model.model_validate(merged)
        except ValidationError as exc:
            raise ValidationFailed(validation_errors(exc)) from exc
        for key in changes:  # the validated Python values (dates stay dates, enums plain strings)
            setattr(record, key, _column_value(getattr(valid, key)))
        return self._write(side, record, new=False)

    def update_demand(self, demand_id: int, *, data: DemandUpdate) -> Demand:
        return self._update(Side.demand, demand_id, data)

    def update_achievement(self, achievement_id: int, *, data: AchievementUpdate) -> Achievement:
        return self._update(Side.achievement, achievement_id, data)

    def delete(self, side: Side, record_id: int) -> None:
        """Delete a record and its vectors."""
        table = TABLES[side]
        with Session(self.engine) as session:
            record = session.get(table, record_id)
            if record is None:
                raise NotFound(f"{side.value} {record_id} not found")
            session.exec(delete(Embedding).where(
                Embedding.side == side.value, Embedding.record_id == record_id))
            session.delete(record)
            revision = self._bump(session, side)
            session.commit()
        self._apply(side, revision, remove=record_id)
        self._notify("deleted", side, record_id)

    def bulk_create(self, side: Side, items: Sequence[DemandCreate | AchievementCreate], *,
                    progress: bool = False, batch_size: int = 256) -> list[int]:
        """Create many records (seeds, evaluation corpora) in batches, then index once."""
        table = TABLES[side]
        ids: list[int] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc=f"encode {side.value}s", unit="rec")
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            vecs = self._encode_passages([(d.title, d.description) for d in chunk])
            with Session(self.engine, expire_on_commit=False) as session:
                records = [table.model_validate(d.model_dump(mode="json")) for d in chunk]
                session.add_all(records)
                session.flush()
                for r, v in zip(records, vecs, strict=True):
                    self._add_embeddings(session, side, r, v)
                self._bump(session, side)
                session.commit()
                ids.extend(r.id for r in records)
            if bar:
                bar.update(len(chunk))
        if bar:
            bar.close()
        with self._lock:
            self._states.pop(side, None)
        self.state(side)
        return ids

    # --- reads -----------------------------------------------------------------------

    def get(self, side: Side, record_id: int, viewer: Viewer | None = None):
        """A record by id; NotFound for records the viewer may not see."""
        with Session(self.engine, expire_on_commit=False) as session:
            record = session.get(TABLES[side], record_id)
        if record is None or (side is Side.demand and viewer is not None
                              and not viewer.can_see_demand(record)):
            raise NotFound(f"{side.value} {record_id} not found")
        return record

    def list_records(self, side: Side, *, viewer: Viewer | None = None,
                     filters: Filters | None = None, page: int = 1,
                     per_page: int = 20) -> tuple[list[Any], int]:
        """A page of records, newest first, with the filters and the viewer's visibility.

        Unlike ranking, lists show every status unless ``filters.status`` is set.

        Returns:
            The page's records and the total number of matching records.
        """
        viewer = viewer or Viewer.internal()
        f = filters or Filters()
        table = TABLES[side]
        conds = []
        if f.status and f.status != "any":
            conds.append(table.status == f.status)
        if f.industry_chain:
            conds.append(table.industry_chain == f.industry_chain)
        if f.region:
            conds.append(table.region == f.region)
        if f.organisation_id:
            conds.append(table.organisation_id == f.organisation_id)
        if f.min_trl:
            conds.append((table.required_trl if side is Side.demand else table.trl) >= f.min_trl)
        if side is Side.demand and not viewer.is_broker:
            if viewer.organisation_id is None:
                conds.append(table.confidential == False)  # noqa: E712 - SQL expression
            else:
                conds.append((table.confidential == False)  # noqa: E712
                             | (table.organisation_id == viewer.organisation_id))
        page, per_page = max(1, int(page)), max(1, min(int(per_page), 100))
        query = select(table).where(*conds).order_by(table.id.desc())
        with Session(self.engine, expire_on_commit=False) as session:
            if not f.cooperation_mode:
                total = session.exec(select(func.count()).select_from(table).where(*conds)).one()
                rows = session.exec(query.offset((page - 1) * per_page).limit(per_page)).all()
                return list(rows), total
            # JSON list column: filtered here, the same way on every database
            key = "cooperation_modes" if side is Side.demand else "transfer_modes"
            rows = [r for r in session.exec(query).all()
                    if f.cooperation_mode in (getattr(r, key) or [])]
        return rows[(page - 1) * per_page : page * per_page], len(rows)

    def count(self, side: Side) -> int:
        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(TABLES[side])).one()

    def _allowed(self, st: SideState, filters: Filters, viewer: Viewer) -> set[int] | None:
        status = filters.status or ACTIVE_STATUS[st.side]
        checks = []
        if status != "any":
            checks.append(lambda m: m.status == status)
        if filters.industry_chain:
            checks.append(lambda m: m.industry_chain == filters.industry_chain)
        if filters.region:
            checks.append(lambda m: m.region == filters.region)
        if filters.min_trl:
            checks.append(lambda m: m.trl >= filters.min_trl)
        if filters.cooperation_mode:
            checks.append(lambda m: filters.cooperation_mode in m.modes)
        if filters.organisation_id:
            checks.append(lambda m: m.organisation_id == filters.organisation_id)
        if st.side is Side.demand and not viewer.is_broker:
            checks.append(lambda m: not m.confidential or m.organisation_id == viewer.organisation_id)
        if not checks:
            return None
        allowed = {rid for rid, m in st.meta.items() if all(c(m) for c in checks)}
        if len(allowed) == len(st.meta):
            return None
        return allowed

    def rank(self, *, title: str, body: str, target: Side, k: int = 10,
             profile: ranking.Profile | None = None,
             filters: Filters | None = None, viewer: Viewer | None = None,
             explain: bool = True, prompt: str = "query") -> list[MatchResult]:
        """Rank records of ``target`` for a query text (and its structured profile).

        Args:
            title, body: the query's text (a record's title and description, or free text).
            target: the side to rank.
            k: how many results at most.
            profile: the query record's structured fields (compatibility checks).
            filters: restrictions on the ranked records.
            viewer: who asks (confidential demands); None means the system.
            explain: build the explanation of each result.
            prompt: the encoder prompt for the query text ("query" or "passage").
        """
        k = max(1, min(int(k), 200))
        viewer = viewer or Viewer.internal()
        st = self.state(target)
        allowed = self._allowed(st, filters or Filters(), viewer)
        if allowed is not None and not allowed:
            return []
        n = max(CANDIDATES, k)
        s = self.settings
        qtokens = tokenize(title) * 2 + tokenize(body)
        qvecs = self.query_vectors(title, body, prompt) if s.use_dense else None
        scored = st.keywords.score_all(qtokens) if s.use_keyword else None
        if s.use_dense and not s.passages:  # ablation: only each text's first passage
            qvecs = qvecs[:1]
        cosines = (self._dense_candidates(st, qvecs, n, allowed, not s.passages)
                   if s.use_dense else {})
        kw = st.keywords.search(qtokens, n, allowed, scored=scored) if s.use_keyword else {}
        if s.use_dense and s.use_keyword:
            # Every candidate gets both exact scores, whichever retriever found it.
            cosines.update(st.vectors.scores_for(qvecs, [r for r in kw if r not in cosines],
                                                 not s.passages))
            for r in cosines:
                if r not in kw:
                    kw[r] = st.keywords.score_of(scored, r)
        qlang = record_lang(title, body)
        dense_z = st.standardise(_unit(qvecs.mean(axis=0)), cosines, qlang) if cosines else {}
        cross = {r for r in set(cosines) | set(kw) if r in st.meta and st.meta[r].lang != qlang}
        self_score = self._self_score(st, qtokens)
        fusion = s.fusion if (s.use_dense and s.use_keyword) else "absolute"
        weight = s.dense_weight if (s.use_dense and s.use_keyword) else (1.0 if s.use_dense else 0.0)
        fused = ranking.fuse(dense_z, kw, cosines=cosines, cross_lingual=cross, method=fusion,
                             dense_weight=weight, keyword_self_score=self_score)
        targets = self._fetch(target, [x.record_id for x in fused])
        for x in fused:
            checks = []
            if s.compatibility and profile is not None and x.record_id in targets:
                other = _profile(targets[x.record_id])
                if target is Side.achievement:
                    checks = ranking.compatibility(profile, other)
                else:
                    checks = ranking.compatibility(other, profile)
            ranking.apply_compatibility(x, checks)
        fused = [x for x in fused if x.record_id in targets]
        fused.sort(key=lambda x: (-x.score, x.record_id))
        results = []
        for x in fused[:k]:
            strength = self.strength(x, self_score)
            result = MatchResult(targets[x.record_id], x.score, strength, strength >= s.threshold,
                                 {**x.breakdown(), "strength": round(strength, 4)})
            if explain:
                result.explanation = self.explain(title, body, targets[x.record_id], st, x)
            results.append(result)
        return results

    @staticmethod
    def _dense_candidates(st: SideState, qvecs: np.ndarray, n: int, allowed: set[int] | None,
                          first_only: bool = False) -> dict[int, float]:
        """Top ``n`` by cosine overall, and top ``n`` within every other language."""
        best = st.vectors.search(qvecs, n, allowed, first_only)
        groups = st.languages()
        if len(groups) > 1:
            for members in sorted(groups.values(), key=len)[:-1]:
                scope = members if allowed is None else members & allowed
                if scope:
                    best.update(st.vectors.search(qvecs, n, scope, first_only))
        return best

    def strength(self, x: ranking.Scored, self_score: float) -> float:
        """How strong a match is on an absolute 0..1 scale (the "good match" threshold)."""
        ds = ranking.dense_strength(x.dense_z) if x.dense_z is not None else 0.0
        if x.cross_lingual:
            return ranking.cross_lingual_relevance(ds)
        ks = ranking.keyword_strength(x.keyword or 0.0, self_score)
        w = self.settings.dense_weight
        return w * ds + (1 - w) * ks

    @staticmethod
    def _self_score(st: SideState, qtokens: list[str]) -> float:
        """The BM25 a document made of the query's own tokens would get (upper anchor)."""
        if not qtokens:
            return 0.0
        counts: dict[str, int] = {}
        for t in qtokens:
            counts[t] = counts.get(t, 0) + 1
        k1 = st.keywords.k1
        return sum(st.keywords.idf(t, unseen=True) * (c * (k1 + 1)) / (c + k1)
                   for t, c in counts.items())

    def _fetch(self, side: Side, ids: Iterable[int]) -> dict[int, Any]:
        ids = list(ids)
        if not ids:
            return {}
        table = TABLES[side]
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(select(table).where(table.id.in_(ids))).all()
        return {r.id: r for r in rows}

    def match_record(self, record: Demand | Achievement, *, k: int = 10,
                     filters: Filters | None = None, viewer: Viewer | None = None,
                     explain: bool = True) -> list[MatchResult]:
        """Rank the other side for a record (stored or not: evaluation uses unsaved ones)."""
        side = Side.demand if isinstance(record, Demand) else Side.achievement
        return self.rank(title=record.title, body=record.description, target=side.other, k=k,
                         profile=_profile(record), filters=filters,
                         viewer=viewer, explain=explain, prompt=self.settings.record_prompt)

    def match_demand(self, demand_id: int, k: int = 10, *, filters: Filters | None = None,
                     viewer: Viewer | None = None, explain: bool = True) -> list[MatchResult]:
        """Best achievements for a demand."""
        demand = self.get(Side.demand, demand_id, viewer)
        return self.match_record(demand, k=k, filters=filters, viewer=viewer, explain=explain)

    def match_achievement(self, achievement_id: int, k: int = 10, *,
                          filters: Filters | None = None, viewer: Viewer | None = None,
                          explain: bool = True) -> list[MatchResult]:
        """Best demands for an achievement (confidential ones only for those who may see them)."""
        achievement = self.get(Side.achievement, achievement_id, viewer)
        return self.match_record(achievement, k=k, filters=filters, viewer=viewer, explain=explain)

    def search(self, text: str, side: Side, k: int = 10, *, filters: Filters | None = None,
               viewer: Viewer | None = None, explain: bool = False) -> list[MatchResult]:
        """Free-text search of one side."""
        text = (text or "").strip()
        if not text:
            raise ValidationFailed({"q": "请输入检索内容 / enter something to search for"})
        return self.rank(title="", body=text, target=side, k=k, filters=filters,
                         viewer=viewer, explain=explain)

    # --- explanations ------------------------------------------------------------------

    def explain(self, title: str, body: str, record, st: SideState, x: ranking.Scored) -> dict[str, Any]:
        """Shared key terms, the best-matching sentence pair, and the checks."""
        q_tokens = set(tokenize(f"{title} {body}"))
        r_tokens = set(tokenize(f"{record.title} {record.description}"))
        shared = sorted(
            (t for t in q_tokens & r_tokens if not t.replace(".", "").isdigit() and len(t) > 1),
            key=lambda t: (-st.keywords.idf(t), t),
        )
        shared = [t for t in shared if not any(t != o and t in o for o in shared)][:10]
        pair = self._best_pair(f"{title}。{body}" if title else body,
                               f"{record.title}。{record.description}", st)
        return {
            "shared_terms": shared,
            "best_pair": pair,
            "checks": [c.as_dict() for c in x.checks],
            "passed": [c.name for c in x.checks if c.passed],
            "failed": [c.name for c in x.checks if c.passed is False],
        }

    def _best_pair(self, left: str, right: str, st: SideState) -> dict[str, Any] | None:
        ls, rs = sentences(left)[:40], sentences(right)[:40]
        if not ls or not rs:
            return None
        lt = [set(tokenize(s)) for s in ls]
        rt = [set(tokenize(s)) for s in rs]
        best, best_score = None, 0.0
        if is_chinese(left) != is_chinese(right):
            lt = []  # other languages: shared words are incidental (model numbers, units)
        for i, a in enumerate(lt):
            for j, b in enumerate(rt):
                score = sum(st.keywords.idf(t) for t in a & b)
                if score > best_score:
                    best, best_score = (i, j), score
        if best is not None:
            return {"query": ls[best[0]], "record": rs[best[1]], "method": "keywords",
                    "score": round(best_score, 3)}
        # No shared words (often another language): compare the sentences' meanings.
        lv = self.encoder.encode(ls[:12], "query")
        rv = self.encoder.encode(rs[:12], "passage")
        sims = lv @ rv.T
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        return {"query": ls[i], "record": rs[j], "method": "semantic",
                "score": round(float(sims[i, j]), 4)}


def _column_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_column_value(v) for v in value]
    return value


def validation_errors(exc) -> dict[str, str]:
    """Pydantic errors as ``{field: message}`` (first message per field)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "_"
        out.setdefault(loc, err.get("msg", "invalid"))
    return out
