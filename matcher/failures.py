"""The failure-case library (失败案例库) and warnings beside similar new pairings.

Search is over the failed pair's titles, the broker's note and the reason's
labels, tokenised with the same jieba tokenizer as the keyword index (every
query token must occur).  SQL ``LIKE`` was not used: it finds "价格" in
"价格分歧" but not "铜合金 价格" across two fields, misses English case and
word forms, and cannot see the reason's labels (stored as codes).  The library
holds every failed match ever, hundreds to a few thousand rows, so filtering
them in Python per request is cheap.

Similarity for warnings uses the stored first-passage vectors (title and the
start of the description) of the current model: a failed pair (D', A') warns
about the candidate (D, A) when ``cos(D, D') >= SIMILAR`` and
``cos(A, A') >= SIMILAR``.  With e5 vectors unrelated texts of one language
score about 0.80 +- 0.035 (``matcher.sideindex.PRIOR_MOMENTS``), so 0.90 is about
three standard deviations above chance: the same topic, not merely the same
language.  The pair itself (cosine 1) always warns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlmodel import Session, select

from matcher.models import Achievement, Demand, Embedding, FailureReason, Match, MatchState, Side
from matcher.text import tokenize
from matcher.visibility import Viewer
from matcher.workflow import Parties, can_see

SIMILAR = 0.90


@dataclass
class Failure:
    match: Match
    demand: Demand | None
    achievement: Achievement | None
    hits: int = 0


def _failed(session: Session) -> list[Match]:
    return list(session.exec(select(Match).where(Match.state == MatchState.failed.value)
                             .order_by(Match.last_activity_at.desc(), Match.id.desc())).all())


def search_failures(engine, viewer: Viewer, q: str = "", *, reason: str | None = None,
                    limit: int = 50) -> list[Failure]:
    """Failed matches the viewer may see whose text contains every token of ``q`` (all if empty).

    Ordered by how often the query's tokens occur, then most recent first.
    """
    terms = set(tokenize(q or ""))
    out: list[Failure] = []
    with Session(engine, expire_on_commit=False) as session:
        for m in _failed(session):
            if reason and m.failure_reason != reason:
                continue
            d, a = session.get(Demand, m.demand_id), session.get(Achievement, m.achievement_id)
            if not can_see(viewer, Parties(d, a)):
                continue
            hits = 0
            if terms:
                label = FailureReason(m.failure_reason) if m.failure_reason else None
                text = " ".join(filter(None, [
                    d.title if d else "", a.title if a else "", m.failure_note, m.note,
                    m.failure_reason or "", label.zh if label else "", label.en if label else ""]))
                tokens = tokenize(text)
                if not terms <= set(tokens):
                    continue
                hits = sum(1 for t in tokens if t in terms)
            out.append(Failure(m, d, a, hits))
    out.sort(key=lambda f: -f.hits)  # stable: most recent first among equals
    return out[:limit]


def warning_messages(reason: FailureReason) -> dict[str, str]:
    """The bilingual warning for a failure reason."""
    if reason is FailureReason.other:
        return {"message_zh": "类似的对接曾因其他原因失败",
                "message_en": "a similar pairing failed for other reasons"}
    en = reason.en if reason.en[:2].isupper() else reason.en.lower()
    return {"message_zh": f"类似的对接曾因{reason.zh}失败", "message_en": f"a similar pairing failed on {en}"}


def _first_vectors(session: Session, side: Side, ids: set[int], model_id: str) -> dict[int, np.ndarray]:
    if not ids:
        return {}
    rows = session.exec(select(Embedding.record_id, Embedding.vector).where(
        Embedding.side == side.value, Embedding.chunk == 0, Embedding.model_id == model_id,
        Embedding.record_id.in_(ids))).all()
    return {rid: np.frombuffer(v, dtype=np.float32) for rid, v in rows}


def warnings_for(engine, model_id: str, pairs: list[tuple[int, int]], viewer: Viewer,
                 *, threshold: float = SIMILAR) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Warnings for candidate (demand id, achievement id) pairs from similar failed pairs.

    Args:
        engine: the database.
        model_id: the encoder whose stored vectors are compared.
        pairs: the candidate pairs.
        viewer: who asks; ``match_id`` is given only for failed matches they may see.
        threshold: the cosine both records must reach against the failed pair's.

    Returns:
        Per pair, one warning per similar failed match (most similar first):
        ``{"reason", "message_zh", "message_en", "match_id", "similarity"}``.
    """
    out: dict[tuple[int, int], list[dict[str, Any]]] = {p: [] for p in pairs}
    if not pairs:
        return out
    with Session(engine) as session:
        failed = _failed(session)
        if not failed:
            return out
        dvec = _first_vectors(session, Side.demand, {d for d, _ in pairs} | {m.demand_id for m in failed},
                              model_id)
        avec = _first_vectors(session, Side.achievement,
                              {a for _, a in pairs} | {m.achievement_id for m in failed}, model_id)
        visible = {m.id: can_see(viewer, Parties(session.get(Demand, m.demand_id),
                                                 session.get(Achievement, m.achievement_id)))
                   for m in failed}
    for d, a in pairs:
        if d not in dvec or a not in avec:
            continue
        found = []
        for m in failed:
            if m.demand_id not in dvec or m.achievement_id not in avec:
                continue
            sd = float(dvec[d] @ dvec[m.demand_id])
            if sd < threshold:
                continue
            sa = float(avec[a] @ avec[m.achievement_id])
            if sa < threshold:
                continue
            found.append((min(sd, sa), m))
        found.sort(key=lambda x: -x[0])
        for sim, m in found:
            reason = FailureReason(m.failure_reason or FailureReason.other.value)
            out[(d, a)].append({
                "reason": reason.value, **warning_messages(reason),
                "match_id": m.id if visible[m.id] else None,
                "similarity": round(sim, 4),
            })
    return out
