"""The stored match graph: each record's best K candidates of the other side, kept current.

Pages and the API read matches from here (one indexed query), never by ranking
the catalogue on request.  Each live record has a list (:class:`~matcher.models.StoredMatch`
rows, tagged by a :class:`~matcher.models.MatchList` row with the model id, the
other side's corpus-statistics snapshot and index revision, and the record's own
text hash).  A list holds every candidate, confidential demands included:
confidentiality is applied when a list is read, per viewer, by the one
visibility rule compiled into the query.

Maintenance, after every write (a job of the outbox, :mod:`matcher.jobs`):

- the written record gets its own list, ranked by the live ranker from its
  *stored* vectors (never re-encoded);
- if it can be matched, it is scored against every record of the other side at
  once (:class:`QueryBank`: all their vectors, token counts and profiles in
  arrays) with exactly the live ranker's pair score, and enters each list whose
  K-th candidate it beats; where it was already listed its row is updated, or,
  if it fell below the K-th, the list is recomputed (its hole refilled);
- if it can no longer be matched (deleted, closed, withdrawn) it leaves every
  list and those lists are recomputed.

Scores are exact because every process scores with the same frozen corpus
statistics (:class:`~matcher.models.CorpusStats`); when a side takes a new
snapshot, the lists ranking that side are recomputed in the background, and a
list computed with an older snapshot stays readable meanwhile.
``techmatch matches verify`` repairs what a crash left behind; ``techmatch
matches rebuild`` recomputes everything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sqlalchemy import and_, delete, exists, func
from sqlmodel import Session, select

from matcher import ranking
from matcher.explain import explain_stored
from matcher.keyword import record_tokens
from matcher.models import IndexChange, IndexRevision, Match, MatchList, Side, StoredMatch
from matcher.records import filter_conditions
from matcher.retrieval import Filters, MatchResult
from matcher.sideindex import MIN_SD, PRIOR_MOMENTS, matchable, record_lang, text_hash
from matcher.sides import SIDES, SideSpec, of, spec
from matcher.visibility import Viewer, visible

log = logging.getLogger(__name__)

K = 50  # candidates a list can always answer for
RESERVE = 10  # kept beyond K, so that a record leaving a list rarely forces its recomputation


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, 1e-12)


@dataclass
class ListTag:
    full: bool
    kth_score: float | None
    kth_id: int | None


class QueryBank:
    """Every live record of one side as a query against the other side, in arrays.

    Kept in step with the side through its index change log (like the side
    indexes), so scoring one new record of the other side against all of these
    costs a few matrix products.
    """

    def __init__(self, store: MatchStore, s: SideSpec):
        self.store = store
        self.spec = s
        self.revision = -1
        self.ids: list[int] = []
        self.row: dict[int, int] = {}
        self.alive: list[bool] = []
        self.vecs: list[np.ndarray] = []  # per row: passage vectors
        self.qbar: list[np.ndarray] = []  # per row: unit mean of its passage vectors
        self.lang: list[str] = []
        self.counts: list[tuple[np.ndarray, np.ndarray]] = []
        self.profiles: list[ranking.Profile] = []
        self._arrays: dict[str, Any] | None = None
        self._moments: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        self._self_scores: tuple[int, np.ndarray] | None = None

    def _put(self, record: Any, vecs: np.ndarray) -> None:
        old = self.row.get(record.id)
        if old is not None:
            self.alive[old] = False
        self.row[record.id] = len(self.ids)
        self.ids.append(record.id)
        self.alive.append(True)
        self.vecs.append(np.asarray(vecs, dtype=np.float32))
        self.qbar.append(_unit_rows(vecs.mean(axis=0, keepdims=True))[0])
        self.lang.append(record_lang(record.title, record.description))
        self.counts.append(self.store.vocab.counts(record_tokens(record.title, record.description)))
        self.profiles.append(self.spec.profile(record))
        self._arrays = None
        self._moments.clear()
        self._self_scores = None

    def _drop(self, record_id: int) -> None:
        row = self.row.pop(record_id, None)
        if row is not None:
            self.alive[row] = False
            self._arrays = None

    def _load_records(self, records: Sequence[Any]) -> None:
        vectors = self.store.indexes[self.spec.side].vectors_of_many([r.id for r in records])
        for r in records:
            if r.deleted_at is None and r.id in vectors:
                self._put(r, vectors[r.id])
            else:
                self._drop(r.id)

    def sync(self) -> None:
        """Follow the side's writes since the bank was built (or build it)."""
        table = self.spec.table
        with Session(self.store.engine, expire_on_commit=False) as session:
            row = session.get(IndexRevision, self.spec.name)
            rev = row.revision if row else 0
            if rev == self.revision:
                return
            changed: list[int] | None = None
            if self.revision >= 0:
                changes = session.exec(select(IndexChange.revision, IndexChange.record_id).where(
                    IndexChange.side == self.spec.name, IndexChange.revision > self.revision,
                    IndexChange.revision <= rev)).all()
                if {r for r, _ in changes} == set(range(self.revision + 1, rev + 1)):
                    changed = list(dict.fromkeys(rid for _, rid in changes))
            if changed is None:  # first use, or a gap in the log: load everything
                self.__init__(self.store, self.spec)  # type: ignore[misc]
                records = list(session.exec(select(table).where(table.deleted_at == None)).all())  # noqa: E711
            else:
                records = list(session.exec(select(table).where(table.id.in_(changed))).all()) if changed else []
                for gone in set(changed) - {r.id for r in records}:
                    self._drop(gone)
        self._load_records(records)
        self.revision = rev

    def arrays(self) -> dict[str, Any]:
        """The rows as matrices (built once per change)."""
        if self._arrays is None:
            rows = [i for i, a in enumerate(self.alive) if a]
            dim = self.store.encoder.dim
            vecs = [self.vecs[i] for i in rows]
            owner = np.repeat(np.arange(len(rows)), [len(v) for v in vecs]) if rows else np.zeros(0, int)
            n_vocab = len(self.store.vocab)
            data, indices, indptr = [], [], [0]
            for i in rows:
                tids, tfs = self.counts[i]
                data.append(tfs)
                indices.append(tids)
                indptr.append(indptr[-1] + len(tids))
            counts = sparse.csr_matrix(
                (np.concatenate(data) if data else np.zeros(0, np.float32),
                 np.concatenate(indices) if indices else np.zeros(0, np.int64), np.array(indptr)),
                shape=(len(rows), n_vocab), dtype=np.float32)
            self._arrays = {
                "rows": rows,
                "ids": np.array([self.ids[i] for i in rows], dtype=np.int64),
                "vecs": np.vstack(vecs) if vecs else np.zeros((0, dim), np.float32),
                "first": np.array([len(v) for v in vecs]).cumsum() - np.array([len(v) for v in vecs])
                if vecs else np.zeros(0, int),
                "owner": owner,
                "qbar": np.vstack([self.qbar[i] for i in rows]) if rows else np.zeros((0, dim)),
                "lang": np.array([self.lang[i] for i in rows]),
                "counts": counts,
                "n_vocab": n_vocab,
            }
            self._moments.clear()
            self._self_scores = None
        return self._arrays

    def moments(self, target_lang: str, snapshot) -> tuple[np.ndarray, np.ndarray]:
        """Each query's mean and spread of cosines over the other side's vectors in ``target_lang``."""
        key = (snapshot.version if snapshot else 0, target_lang)
        if key not in self._moments:
            a = self.arrays()
            stats = snapshot.lang_stats if snapshot else {}
            if target_lang in stats:
                mean, cov = stats[target_lang]
                q = a["qbar"]
                mu = q @ mean
                sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", q, cov, q, optimize=True), 0.0))
                sd = np.maximum(sd, MIN_SD)
            else:
                pri = [PRIOR_MOMENTS.get((lang, target_lang), (0.8, 0.02)) for lang in a["lang"].tolist()]
                mu = np.array([p[0] for p in pri])
                sd = np.array([p[1] for p in pri])
            self._moments[key] = (mu, sd)
        return self._moments[key]

    def self_scores(self, keywords) -> np.ndarray:
        """Each query's BM25 self-score anchor against the other side's statistics."""
        version = id(keywords.stats)
        if self._self_scores is None or self._self_scores[0] != version:
            a = self.arrays()
            k1 = keywords.k1
            idf = keywords._idf_array()
            out = np.zeros(len(a["rows"]))
            for j, i in enumerate(a["rows"]):
                tids, tfs = self.counts[i]
                if tids.size:
                    out[j] = float(np.sum(idf[tids] * (tfs * (k1 + 1)) / (tfs + k1)))
            self._self_scores = (version, out)
        return self._self_scores[1]


