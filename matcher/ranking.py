"""Hybrid ranking: dense + keyword candidates, fusion, structured compatibility.

The fused text relevance decides most of a score; compatibility checks
(industry chain, technical field, TRL, cooperation modes, region, budget)
move it by at most ``COMPAT_WEIGHT`` either way, and every factor is kept in
the breakdown so the portal can say why a match was made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from matcher.models import CoopMode
from matcher.text import tokenize

JIANGXI_CITIES = frozenset(
    "南昌市 赣州市 九江市 景德镇市 萍乡市 新余市 鹰潭市 宜春市 上饶市 吉安市 抚州市".split()
)
RRF_K = 60
COMPAT_WEIGHT = 0.15


@dataclass
class Profile:
    """The structured side of a record (or of a free-text query: all empty)."""

    industry_chain: str | None = None
    technical_field: str = ""
    region: str = ""
    trl: int | None = None  # required TRL for a demand, offered TRL for an achievement
    modes: tuple[str, ...] = ()
    money: float | None = None  # budget for a demand, asking price for an achievement


@dataclass
class Check:
    name: str
    passed: bool | None  # None: not enough information
    value: float  # 0..1 (0.5 when unknown)
    weight: float
    detail_zh: str
    detail_en: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": round(self.value, 3),
            "weight": self.weight,
            "detail_zh": self.detail_zh,
            "detail_en": self.detail_en,
        }


@dataclass
class Scored:
    record_id: int
    dense: float | None  # best cosine
    keyword: float | None  # BM25
    dense_rank: int | None
    keyword_rank: int | None
    dense_z: float | None = None  # cosine standardised within the record's language
    cross_lingual: bool = False
    relevance: float = 0.0
    compat: float = 0.5
    score: float = 0.0
    checks: list[Check] = field(default_factory=list)

    def breakdown(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "relevance": round(self.relevance, 4),
            "dense_cosine": None if self.dense is None else round(self.dense, 4),
            "dense_z": None if self.dense_z is None else round(self.dense_z, 3),
            "dense_rank": self.dense_rank,
            "keyword_bm25": None if self.keyword is None else round(self.keyword, 3),
            "keyword_rank": self.keyword_rank,
            "cross_lingual": self.cross_lingual,
            "compatibility": round(self.compat, 4),
            "checks": [c.as_dict() for c in self.checks],
        }


def _minmax(values: dict[int, float]) -> dict[int, float]:
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    if hi - lo < 1e-9:
        return {k: 1.0 for k in values}
    return {k: (v - lo) / (hi - lo) for k, v in values.items()}


Z_SCALE = 2.5  # standard deviations above the language's mean for a strength of 0.63


def dense_strength(z: float) -> float:
    """Standardised cosine onto 0..1: 0 at or below the mean of the record's language,
    rising smoothly (never tying two different scores) towards 1."""
    return 1.0 - math.exp(-max(z, 0.0) / Z_SCALE)


KEYWORD_SCALE = 2.0  # strength 0.63 at half the self-score


def keyword_strength(bm25: float, self_score: float) -> float:
    """BM25 relative to the query's score against a copy of itself, onto 0..1
    (0.63 at half the self-score), smoothly so strong matches keep their order."""
    if self_score <= 0 or bm25 <= 0:
        return 0.0
    return 1.0 - math.exp(-KEYWORD_SCALE * bm25 / self_score)


CROSS_LINGUAL_DISCOUNT = 0.7  # fitted on the demo seeds' intended pairs (README)


def cross_lingual_relevance(ds: float) -> float:
    """A pair in two languages has no keyword evidence: its dense strength stands
    alone, discounted because nothing confirms it."""
    return CROSS_LINGUAL_DISCOUNT * ds


def absolute_strength(dense_z: float | None, keyword: float | None, cross_lingual: bool,
                      self_score: float, dense_weight: float) -> float:
    """The strength of a pair on an absolute 0..1 scale: the one formula behind both the
    "absolute" fusion and the good-match threshold.

    ``dense_weight * dense strength + (1 - dense_weight) * keyword strength``; for a
    pair in two languages the dense strength alone, discounted.
    """
    ds = dense_strength(dense_z) if dense_z is not None else 0.0
    if cross_lingual:
        return cross_lingual_relevance(ds)
    return dense_weight * ds + (1 - dense_weight) * keyword_strength(keyword or 0.0, self_score)


def fuse(
    dense_z: dict[int, float],
    keyword: dict[int, float],
    *,
    cosines: dict[int, float] | None = None,
    cross_lingual: frozenset[int] | set[int] = frozenset(),
    method: str = "absolute",
    dense_weight: float = 0.5,
    keyword_self_score: float = 0.0,
) -> list[Scored]:
    """Fuse dense and keyword evidence into one relevance per candidate record.

    Dense scores come standardised within each language (``dense_z``), since a
    multilingual model scores every same-language pair above most cross-language
    ones.  Methods: ``absolute`` (default: weighted sum of query-independent
    strengths, so one threshold means the same for every query; for a pair in
    two languages shared words are no evidence either way, so the dense strength
    stands alone), ``minmax`` (weighted sum of per-query min-max normalised
    scores), ``rrf`` (weighted reciprocal-rank fusion).
    """
    cosines = cosines or {}
    d_rank = {rid: i + 1 for i, rid in enumerate(sorted(dense_z, key=lambda r: -dense_z[r]))}
    k_rank = {rid: i + 1 for i, rid in enumerate(
        sorted((r for r in keyword if keyword[r] > 0), key=lambda r: -keyword[r]))}
    dn, kn = _minmax(dense_z), _minmax(keyword)
    out = []
    for rid in set(dense_z) | set(keyword):
        s = Scored(rid, cosines.get(rid), keyword.get(rid), d_rank.get(rid), k_rank.get(rid),
                   dense_z.get(rid), rid in cross_lingual)
        if method == "rrf":
            s.relevance = sum(
                w / (RRF_K + r)
                for w, r in ((dense_weight, s.dense_rank), (1 - dense_weight, s.keyword_rank))
                if r is not None
            ) * (RRF_K + 1)
        elif method == "minmax":
            s.relevance = dense_weight * dn.get(rid, 0.0) + (1 - dense_weight) * kn.get(rid, 0.0)
        elif method == "absolute":
            s.relevance = absolute_strength(s.dense_z, s.keyword, s.cross_lingual,
                                            keyword_self_score, dense_weight)
        else:
            raise ValueError(f"unknown fusion method {method!r}")
        out.append(s)
    return out


def _money(v: float | None) -> str:
    return "面议" if v is None else f"{v:g} 万元"


def compatibility(demand: Profile, achievement: Profile) -> list[Check]:
    """The structured checks between a demand and an achievement."""
    checks: list[Check] = []

    def add(name, passed, value, weight, zh, en):
        checks.append(Check(name, passed, value, weight, zh, en))

    if demand.industry_chain and achievement.industry_chain:
        same = demand.industry_chain == achievement.industry_chain
        add("industry_chain", same, 1.0 if same else 0.0, 2.0,
            "产业链一致" if same else "产业链不同",
            "same industry chain" if same else "different industry chains")
    if demand.technical_field and achievement.technical_field:
        a, b = demand.technical_field, achievement.technical_field
        overlap = a == b or bool(set(tokenize(a)) & set(tokenize(b)))
        add("technical_field", overlap, 1.0 if overlap else 0.0, 1.0,
            f"技术领域: {a} / {b}", f"technical fields: {a} / {b}")
    if demand.trl is not None and achievement.trl is not None:
        gap = demand.trl - achievement.trl
        value = 1.0 if gap <= 0 else (0.5 if gap == 1 else 0.0)
        add("trl", gap <= 0, value, 2.0,
            f"成熟度 TRL {achievement.trl} {'满足' if gap <= 0 else '低于'}需求 TRL {demand.trl}",
            f"TRL {achievement.trl} {'meets' if gap <= 0 else 'is below'} required TRL {demand.trl}")
    if demand.modes and achievement.modes:
        common = [m for m in CoopMode if m.value in set(demand.modes) & set(achievement.modes)]
        add("cooperation_mode", bool(common), 1.0 if common else 0.0, 1.0,
            ("合作方式一致: " + "、".join(m.zh for m in common)) if common else "合作方式不一致",
            ("cooperation modes in common: " + ", ".join(m.en for m in common)) if common
            else "no cooperation mode in common")
    if demand.region and achievement.region:
        if demand.region == achievement.region:
            value, zh, en = 1.0, f"同在{demand.region}", f"both in {demand.region}"
        elif demand.region in JIANGXI_CITIES and achievement.region in JIANGXI_CITIES:
            value, zh, en = 0.7, "同在江西省内", "both in Jiangxi"
        else:
            value, zh, en = 0.4, f"跨地区: {demand.region} / {achievement.region}", "different regions"
        add("region", value >= 0.7, value, 0.5, zh, en)
    if demand.money is not None and achievement.money is not None:
        budget, price = demand.money, achievement.money
        value = 1.0 if price <= budget else (0.5 if price <= 1.5 * budget else 0.0)
        add("budget", price <= budget, value, 1.0,
            f"报价 {_money(price)} {'在' if price <= budget else '超出'}预算 {_money(budget)}{'内' if price <= budget else ''}",
            f"asking price {price:g} {'within' if price <= budget else 'above'} budget {budget:g} (10k CNY)")
    return checks


def apply_compatibility(s: Scored, checks: list[Check]) -> None:
    s.checks = checks
    total = sum(c.weight for c in checks)
    s.compat = sum(c.value * c.weight for c in checks) / total if total else 0.5
    s.score = s.relevance * (1 + COMPAT_WEIGHT * (2 * s.compat - 1))

