"""Platform statistics for brokers and administrators: SQL aggregates over the database.

Nothing here loops over the catalogue: counts are grouped in SQL, supply gaps
come from the stored match graph, and only the signed matches' dates are read
(for the median time to sign).  What the viewer may not see (confidential
demands, for administrators) is left out by the one visibility rule.  The JSON
API and the HTML statistics page both render the result as it is.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import case, distinct, func
from sqlmodel import Session, select

from matcher.models import (
    Achievement,
    AchievementStatus,
    Demand,
    FailureReason,
    IndustryChain,
    Match,
    MatchEvent,
    MatchState,
)
from matcher.service import MatcherService
from matcher.visibility import Viewer, visible
from matcher.workflow import aware

FUNNEL = [MatchState.recommended, MatchState.interested, MatchState.negotiating, MatchState.signed]


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def compute(service: MatcherService, viewer: Viewer | None = None) -> dict[str, Any]:
    """The match funnel, conversion and time to sign per industry chain, supply gaps, TRLs, failures.

    Args:
        service: the matcher service.
        viewer: who asks; matches on demands the viewer may not see are not counted.

    Returns:
        ``funnel``: how many matches ever reached each stage (from the audit trail);
        ``by_state``: how many are in each state now;
        ``conversion``: signed / recommended (None without matches);
        ``median_days_to_sign``: median days from recommendation to the signing entry;
        ``chains``: the same per industry chain of the demand, with ``supply_gaps``
        (open demands without any good match among their stored candidates);
        ``supply_gaps``: their total;
        ``trl_distribution``: available achievements per TRL 1..9;
        ``failure_reasons``: failed matches per reason.
    """
    viewer = viewer or Viewer.internal()
    seen = visible(viewer, Demand)
    on_demand = (Match.demand_id == Demand.id)
    with Session(service.engine) as session:
        by_state = dict(session.exec(select(Match.state, func.count()).join(Demand, on_demand)
                                     .where(seen).group_by(Match.state)).all())
        reached = dict(session.exec(
            select(MatchEvent.to_state, func.count(distinct(MatchEvent.match_id)))
            .join(Match, Match.id == MatchEvent.match_id).join(Demand, on_demand)
            .where(seen).group_by(MatchEvent.to_state)).all())
        per_chain = session.exec(
            select(Demand.industry_chain, func.count(), func.sum(case((Match.state == MatchState.signed.value, 1), else_=0)))
            .join(Demand, on_demand).where(seen).group_by(Demand.industry_chain)).all()
        signed = session.exec(
            select(Demand.industry_chain, Match.created_at, func.min(MatchEvent.at))
            .join(Demand, on_demand).join(MatchEvent, MatchEvent.match_id == Match.id)
            .where(seen, Match.state == MatchState.signed.value, MatchEvent.to_state == MatchState.signed.value)
            .group_by(Match.id, Demand.industry_chain, Match.created_at)).all()
        trls = dict(session.exec(select(Achievement.trl, func.count()).where(
            Achievement.status == AchievementStatus.available.value,
            Achievement.deleted_at == None).group_by(Achievement.trl)).all())  # noqa: E711
        reasons = dict(session.exec(select(Match.failure_reason, func.count()).join(Demand, on_demand).where(
            seen, Match.state == MatchState.failed.value).group_by(Match.failure_reason)).all())
    gaps = service.store.supply_gaps(viewer)

    days: dict[str, list[float]] = defaultdict(list)
    for chain, created, signed_at in signed:
        days[chain].append((aware(signed_at) - aware(created)).total_seconds() / 86400)
    counts = {chain: (int(total), int(done or 0)) for chain, total, done in per_chain}
    chains = []
    for chain in IndustryChain:
        total, done = counts.get(chain.value, (0, 0))
        if not total and not gaps.get(chain.value):
            continue
        chains.append({
            "industry_chain": chain.value, "label_zh": chain.zh, "label_en": chain.en,
            "recommended": total, "signed": done, "conversion": _ratio(done, total),
            "median_days_to_sign": _median(days[chain.value]), "supply_gaps": gaps.get(chain.value, 0),
        })
    total = sum(by_state.values())
    return {
        "funnel": {s.value: (total if s is MatchState.recommended else int(reached.get(s.value, 0)))
                   for s in FUNNEL},
        "by_state": {s.value: int(by_state.get(s.value, 0)) for s in MatchState},
        "conversion": _ratio(int(by_state.get(MatchState.signed.value, 0)), total),
        "median_days_to_sign": _median([d for v in days.values() for d in v]),
        "chains": chains,
        "supply_gaps": sum(gaps.values()),
        "trl_distribution": {str(t): int(trls.get(t, 0)) for t in range(1, 10)},
        "failure_reasons": {r.value: int(reasons.get(r.value, 0)) for r in FailureReason},
    }
