"""Evaluation on BEIR-format data through the portal's own matching pipeline.

Corpus records become achievements of a throwaway workspace (its own SQLite
database and index folder), queries are matched as demands (title + text) by
:meth:`MatcherService.rank`, exactly as the portal ranks a stored demand.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from matcher.db import init_db, make_engine, sqlite_url
from matcher.models import (
    AchievementCreate,
    AchievementKind,
    AchievementStatus,
    DemandCreate,
    DemandStatus,
    IndustryChain,
    Maturity,
    Organisation,
    OrgKind,
    Side,
)
from matcher.service import MatcherService, RankSettings

METRIC_NAMES = ("nDCG@10", "R@10", "R@100", "RR@10")


@dataclass
class Query:
    qid: str
    title: str
    text: str


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if len(parts) >= 3:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def read_queries(path: Path) -> list[Query]:
    return [Query(q["_id"], q.get("title") or "", q.get("text") or "") for q in read_jsonl(path)]


def _corpus_digest(path: Path, model_id: str) -> str:
    h = hashlib.sha256(model_id.encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def workspace(corpus: Path, encoder, keep: Path | None = None, *, progress: bool = True,
              settings: RankSettings | None = None) -> Iterator[tuple[MatcherService, dict[int, str]]]:
    """A service over the corpus, in a temporary folder (or a reusable ``keep`` folder).

    Yields:
        The service and the map from achievement id to corpus id.
    """
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="techmatch-eval-"))
    digest = _corpus_digest(corpus, encoder.model_id)
    stamp = folder / "corpus.sha256"
    try:
        if keep and folder.exists() and not (stamp.exists() and stamp.read_text() == digest):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        engine = make_engine(sqlite_url(folder))
        init_db(engine)
        service = MatcherService(engine, encoder, folder / "index", settings=settings)
        ids_file = folder / "ids.json"
        if ids_file.exists():
            id_map = {int(k): v for k, v in json.loads(ids_file.read_text()).items()}
        else:
            id_map = _load_corpus(service, corpus, progress)
            ids_file.write_text(json.dumps(id_map))
            stamp.write_text(digest)
        yield service, id_map
        engine.dispose()
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _load_corpus(service: MatcherService, corpus: Path, progress: bool) -> dict[int, str]:
    from sqlmodel import Session

    with Session(service.engine) as session:
        org = Organisation(name="评测语料 / evaluation corpus", kind=OrgKind.institute)
        session.add(org)
        session.commit()
        org_id = org.id
    docs = list(read_jsonl(corpus))
    # Corpus records are trusted evaluation data: built without the portal's
    # length limits (some real titles are shorter than a portal form allows).
    items = [
        AchievementCreate.model_construct(
            organisation_id=org_id, title=(d.get("title") or "").strip(),
            description=(d.get("text") or "").strip(), industry_chain=IndustryChain.frontier,
            technical_field="", region="", kind=AchievementKind.technology, patent_number=None,
            ipc_codes=[], trl=1, maturity=Maturity.lab, transfer_modes=[], asking_price_wan=None,
            team="", status=AchievementStatus.available,
        )
        for d in docs
    ]
    ids = service.bulk_create(Side.achievement, items, progress=progress, maintain=False)
    return {rid: d["_id"] for rid, d in zip(ids, docs, strict=True)}


def run_queries(service: MatcherService, id_map: dict[int, str], queries: list[Query], k: int,
                progress: bool = True) -> dict[str, dict[str, float]]:
    """Rank the corpus for every query; returns ``{qid: {docid: score}}``."""
    run: dict[str, dict[str, float]] = {}
    iterator = queries
    if progress:
        from tqdm import tqdm

        iterator = tqdm(queries, desc="match queries", unit="q")
    for q in iterator:
        results = service.rank(title=q.title, body=q.text, target=Side.achievement, k=k,
                               explain=False, prompt=service.settings.record_prompt)
        run[q.qid] = {id_map[r.record.id]: float(len(results) - i)
                      for i, r in enumerate(results)}
    return run


def store_agreement(service: MatcherService, queries: list[Query], k: int = 10,
                    progress: bool = True) -> dict[str, float]:
    """Store the queries as demands, let the stored match graph list them, and compare each
    stored top ``k`` with the live ranker's (on a copy of the workspace: it is left as it was).

    Returns:
        ``demands``: how many were compared; ``same_top``: the share whose stored top k equals
        the live top k, in order; ``same_set``: the share with the same k records.
    """
    folder = Path(tempfile.mkdtemp(prefix="techmatch-storecheck-"))
    source = Path(str(service.engine.url.database)).parent
    try:
        with service.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(source / "techmatch.sqlite3", folder / "techmatch.sqlite3")
        engine = make_engine(sqlite_url(folder))
        copy = MatcherService(engine, service.encoder, None, settings=replace(service.settings))
        from sqlmodel import Session, select

        with Session(engine) as session:
            org = session.exec(select(Organisation.id)).first()
        items = [DemandCreate.model_construct(
            organisation_id=org, title=q.title.strip(), description=q.text.strip(),
            industry_chain=IndustryChain.frontier, technical_field="", region="", budget_wan=None,
            deadline=None, cooperation_modes=[], required_trl=1, status=DemandStatus.open, confidential=False,
            contact_name="", contact_phone="", contact_email="", external_id=None) for q in queries]
        ids = copy.bulk_create(Side.demand, items, progress=progress)
        same_top = same_set = 0
        for rid in ids:
            record = copy.records.get(Side.demand, rid)
            stored = [r.record.id for r in copy.store.read(record, k=k, explain=False) or []]
            live = [r.record.id for r in copy.match_record(record, k=k, explain=False)]
            same_top += stored == live
            same_set += set(stored) == set(live)
        engine.dispose()
        n = max(len(ids), 1)
        return {"demands": len(ids), "same_top": same_top / n, "same_set": same_set / n}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100, MRR@10 (ir-measures / trec_eval), over the
    queries that have at least one relevant document."""
    import ir_measures
    from ir_measures import RR, R, nDCG

    judged = {q: d for q, d in qrels.items() if any(v > 0 for v in d.values())}
    run = {q: run.get(q, {}) for q in judged}
    values = ir_measures.calc_aggregate([nDCG @ 10, R @ 10, R @ 100, RR @ 10], judged, run)
    by_name = {str(m): v for m, v in values.items()}
    return {name: float(by_name[name]) for name in METRIC_NAMES}


def write_trec(run: dict[str, dict[str, float]], out: Path, tag: str = "techmatch") -> None:
    with open(out, "w", encoding="utf-8") as fh:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (docid, score) in enumerate(ranked, 1):
                fh.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")


ABLATIONS: tuple[tuple[str, dict], ...] = (
    ("dense only (first passage)", {"use_keyword": False, "passages": False, "compatibility": False}),
    ("keyword (BM25) only", {"use_dense": False, "passages": False, "compatibility": False}),
    ("fusion: RRF, equal weights", {"fusion": "rrf", "dense_weight": 0.5, "passages": False,
                                    "compatibility": False}),
    ("fusion: chosen (language-standardised, weighted)", {"passages": False, "compatibility": False}),
    ("+ compatibility", {"passages": False, "compatibility": True}),
    ("+ passages (full pipeline)", {"passages": True, "compatibility": True}),
)


def ablation_settings(base: RankSettings) -> list[tuple[str, RankSettings]]:
    return [(name, replace(base, **changes)) for name, changes in ABLATIONS]