class MatchStore:
    """Reads and maintains the stored match lists of both sides.

    Args:
        service: the :class:`matcher.service.MatcherService` it serves.
        k: candidates kept per record.
    """

    def __init__(self, service, k: int = K, reserve: int = RESERVE):
        self.service = service
        self.engine = service.engine
        self.indexes = service.indexes
        self.encoder = service.encoder
        self.vocab = service.vocab
        self.k = k
        self.capacity = k + reserve
        self._banks: dict[Side, QueryBank] = {}
        self._lock = threading.RLock()

    @property
    def settings(self):
        return self.service.settings

    def exact(self) -> bool:
        """Can lists be kept by pair scores?  Only with the "absolute" fusion (ranks are not pair scores)."""
        return self.settings.fusion == "absolute"

    # --- computing lists ---------------------------------------------------------------------

    def _tag(self, session: Session, s: SideSpec, record: Any, results: list[MatchResult]) -> None:
        other = self.indexes[s.other.side].state()
        full = len(results) >= self.capacity  # a prefix of a longer ranking (else: every candidate)
        last = results[-1] if results and full else None
        tag = session.get(MatchList, (s.name, record.id)) or MatchList(side=s.name, record_id=record.id,
                                                                     model_id="", stats_version=0,
                                                                     revision=0, text_hash="", full=False)
        tag.model_id = self.encoder.model_id
        tag.stats_version = other.snapshot.version if other.snapshot else 0
        tag.revision = other.revision
        tag.text_hash = text_hash(record.title, record.description)
        tag.full = full
        tag.kth_score = float(last.score) if last else None
        tag.kth_id = int(last.record.id) if last else None
        session.add(tag)

    def compute(self, side: Side | str, records: Iterable[Any]) -> int:
        """Rank the other side for each record (from stored vectors) and store its list."""
        s = spec(side)
        done = 0
        records = list(records)
        vectors = self.indexes[s.side].vectors_of_many([r.id for r in records])
        for record in records:
            if record.deleted_at is not None:
                self.drop_list(s, record.id)
                continue
            results = self.service.rank(
                title=record.title, body=record.description, target=s.other.side, k=self.capacity,
                profile=s.profile(record), explain=False, prompt=self.settings.record_prompt,
                vectors=vectors.get(record.id))
            with Session(self.engine) as session:
                session.exec(delete(StoredMatch).where(StoredMatch.side == s.name,
                                                       StoredMatch.record_id == record.id))
                for r in results:
                    session.add(StoredMatch(side=s.name, record_id=record.id, other_id=r.record.id,
                                            score=float(r.score), strength=float(r.strength), good=bool(r.good),
                                            breakdown=_compact(r.breakdown)))
                self._tag(session, s, record, results)
                session.commit()
            done += 1
        return done

    def drop_list(self, s: SideSpec, record_id: int) -> None:
        with Session(self.engine) as session:
            session.exec(delete(StoredMatch).where(StoredMatch.side == s.name, StoredMatch.record_id == record_id))
            session.exec(delete(MatchList).where(MatchList.side == s.name, MatchList.record_id == record_id))
            session.commit()

    def _bank(self, s: SideSpec) -> QueryBank:
        bank = self._banks.get(s.side)
        if bank is None:
            bank = self._banks[s.side] = QueryBank(self, s)
        bank.sync()
        return bank

    def pair_scores(self, target_spec: SideSpec, target: Any, target_vecs: np.ndarray):
        """The live ranker's score of ``target`` in the list of every record of the other side.

        Returns:
            The bank's arrays, and per bank row: relevance (before compatibility) and
            the parts of the breakdown (cosine, standardised cosine, BM25, cross-lingual).
        """
        s = self.settings
        qside = target_spec.other
        bank = self._bank(qside)
        a = bank.arrays()
        n = len(a["rows"])
        st = self.indexes[target_spec.side].state()
        tlang = record_lang(target.title, target.description)
        cos = np.zeros(n)
        z = np.zeros(n)
        if s.use_dense and n:
            tv = target_vecs if s.passages else target_vecs[:1]
            qv = a["vecs"]
            owner = a["owner"]
            if not s.passages:
                qv, owner = qv[a["first"]], np.arange(n)
            sims = (qv @ tv.T).max(axis=1)
            cos = np.full(n, -np.inf)
            np.maximum.at(cos, owner, sims)
            mu, sd = bank.moments(tlang, st.snapshot)
            if not s.passages:  # the ablation standardises with the first passage alone
                q = _unit_rows(a["vecs"][a["first"]])
                mu, sd = _moments_of(q, tlang, st.snapshot, a["lang"])
            z = (cos - mu) / sd
        bm25 = np.zeros(n)
        anchor = np.zeros(n)
        if s.use_keyword and n:
            tids, weights = st.keywords.weights_of(target.id)
            inside = tids < a["counts"].shape[1]
            w = sparse.csr_matrix((weights[inside], (tids[inside], np.zeros(int(inside.sum()), int))),
                                  shape=(a["counts"].shape[1], 1))
            bm25 = np.asarray((a["counts"] @ w).todense()).ravel()
            anchor = bank.self_scores(st.keywords)
        cross = a["lang"] != tlang
        ds = 1.0 - np.exp(-np.maximum(z, 0.0) / ranking.Z_SCALE) if s.use_dense else np.zeros(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            ks = np.where((anchor > 0) & (bm25 > 0),
                          1.0 - np.exp(-ranking.KEYWORD_SCALE * bm25 / np.where(anchor > 0, anchor, 1.0)), 0.0)
        weight = s.dense_weight if (s.use_dense and s.use_keyword) else (1.0 if s.use_dense else 0.0)
        rel = np.where(cross, ranking.CROSS_LINGUAL_DISCOUNT * ds, weight * ds + (1 - weight) * ks)
        # the ranker only scores records it found: a cosine or a keyword score
        present = (bm25 > 0) | (s.use_dense & np.isfinite(cos))
        return bank, a, rel, cos, z, bm25, cross, present

    # --- maintenance -----------------------------------------------------------------------

    def _tags(self, session: Session, s: SideSpec) -> dict[int, ListTag]:
        rows = session.exec(select(MatchList.record_id, MatchList.full, MatchList.kth_score, MatchList.kth_id)
                            .where(MatchList.side == s.name)).all()
        return {rid: ListTag(full, kth, kid) for rid, full, kth, kid in rows}

    def enter(self, target_spec: SideSpec, target: Any, target_vecs: np.ndarray) -> dict[str, int]:
        """Put a matchable record into every list of the other side it now belongs to.

        Where it is listed already its row is updated; a list where it fell below the
        K-th candidate is recomputed (the hole refilled from the whole side).
        """
        qs = target_spec.other
        bank, a, rel, cos, z, bm25, cross, present = self.pair_scores(target_spec, target, target_vecs)
        ids = a["ids"]
        s = self.settings
        bound = rel * (1 + ranking.COMPAT_WEIGHT)
        entered = updated = refilled = 0
        recompute: list[int] = []
        with Session(self.engine, expire_on_commit=False) as session:
            tags = self._tags(session, qs)
            listed = dict(session.exec(select(StoredMatch.record_id, StoredMatch.id).where(
                StoredMatch.side == qs.name, StoredMatch.other_id == target.id)).all())
            target_profile = target_spec.profile(target)
            for j in np.flatnonzero(present).tolist():
                qid = int(ids[j])
                tag = tags.get(qid)
                if tag is None:
                    continue  # the record has no list yet: it gets one when first read or rebuilt
                if tag.full and qid not in listed and bound[j] < (tag.kth_score or 0.0):
                    continue  # cannot reach the K-th candidate whatever its compatibility
                x = ranking.Scored(target.id, float(cos[j]) if np.isfinite(cos[j]) else None,
                                   float(bm25[j]), None, None, float(z[j]) if s.use_dense else None,
                                   bool(cross[j]))
                x.relevance = float(rel[j])
                checks = []
                if s.compatibility:
                    qprof = bank.profiles[a["rows"][j]]
                    checks = (ranking.compatibility(qprof, target_profile) if qs.side is Side.demand
                              else ranking.compatibility(target_profile, qprof))
                ranking.apply_compatibility(x, checks)
                beats = (not tag.full) or (x.score, -target.id) > (tag.kth_score, -(tag.kth_id or 0))
                if qid in listed:
                    if beats or tag.kth_id == target.id:
                        self._update_row(session, listed[qid], x)
                        updated += 1
                    elif self._remove_row(session, qs, qid, listed[qid]):
                        recompute.append(qid)
                elif beats:
                    self._insert(session, qs, qid, x)
                    entered += 1
            for qid in set(listed) - {int(ids[j]) for j in np.flatnonzero(present).tolist()}:
                if self._remove_row(session, qs, qid, listed[qid]):  # no longer even a candidate
                    recompute.append(qid)
            session.commit()
        if recompute:
            refilled = self.compute(qs.side, self.service.records.fetch(qs, recompute).values())
        return {"entered": entered, "updated": updated, "refilled": refilled}

    def _row_values(self, x: ranking.Scored) -> dict[str, Any]:
        anchor_strength = x.relevance  # the "absolute" fusion: relevance is the strength
        return {"score": float(x.score), "strength": float(anchor_strength),
                "good": bool(anchor_strength >= self.settings.threshold),
                "breakdown": _compact({**x.breakdown(), "strength": round(anchor_strength, 4)})}

    def _update_row(self, session: Session, row_id: int, x: ranking.Scored) -> None:
        row = session.get(StoredMatch, row_id)
        for key, value in self._row_values(x).items():
            setattr(row, key, value)
        session.add(row)
        session.flush()
        self._retag(session, row.side, row.record_id)

    def _remove_row(self, session: Session, qs: SideSpec, qid: int, row_id: int) -> bool:
        """Take a candidate out of a list; True if the list must be recomputed (it answers
        for fewer than K candidates and more exist beyond it)."""
        session.exec(delete(StoredMatch).where(StoredMatch.id == row_id))
        session.flush()
        return self._retag(session, qs.name, qid)

    def _insert(self, session: Session, qs: SideSpec, qid: int, x: ranking.Scored) -> None:
        session.add(StoredMatch(side=qs.name, record_id=qid, other_id=x.record_id, **self._row_values(x)))
        session.flush()
        rows = session.exec(select(StoredMatch.id).where(StoredMatch.side == qs.name, StoredMatch.record_id == qid)
                            .order_by(StoredMatch.score.desc(), StoredMatch.other_id).offset(self.capacity)).all()
        if rows:
            session.exec(delete(StoredMatch).where(StoredMatch.id.in_(rows)))
        self._retag(session, qs.name, qid, trimmed=bool(rows))

    def _retag(self, session: Session, side: str, qid: int, *, trimmed: bool = False) -> bool:
        """Update a list's tag after a change of its rows; True if it must be recomputed.

        A list's rows are always the best N candidates (a prefix of the ranking) or
        all of them; its lowest row is what a newcomer must beat.
        """
        tag = session.get(MatchList, (side, qid))
        if tag is None:
            return False
        tag.full = tag.full or trimmed
        count = session.exec(select(func.count()).select_from(StoredMatch).where(
            StoredMatch.side == side, StoredMatch.record_id == qid)).one()
        last = session.exec(select(StoredMatch.score, StoredMatch.other_id).where(
            StoredMatch.side == side, StoredMatch.record_id == qid)
            .order_by(StoredMatch.score, StoredMatch.other_id.desc()).limit(1)).first()
        tag.kth_score, tag.kth_id = (float(last[0]), int(last[1])) if last else (None, None)
        session.add(tag)
        return bool(tag.full and count < self.k)

    def leave(self, target_spec: SideSpec, target_id: int) -> int:
        """Take a record out of every list of the other side; a list left answering for
        fewer than K candidates (with more beyond) is recomputed."""
        qs = target_spec.other
        recompute = []
        with Session(self.engine) as session:
            listed = session.exec(select(StoredMatch.record_id, StoredMatch.id).where(
                StoredMatch.side == qs.name, StoredMatch.other_id == target_id)).all()
            for qid, row_id in listed:
                if self._remove_row(session, qs, qid, row_id):
                    recompute.append(qid)
            session.commit()
        if not recompute:
            return 0
        return self.compute(qs.side, self.service.records.fetch(qs, recompute).values())

    def refresh(self, side: Side | str, record_id: int) -> dict[str, int]:
        """Bring the store up to date with one written record (the job after every write)."""
        s = spec(side)
        with self._lock:
            record = self.service.records.fetch(s, [record_id]).get(record_id)
            if record is None or record.deleted_at is not None:
                self.drop_list(s, record_id)
                return {"left": self.leave(s, record_id)}
            self.compute(s.side, [record])
            if not self.exact():
                return {}
            if matchable(s, record):
                vecs = self.indexes[s.side].vectors_of(record.id)
                if vecs is None:
                    return {}
                return self.enter(s, record, vecs)
            return {"left": self.leave(s, record_id)}

    def rebuild(self, side: Side | str | None = None, *, progress: bool = False) -> dict[str, int]:
        """Recompute every list (of one side, or both)."""
        out = {}
        for s in ([spec(side)] if side else list(SIDES.values())):
            with Session(self.engine, expire_on_commit=False) as session:
                ids = list(session.exec(select(s.table.id).where(s.table.deleted_at == None)  # noqa: E711
                                        .order_by(s.table.id)).all())
                session.exec(delete(StoredMatch).where(StoredMatch.side == s.name,
                                                       StoredMatch.record_id.not_in(ids)))
                session.exec(delete(MatchList).where(MatchList.side == s.name, MatchList.record_id.not_in(ids)))
                session.commit()
            out[s.name] = self._compute_ids(s, ids, progress=progress, desc=f"match lists: {s.name}s")
        return out

    def _compute_ids(self, s: SideSpec, ids: list[int], *, progress: bool = False, desc: str = "") -> int:
        bar = None
        if progress and ids:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), desc=desc, unit="list")
        done = 0
        for start in range(0, len(ids), 200):
            batch = ids[start:start + 200]
            done += self.compute(s.side, self.service.records.fetch(s, batch).values())
            if bar:
                bar.update(len(batch))
        if bar:
            bar.close()
        return done

    def follow_snapshots(self) -> int:
        """Recompute the lists scored with an older snapshot of the other side's statistics."""
        done = 0
        for s in SIDES.values():
            other = self.indexes[s.other.side].state()
            version = other.snapshot.version if other.snapshot else 0
            with Session(self.engine) as session:
                ids = list(session.exec(select(MatchList.record_id).where(
                    MatchList.side == s.name, MatchList.stats_version != version)).all())
            if ids:
                done += self._compute_ids(s, ids)
        return done

    def stale(self, side: Side | str) -> list[int]:
        """Live records whose list is missing or was computed for another text, model or snapshot."""
        s = spec(side)
        other = self.indexes[s.other.side].state()
        version = other.snapshot.version if other.snapshot else 0
        with Session(self.engine) as session:
            rows = session.exec(select(s.table.id, s.table.title, s.table.description, MatchList.model_id,
                                       MatchList.stats_version, MatchList.text_hash)
                                .join(MatchList, and_(MatchList.side == s.name, MatchList.record_id == s.table.id),
                                      isouter=True)
                                .where(s.table.deleted_at == None)).all()  # noqa: E711
        return [rid for rid, title, body, model_id, stats_version, th in rows
                if model_id != self.encoder.model_id or stats_version != version
                or th != text_hash(title, body)]

    def verify(self, *, progress: bool = False) -> dict[str, dict[str, int]]:
        """Recompute every list that is missing or stale (what a crash or a new snapshot left)."""
        report = {}
        for s in SIDES.values():
            ids = self.stale(s.side)
            with Session(self.engine) as session:
                orphans = session.exec(select(func.count()).select_from(MatchList).where(
                    MatchList.side == s.name, ~exists().where(
                        s.table.id == MatchList.record_id, s.table.deleted_at == None))).one()  # noqa: E711
                session.exec(delete(StoredMatch).where(StoredMatch.side == s.name, StoredMatch.record_id.in_(
                    select(MatchList.record_id).where(MatchList.side == s.name, ~exists().where(
                        s.table.id == MatchList.record_id, s.table.deleted_at == None)))))  # noqa: E711
                session.exec(delete(MatchList).where(MatchList.side == s.name, ~exists().where(
                    s.table.id == MatchList.record_id, s.table.deleted_at == None)))  # noqa: E711
                session.commit()
            report[s.name] = {"stale": len(ids), "removed": int(orphans),
                              "recomputed": self._compute_ids(s, ids, progress=progress,
                                                              desc=f"match lists: {s.name}s")}
        return report

    # --- reading ------------------------------------------------------------------------------

    def tag_of(self, s: SideSpec, record_id: int) -> MatchList | None:
        with Session(self.engine) as session:
            return session.get(MatchList, (s.name, record_id))

    def current(self, record: Any) -> bool:
        """Does the record have a list computed for its present text and model?"""
        tag = self.tag_of(of(record), record.id)
        return bool(tag and tag.model_id == self.encoder.model_id
                    and tag.text_hash == text_hash(record.title, record.description))

    def read(self, record: Any, *, k: int = 10, viewer: Viewer | None = None, filters: Filters | None = None,
             explain: bool = True) -> list[MatchResult] | None:
        """The record's best matches as this viewer may see them, from its stored list.

        One query: the list's rows joined with the other side's records, the viewer's
        visibility and the filters compiled into it.  Returns None when the stored
        list cannot answer: it has no list for its present text, or the viewer or
        the filters hide some of a full list (more candidates may lie beyond it);
        the caller then ranks live.
        """
        s = of(record)
        o = s.other
        viewer = viewer or Viewer.internal()
        tag = self.tag_of(s, record.id)
        if (tag is None or tag.model_id != self.encoder.model_id
                or tag.text_hash != text_hash(record.title, record.description)):
            return None
        f = Filters(**{**(filters or Filters()).__dict__, "status": None})
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(StoredMatch, o.table).join(o.table, o.table.id == StoredMatch.other_id)
                .where(StoredMatch.side == s.name, StoredMatch.record_id == record.id,
                       o.table.deleted_at == None, o.table.status == o.active_status,  # noqa: E711
                       visible(viewer, o.table), *filter_conditions(o, f))
                .order_by(StoredMatch.score.desc(), StoredMatch.other_id).limit(k)).all()
            if tag.full and len(rows) < k:
                return None  # hidden, filtered out or removed: more candidates lie beyond the list
        keywords = self.indexes[o.side].state().keywords
        profile = s.profile(record)
        vecs = self.indexes[s.side].vectors_of(record.id) if explain and rows else None
        others = self.indexes[o.side].vectors_of_many([m.other_id for m, _ in rows]) if explain and rows else {}
        out = []
        for m, other in rows:
            checks = []
            if self.settings.compatibility:
                checks = (ranking.compatibility(profile, o.profile(other)) if s.side is Side.demand
                          else ranking.compatibility(o.profile(other), profile))
            breakdown = {**(m.breakdown or {}), "checks": [c.as_dict() for c in checks]}
            result = MatchResult(other, float(m.score), float(m.strength), bool(m.good), breakdown)
            if explain:
                result.explanation = explain_stored(record, other, keywords, checks,
                                                    vecs, others.get(other.id))
            out.append(result)
        return out

    # --- the broker's queue and the statistics ------------------------------------------------------

    def unreviewed(self, *, limit: int = 30, per_demand: int = 5) -> list[tuple[Any, Any, float, float]]:
        """Good stored matches of open demands that nobody has made a match of yet, strongest first
        (at most ``per_demand`` of each demand).  Brokers only: confidential demands included."""
        d, a = SIDES[Side.demand], SIDES[Side.achievement]
        seen = exists().where(Match.demand_id == StoredMatch.record_id, Match.achievement_id == StoredMatch.other_id)
        query = (select(StoredMatch, d.table, a.table)
                 .join(d.table, d.table.id == StoredMatch.record_id)
                 .join(a.table, a.table.id == StoredMatch.other_id)
                 .where(StoredMatch.side == d.name, StoredMatch.good == True,  # noqa: E712
                        d.table.status == d.active_status, d.table.deleted_at == None,  # noqa: E711
                        a.table.status == a.active_status, a.table.deleted_at == None, ~seen)  # noqa: E711
                 .order_by(StoredMatch.strength.desc(), StoredMatch.record_id, StoredMatch.other_id))
        out: list[tuple[Any, Any, float, float]] = []
        per: dict[int, int] = {}
        offset, page = 0, max(limit * 4, 100)
        with Session(self.engine, expire_on_commit=False) as session:
            while len(out) < limit:
                rows = session.exec(query.offset(offset).limit(page)).all()
                for m, dem, ach in rows:
                    if per.get(dem.id, 0) < per_demand:
                        per[dem.id] = per.get(dem.id, 0) + 1
                        out.append((dem, ach, float(m.score), float(m.strength)))
                        if len(out) >= limit:
                            break
                if len(rows) < page:
                    break
                offset += page
        return out

    def supply_gaps(self, viewer: Viewer | None = None) -> dict[str, int]:
        """Open demands (that the viewer may see) without any good stored match, per industry chain."""
        d, a = SIDES[Side.demand], SIDES[Side.achievement]
        viewer = viewer or Viewer.internal()
        good = exists().where(StoredMatch.side == d.name, StoredMatch.record_id == d.table.id,
                              StoredMatch.good == True, a.table.id == StoredMatch.other_id,  # noqa: E712
                              a.table.status == a.active_status, a.table.deleted_at == None)  # noqa: E711
        with Session(self.engine) as session:
            rows = session.exec(select(d.table.industry_chain, func.count()).where(
                d.table.status == d.active_status, d.table.deleted_at == None,  # noqa: E711
                visible(viewer, d.table), ~good).group_by(d.table.industry_chain)).all()
        return {chain: int(n) for chain, n in rows}


def _moments_of(q: np.ndarray, target_lang: str, snapshot, langs: np.ndarray):
    stats = snapshot.lang_stats if snapshot else {}
    if target_lang in stats:
        mean, cov = stats[target_lang]
        mu = q @ mean
        sd = np.maximum(np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", q, cov, q, optimize=True), 0.0)), MIN_SD)
        return mu, sd
    pri = [PRIOR_MOMENTS.get((lang, target_lang), (0.8, 0.02)) for lang in langs.tolist()]
    return np.array([p[0] for p in pri]), np.array([p[1] for p in pri])


def _compact(breakdown: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a breakdown (check texts are rebuilt from the records when shown)."""
    out = {k: v for k, v in breakdown.items() if k != "checks"}
    out["checks"] = [{"name": c["name"], "passed": c["passed"], "value": c["value"]}
                     for c in breakdown.get("checks", [])]
    return out


