"""Retrieval: dense and keyword candidates, fusion, ONE strength formula, compatibility.

A query is a text (free-text search, encoded once with the ``query:`` prompt) or
a record (stored: matched from its stored passage vectors; unsaved, as in
evaluation: encoded with the record prompt).  The pure scoring functions live in
:mod:`matcher.ranking`; this module gathers candidates from a side's indexes
and applies them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matcher import ranking
from matcher.explain import explain
from matcher.sideindex import SideIndex, SideState, record_lang, text_hash
from matcher.sides import SideSpec
from matcher.text import tokenize
from matcher.visibility import Viewer

CANDIDATES = 100  # per retriever, before fusion
MAX_K = 200


@dataclass
class Filters:
    """Filters on the records being listed or ranked; None means no restriction.

    ``status`` applies to lists only: ranking always ranks matchable records
    (open demands, available achievements).
    """

    industry_chain: str | None = None
    region: str | None = None
    min_trl: int | None = None
    cooperation_mode: str | None = None
    status: str | None = None
    organisation_id: int | None = None

    def narrows_ranking(self) -> bool:
        return any(v not in (None, "") for v in (self.industry_chain, self.region, self.min_trl,
                                                  self.cooperation_mode, self.organisation_id))


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


@dataclass
class Query:
    """What is matched from: a text, its structured profile, and (if stored) its vectors."""

    title: str
    body: str
    profile: ranking.Profile | None = None
    vectors: np.ndarray | None = None  # stored passage vectors; None: encode with ``prompt``
    prompt: str = "query"


@dataclass
class MatchResult:
    record: Any
    score: float
    strength: float
    good: bool
    breakdown: dict[str, Any]
    explanation: dict[str, Any] = field(default_factory=dict)


def strength(x: ranking.Scored, self_score: float, dense_weight: float) -> float:
    """How strong a match is on an absolute 0..1 scale (the "good match" threshold).

    The one formula, :func:`matcher.ranking.absolute_strength`; with the default
    "absolute" fusion it is also the pair's relevance.
    """
    return ranking.absolute_strength(x.dense_z, x.keyword, x.cross_lingual, self_score, dense_weight)


def self_score(st: SideState, qtokens: list[str]) -> float:
    """The BM25 a document made of the query's own tokens would get (upper anchor)."""
    if not qtokens:
        return 0.0
    counts: dict[str, int] = {}
    for t in qtokens:
        counts[t] = counts.get(t, 0) + 1
    k1 = st.keywords.k1
    return sum(st.keywords.idf(t, unseen=True) * (c * (k1 + 1)) / (c + k1) for t, c in counts.items())


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class Retriever:
    """Ranks one side's matchable records for a query.

    Args:
        indexes: the side indexes, by side.
        fetch: loads records of a side by id (``fetch(spec, ids) -> {id: record}``).
        settings: ranking settings.
    """

    def __init__(self, indexes: dict, fetch: Callable[[SideSpec, list[int]], dict[int, Any]],
                 settings: RankSettings):
        self.indexes: dict[Any, SideIndex] = indexes
        self.fetch = fetch
        self.settings = settings
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def encoder(self):
        return next(iter(self.indexes.values())).encoder

    def query_vectors(self, title: str, body: str, kind: str = "query") -> np.ndarray:
        """Encode a query text (cached: the same search twice encodes once)."""
        key = kind + text_hash(title, body)
        if key in self._query_cache:
            self._query_cache.move_to_end(key)
            return self._query_cache[key]
        index = next(iter(self.indexes.values()))
        vecs = index.encoder.encode(index.passages(title, body), kind)
        self._query_cache[key] = vecs
        while len(self._query_cache) > 512:
            self._query_cache.popitem(last=False)
        return vecs

    def _allowed(self, st: SideState, filters: Filters, viewer: Viewer) -> set[int] | None:
        """The records a narrowed ranking may return (None: every matchable record)."""
        checks = []
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
        if not checks:
            return None
        return {rid for rid, m in st.meta.items() if all(c(m) for c in checks)}

    @staticmethod
    def _hidden(st: SideState, viewer: Viewer) -> set[int]:
        """Indexed records this viewer may not see (confidential demands of others)."""
        if viewer.is_broker or not st.confidential:
            return set()
        return {rid for rid in st.confidential if st.meta[rid].organisation_id != viewer.organisation_id}

    def rank(self, query: Query, target: SideSpec, *, k: int = 10, filters: Filters | None = None,
             viewer: Viewer | None = None, explain_results: bool = True) -> list[MatchResult]:
        """Rank matchable records of ``target`` for ``query``, best first.

        Args:
            query: the text (and profile, and stored vectors) matched from.
            target: the side ranked.
            k: how many results at most.
            filters: restrictions on the ranked records.
            viewer: who asks (confidential demands); None means the system.
            explain_results: build the explanation of each result.
        """
        k = max(1, min(int(k), MAX_K))
        viewer = viewer or Viewer.internal()
        st = self.indexes[target.side].state()
        allowed = self._allowed(st, filters or Filters(), viewer)
        hidden = self._hidden(st, viewer)
        if allowed is not None:
            allowed -= hidden
            hidden = set()
            if not allowed:
                return []
        n = max(CANDIDATES, k) + len(hidden)
        s = self.settings
        title, body = query.title, query.body
        qtokens = tokenize(title) * 2 + tokenize(body)
        qvecs = None
        if s.use_dense:
            qvecs = query.vectors if query.vectors is not None else self.query_vectors(
                title, body, query.prompt)
            if not s.passages:  # ablation: only each text's first passage
                qvecs = qvecs[:1]
        scored = st.keywords.score_all(qtokens) if s.use_keyword else None
        cosines = self._dense_candidates(st, qvecs, n, allowed, not s.passages) if s.use_dense else {}
        kw = st.keywords.search(qtokens, n, allowed, scored=scored) if s.use_keyword else {}
        for rid in hidden:
            cosines.pop(rid, None)
            kw.pop(rid, None)
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
        anchor = self_score(st, qtokens)
        both = s.use_dense and s.use_keyword
        fusion = s.fusion if both else "absolute"
        weight = s.dense_weight if both else (1.0 if s.use_dense else 0.0)
        fused = ranking.fuse(dense_z, kw, cosines=cosines, cross_lingual=cross, method=fusion,
                             dense_weight=weight, keyword_self_score=anchor)
        # Compatibility moves a score by at most COMPAT_WEIGHT either way: a candidate
        # whose best possible score is below the k-th best worst possible score cannot
        # reach the top k, so its record is neither loaded nor checked.
        fused.sort(key=lambda x: (-x.relevance, x.record_id))
        if len(fused) > k and s.compatibility and query.profile is not None:
            floor = fused[k - 1].relevance * (1 - ranking.COMPAT_WEIGHT)
            fused = [x for x in fused if x.relevance * (1 + ranking.COMPAT_WEIGHT) >= floor]
        targets = self.fetch(target, [x.record_id for x in fused])
        for x in fused:
            checks = []
            if s.compatibility and query.profile is not None and x.record_id in targets:
                other = target.profile(targets[x.record_id])
                if target.side.value == "achievement":
                    checks = ranking.compatibility(query.profile, other)
                else:
                    checks = ranking.compatibility(other, query.profile)
            ranking.apply_compatibility(x, checks)
        fused = [x for x in fused if x.record_id in targets]
        fused.sort(key=lambda x: (-x.score, x.record_id))
        results = []
        for x in fused[:k]:
            st_ = strength(x, anchor, weight)
            result = MatchResult(targets[x.record_id], x.score, st_, st_ >= s.threshold,
                                 {**x.breakdown(), "strength": round(st_, 4)})
            if explain_results:
                result.explanation = explain(title, body, targets[x.record_id], st.keywords, x,
                                             encoder=self.encoder())
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
