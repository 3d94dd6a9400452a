"""Statistics on a data set built here, with every figure worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta

from matcher import stats, workflow
from matcher.models import AchievementUpdate, MatchCreate, MatchUpdate
from tests.conftest import achievement_data, demand_data
from tests.matcher.test_workflow import T0, World


def test_statistics_on_a_known_data_set(service):
    w = World(service)  # demand (copper, open), secret (copper, confidential, open); achievement (TRL 6), other
    engine = service.engine
    other = service.update_achievement(w.other.id, data=AchievementUpdate(trl=4))
    service.create_achievement(data=achievement_data(w.uni_org, title="已撤回的铜冶炼技术", trl=9,
                                                     status="withdrawn"))
    copper_b = service.create_demand(data=demand_data(w.rival_org, title="连接器用高强铜合金带材开发"))
    food = service.create_demand(data=demand_data(
        w.rival_org, title="NFC橙汁冷藏保鲜护色", industry_chain="food", technical_field="果汁加工",
        description="我司生产NFC橙汁, 冷藏期间褐变和维生素C损失明显, 希望采用非热杀菌与护色技术延长保质期。"))
    gap = service.create_demand(data=demand_data(
        w.rival_org, title="Blockchain invoice auditing for small firms", industry_chain="electronics",
        technical_field="software",
        description="We need a permissioned ledger that reconciles supplier invoices and flags duplicates "
                    "for tax audits across forty branch offices."))

    def match(demand, achievement, *steps):
        m = workflow.recommend(engine, actor=w["broker"], now=T0,
                               data=MatchCreate(demand_id=demand.id, achievement_id=achievement.id))
        for day, who, state, fields in steps:
            workflow.change(engine, m.id, actor=w[who], now=T0 + timedelta(days=day),
                            data=MatchUpdate(state=state, **fields))
        return m

    sign = {"amount_wan": 100.0, "cooperation_mode": "licence", "signed_on": date(2026, 4, 1)}
    both = [(1, "ent", "interested", {}), (1, "inst", "interested", {})]
    both_rival = [(1, "rival", "interested", {}), (1, "inst", "interested", {})]
    # nonferrous: M1 signed after 10 days, M2 signed after 20, M4 declined, M6 still recommended
    match(w.demand, w.achievement, *both, (2, "broker", "negotiating", {}), (10, "broker", "signed", sign))
    match(copper_b, other, *both_rival, (3, "broker", "negotiating", {}), (20, "broker", "signed", sign))
    match(w.demand, other, (1, "ent", "declined", {}))
    match(copper_b, w.achievement)
    # food: M3 failed on price (from interested), M5 failed on timing (from negotiating)
    match(food, other, *both_rival, (5, "broker", "failed", {"reason": "price", "note": "价高"}))
    match(food, w.achievement, *both_rival, (2, "broker", "negotiating", {}),
          (6, "broker", "failed", {"reason": "timing", "note": "推迟"}))

    got = stats.compute(service)
    assert got["funnel"] == {"recommended": 6, "interested": 4, "negotiating": 3, "signed": 2}
    assert got["by_state"] == {"recommended": 1, "interested": 0, "declined": 1, "negotiating": 0,
                               "signed": 2, "failed": 2}
    assert got["conversion"] == round(2 / 6, 4)
    assert got["median_days_to_sign"] == 15.0
    chains = {c["industry_chain"]: c for c in got["chains"]}
    assert (chains["nonferrous"]["recommended"], chains["nonferrous"]["signed"]) == (4, 2)
    assert chains["nonferrous"]["conversion"] == 0.5
    assert chains["nonferrous"]["median_days_to_sign"] == 15.0
    assert (chains["food"]["recommended"], chains["food"]["signed"], chains["food"]["conversion"]) == (2, 0, 0.0)
    assert chains["food"]["median_days_to_sign"] is None
    # open demands: demand, copper_b and food have good matches; nothing here treats arsenic dust
    # (secret, nonferrous), nor is there any ledger software (gap, electronics)
    assert got["supply_gaps"] == 2
    assert {c: row["supply_gaps"] for c, row in chains.items()} == {"nonferrous": 1, "food": 0, "electronics": 1}
    assert chains["electronics"]["recommended"] == 0 and chains["electronics"]["conversion"] is None
    assert got["trl_distribution"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0, "6": 1, "7": 0, "8": 0,
                                       "9": 0}  # the withdrawn TRL 9 achievement is not listed
    assert got["failure_reasons"] == {"price": 1, "maturity": 0, "ip_ownership": 0, "capability": 0,
                                      "scope": 0, "timing": 1, "other": 0}
    assert gap.id  # (named above for the reader)
