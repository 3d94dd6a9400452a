"""Platform statistics for brokers and administrators, computed from the database.

``compute(service)`` reads only the database (and, for supply gaps, ranks each
open demand); the JSON API and the HTML statistics page both render its
result as it is.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from sqlmodel import Session, select

from matcher.models import (
    Achievement,
    AchievementStatus,
    Demand,
    DemandStatus,
    FailureReason,
    IndustryChain,
    Match,
    MatchEvent,
    MatchState,
)
from matcher.service import MatcherService
from matcher.workflow import aware

FUNNEL = [MatchState.recommended, MatchState.interested, MatchState.negotiating, MatchState.signed]
UNKNOWN_CHAIN = "unknown"  # matches whose demand was deleted since


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def compute(service: MatcherService) -> dict[str, Any]:
    """The match funnel, conversion and time to sign per industry chain, supply gaps, TRLs, failures.

    Returns:
        ``funnel``: how many matches ever reached each stage (from the audit trail);
        ``by_state``: how many are in each state now;
        ``conversion``: signed / recommended (None without matches);
        ``median_days_to_sign``: median days from recommendation to the signing entry;
        ``chains``: the same per industry chain of the demand, with ``supply_gaps``
        (open demands whose best match is not good, or that have none);
        ``supply_gaps``: their total;
        ``trl_distribution``: available achievements per TRL 1..9;
        ``failure_reasons``: failed matches per reason.
    """
    with Session(service.engine) as session:
        matches = session.exec(select(Match)).all()
        events = session.exec(select(MatchEvent.match_id, MatchEvent.to_state, MatchEvent.at)).all()
        chain_of = dict(session.exec(select(Demand.id, Demand.industry_chain)).all())
        open_demands = session.exec(select(Demand).where(Demand.status == DemandStatus.open.value)).all()
        trls = session.exec(select(Achievement.trl).where(
            Achievement.status == AchievementStatus.available.value)).all()

    reached: dict[str, set[int]] = defaultdict(set)
    signed_at = {}
    for match_id, to_state, at in events:
        reached[to_state].add(match_id)
        if to_state == MatchState.signed.value:
            signed_at[match_id] = aware(at)

    per_chain: dict[str, dict[str, Any]] = defaultdict(lambda: {"recommended": 0, "signed": 0, "days": []})
    all_days: list[float] = []
    for m in matches:
        row = per_chain[chain_of.get(m.demand_id, UNKNOWN_CHAIN)]
        row["recommended"] += 1
        if m.state == MatchState.signed.value and m.id in signed_at:
            row["signed"] += 1
            days = (signed_at[m.id] - aware(m.created_at)).total_seconds() / 86400
            row["days"].append(days)
            all_days.append(days)

    gaps: Counter[str] = Counter()
    for d in open_demands:
        top = service.match_record(d, k=1, explain=False)
        if not top or not top[0].good:
            gaps[d.industry_chain] += 1

    chains = []
    for chain in [c.value for c in IndustryChain] + [UNKNOWN_CHAIN]:
        if chain not in per_chain and not gaps[chain]:
            continue
        row = per_chain.get(chain, {"recommended": 0, "signed": 0, "days": []})
        label = IndustryChain(chain) if chain != UNKNOWN_CHAIN else None
        chains.append({
            "industry_chain": chain,
            "label_zh": label.zh if label else "未知", "label_en": label.en if label else "Unknown",
            "recommended": row["recommended"], "signed": row["signed"],
            "conversion": _ratio(row["signed"], row["recommended"]),
            "median_days_to_sign": _median(row["days"]),
            "supply_gaps": gaps[chain],
        })

    signed_total = sum(1 for m in matches if m.state == MatchState.signed.value)
    state_counts = Counter(m.state for m in matches)
    trl_counts = Counter(trls)
    reason_counts = Counter(m.failure_reason for m in matches if m.state == MatchState.failed.value)
    return {
        "funnel": {s.value: (len(matches) if s is MatchState.recommended else len(reached[s.value]))
                   for s in FUNNEL},
        "by_state": {s.value: state_counts[s.value] for s in MatchState},
        "conversion": _ratio(signed_total, len(matches)),
        "median_days_to_sign": _median(all_days),
        "chains": chains,
        "supply_gaps": sum(gaps.values()),
        "trl_distribution": {str(t): trl_counts[t] for t in range(1, 10)},
        "failure_reasons": {r.value: reason_counts[r.value] for r in FailureReason},
    }
