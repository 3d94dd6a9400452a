"""The match pipeline: every transition for every role, answers, audit trail, queue, warnings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pydantic
import pytest
from sqlmodel import Session, select
from werkzeug.security import generate_password_hash

from matcher import failures, workflow
from matcher.errors import Conflict, Forbidden, NotFound, ValidationFailed
from matcher.models import (
    Match,
    MatchCreate,
    MatchEvent,
    MatchUpdate,
    Notification,
    OrgKind,
    Role,
    User,
)
from matcher.visibility import Viewer
from tests.conftest import achievement_data, demand_data, make_org

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class World:
    """Organisations, one user per role (two brokers), a demand, a confidential demand, achievements."""

    def __init__(self, service):
        self.service = service
        engine = service.engine
        self.ent_org = make_org(engine, "甲企业", OrgKind.enterprise)
        self.rival_org = make_org(engine, "乙企业", OrgKind.enterprise)
        self.uni_org = make_org(engine, "丙大学", OrgKind.university)
        self.centre = make_org(engine, "丁转移中心", OrgKind.transfer_centre)
        self.users: dict[str, Viewer] = {}
        with Session(engine) as s:
            for name, role, org in [("ent", Role.enterprise, self.ent_org),
                                    ("ent2", Role.enterprise, self.ent_org),
                                    ("rival", Role.enterprise, self.rival_org),
                                    ("inst", Role.institution, self.uni_org),
                                    ("broker", Role.broker, self.centre),
                                    ("broker2", Role.broker, self.centre),
                                    ("admin", Role.admin, None)]:
                user = User(username=name, password_hash=generate_password_hash("x"), role=role.value,
                            organisation_id=org, email=f"{name}@example.com")
                s.add(user)
                s.flush()
                self.users[name] = Viewer(user_id=user.id, organisation_id=org, role=role.value)
            s.commit()
        self.demand = service.create_demand(data=demand_data(self.ent_org))
        self.secret = service.create_demand(data=demand_data(
            self.ent_org, title="保密需求: 含砷烟尘无害化处理", confidential=True,
            description="冶炼烟尘含砷约8%, 希望开发稳定化固砷工艺, 浸出毒性低于国家标准限值。"))
        self.achievement = service.create_achievement(data=achievement_data(self.uni_org))
        self.other = service.create_achievement(data=achievement_data(
            self.uni_org, title="脐橙果汁非热杀菌护色技术", industry_chain="food", kind="technology",
            patent_number=None,
            description="超高压处理结合天然抗氧化剂, 使NFC橙汁冷藏60天色差变化小于2, 维生素C保留率90%。"))

    def __getitem__(self, name: str) -> Viewer:
        return self.users[name]

    def recommend(self, demand=None, achievement=None, who="broker", **kw) -> Match:
        return workflow.recommend(self.service.engine, actor=self[who], data=MatchCreate(
            demand_id=(demand or self.demand).id, achievement_id=(achievement or self.achievement).id),
            **kw)

    def move(self, match_id: int, who: str, state: str, **fields) -> Match:
        return workflow.change(self.service.engine, match_id, actor=self[who],
                               data=MatchUpdate(state=state, **fields))

    def put(self, state: str, demand_answer=None, achievement_answer=None, demand=None) -> int:
        """A match already in ``state`` (written directly: the starting point of one table row)."""
        with Session(self.service.engine) as s:
            m = Match(demand_id=(demand or self.demand).id, achievement_id=self.achievement.id,
                      state=state, broker_id=self["broker"].user_id, demand_answer=demand_answer,
                      achievement_answer=achievement_answer)
            s.add(m)
            s.commit()
            return m.id


@pytest.fixture
def w(service):
    return World(service)


SIGN = dict(amount_wan=120.0, cooperation_mode="licence", signed_on=date(2026, 4, 1))
FAIL = dict(reason="price", note="报价差距过大")

# Starting points: (label, state, demand_answer, achievement_answer)
STARTS = [
    ("recommended", "recommended", None, None),
    ("recommended, demand interested", "recommended", "interested", None),
    ("recommended, achievement interested", "recommended", None, "interested"),
    ("interested", "interested", "interested", "interested"),
    ("declined", "declined", "declined", None),
    ("negotiating", "negotiating", "interested", "interested"),
    ("signed", "signed", "interested", "interested"),
    ("failed", "failed", "interested", "interested"),
]
TARGETS = ["recommended", "interested", "declined", "negotiating", "signed", "failed"]
ACTORS = ["ent", "inst", "broker", "admin", "rival"]

# Every allowed change: (start, actor, target) -> (state after, demand_answer, achievement_answer).
ALLOWED = {
    ("recommended", "ent", "interested"): ("recommended", "interested", None),
    ("recommended", "inst", "interested"): ("recommended", None, "interested"),
    ("recommended", "ent", "declined"): ("declined", "declined", None),
    ("recommended", "inst", "declined"): ("declined", None, "declined"),
    ("recommended, demand interested", "inst", "interested"): ("interested", "interested", "interested"),
    ("recommended, demand interested", "ent", "declined"): ("declined", "declined", None),
    ("recommended, demand interested", "inst", "declined"): ("declined", "interested", "declined"),
    ("recommended, achievement interested", "ent", "interested"):
        ("interested", "interested", "interested"),
    ("recommended, achievement interested", "ent", "declined"): ("declined", "declined", "interested"),
    ("recommended, achievement interested", "inst", "declined"): ("declined", None, "declined"),
    ("interested", "ent", "declined"): ("declined", "declined", "interested"),
    ("interested", "inst", "declined"): ("declined", "interested", "declined"),
    ("interested", "broker", "negotiating"): ("negotiating", "interested", "interested"),
    ("interested", "broker", "failed"): ("failed", "interested", "interested"),
    ("negotiating", "broker", "signed"): ("signed", "interested", "interested"),
    ("negotiating", "broker", "failed"): ("failed", "interested", "interested"),
}
SIDE_ROLES = {"interested": {"ent", "inst"}, "declined": {"ent", "inst"}}


def expected(start: str, actor: str, target: str):
    """The outcome the module's state table promises: a new state, or the error."""
    if actor == "rival":
        return NotFound  # not a party: the match is invisible
    if actor == "admin":
        return Forbidden
    if (start, actor, target) in ALLOWED:
        return ALLOWED[(start, actor, target)]
    allowed_roles = SIDE_ROLES.get(target, {"broker"})
    return Conflict if actor in allowed_roles else Forbidden


def test_every_transition_for_every_role(w):
    """8 starting points x 6 target states x 5 actors: the new state, or 404/403/409, and the audit entry."""
    wrong = []
    for label, state, da, aa in STARTS:
        for target in TARGETS:
            for actor in ACTORS:
                mid = w.put(state, da, aa)
                want = expected(label, actor, target)
                fields = SIGN if target == "signed" else FAIL if target == "failed" else {}
                try:
                    m = w.move(mid, actor, target, **fields)
                    got = (m.state, m.demand_answer, m.achievement_answer)
                except (NotFound, Forbidden, Conflict) as exc:
                    got = type(exc)
                with Session(w.service.engine) as s:
                    events = s.exec(select(MatchEvent).where(MatchEvent.match_id == mid)).all()
                if got != want:
                    wrong.append(f"{label} --{actor}--> {target}: got {got}, expected {want}")
                elif isinstance(want, tuple):
                    assert len(events) == 1 and events[0].from_state == state
                    assert events[0].to_state == want[0] and events[0].user_id == w[actor].user_id
                else:
                    assert events == [], f"{label} {actor} {target} failed but wrote an audit entry"
    assert not wrong, "\n".join(wrong)


def test_pipeline_to_signed_with_audit_trail(w):
    m = w.recommend(now=T0)
    assert m.state == "recommended" and m.broker_id == w["broker"].user_id
    w.move(m.id, "inst", "interested")
    m = workflow.change(w.service.engine, m.id, actor=w["ent"],
                        data=MatchUpdate(state="interested", note="可以谈"), now=T0 + timedelta(days=2))
    assert (m.state, m.demand_answer, m.achievement_answer) == ("interested", "interested", "interested")
    assert workflow.aware(m.last_activity_at) == T0 + timedelta(days=2)
    w.move(m.id, "broker", "negotiating")
    with pytest.raises(ValidationFailed) as err:
        w.move(m.id, "broker", "signed", amount_wan=50.0)
    assert set(err.value.errors) == {"cooperation_mode", "signed_on"}
    m = w.move(m.id, "broker", "signed", **SIGN)
    assert (m.amount_wan, m.cooperation_mode, m.signed_on) == (120.0, "licence", date(2026, 4, 1))
    assert m.open_pair is None
    _, _, events = workflow.get_match(w.service.engine, m.id, w["broker"])
    trail = [(e.action, e.from_state, e.to_state, e.user_id) for e in events]
    u = {k: v.user_id for k, v in w.users.items()}
    assert trail == [
        ("recommend", None, "recommended", u["broker"]),
        ("achievement_interested", "recommended", "recommended", u["inst"]),
        ("demand_interested", "recommended", "interested", u["ent"]),
        ("negotiating", "interested", "negotiating", u["broker"]),
        ("signed", "negotiating", "signed", u["broker"]),
    ]
    assert events[2].note == "可以谈"
    with pytest.raises(pydantic.ValidationError):
        MatchUpdate(state="signed", amount_wan=0)  # amount must be > 0


def test_failed_needs_reason_and_note(w):
    mid = w.put("negotiating", "interested", "interested")
    with pytest.raises(ValidationFailed) as err:
        w.move(mid, "broker", "failed")
    assert set(err.value.errors) == {"reason", "note"}
    with pytest.raises(ValidationFailed) as err:
        w.move(mid, "broker", "failed", reason="timing")
    assert set(err.value.errors) == {"note"}
    m = w.move(mid, "broker", "failed", reason="ip_ownership", note="双方对专利归属无法达成一致")
    assert (m.state, m.failure_reason, m.failure_note) == ("failed", "ip_ownership", "双方对专利归属无法达成一致")


def test_duplicates_and_recommendation_rules(w):
    m = w.recommend()
    with pytest.raises(Conflict):
        w.recommend()  # the same pair while the first is alive
    w.move(m.id, "ent", "declined")
    again = w.recommend()  # a declined pairing may be proposed again
    assert again.id != m.id
    w.move(again.id, "ent", "interested")
    w.move(again.id, "inst", "interested")
    w.move(again.id, "broker", "negotiating")
    w.move(again.id, "broker", "signed", **SIGN)
    with pytest.raises(Conflict):
        w.recommend()  # never again once signed
    for who in ("ent", "inst", "admin"):
        with pytest.raises(Forbidden):
            w.recommend(achievement=w.other, who=who)
    with pytest.raises(ValidationFailed) as err:
        workflow.recommend(w.service.engine, actor=w["broker"],
                           data=MatchCreate(demand_id=999999, achievement_id=w.other.id))
    assert "demand_id" in err.value.errors


def test_reassign_broker(w):
    m = w.recommend()
    with pytest.raises(Forbidden):
        workflow.change(w.service.engine, m.id, actor=w["ent"], data=MatchUpdate(broker_id=1))
    with pytest.raises(ValidationFailed):
        workflow.change(w.service.engine, m.id, actor=w["broker"],
                        data=MatchUpdate(broker_id=w["ent"].user_id))
    m = workflow.change(w.service.engine, m.id, actor=w["broker"],
                        data=MatchUpdate(broker_id=w["broker2"].user_id, note="交接"))
    assert m.broker_id == w["broker2"].user_id and m.state == "recommended"
    assert [x.id for x in workflow.my_matches(w.service.engine, w["broker2"].user_id)] == [m.id]
    assert workflow.my_matches(w.service.engine, w["broker"].user_id) == []


def test_confidential_demand_match(w):
    """Only brokers and the demand's organisation see it; the broker relays the institution's answer."""
    m = w.recommend(demand=w.secret)
    engine = w.service.engine
    for who in ("inst", "rival", "admin"):
        with pytest.raises(NotFound):
            workflow.get_match(engine, m.id, w[who])
        with pytest.raises(NotFound):
            w.move(m.id, who, "interested")
        assert all(x.id != m.id for x, _ in workflow.list_matches(engine, w[who]))
    for who in ("ent", "broker"):
        assert workflow.get_match(engine, m.id, w[who])[0].id == m.id
    w.move(m.id, "ent", "interested")
    m = w.move(m.id, "broker", "interested")
    assert m.state == "interested"
    _, _, events = workflow.get_match(engine, m.id, w["ent"])
    assert events[-1].action == "achievement_interested_relayed"
    with Session(engine) as s:  # the recommendation told the enterprise only
        told = {n.user_id for n in s.exec(select(Notification).where(Notification.link == f"/matches/{m.id}"))}
    assert w["inst"].user_id not in told and w["ent"].user_id in told


def test_recommendation_notifies_both_organisations(w):
    m = w.recommend()
    with Session(w.service.engine) as s:
        rows = s.exec(select(Notification).where(Notification.link == f"/matches/{m.id}")).all()
    assert sorted(n.user_id for n in rows) == sorted(
        w[u].user_id for u in ("ent", "ent2", "inst"))
    assert all("推荐" in n.title_zh and "recommends" in n.title_en for n in rows)


def test_list_matches_visibility(w):
    public = w.recommend()
    secret = w.recommend(demand=w.secret)
    engine = w.service.engine

    def ids(who, **kw):
        return sorted(m.id for m, _ in workflow.list_matches(engine, w[who], **kw))

    assert ids("broker") == ids("ent") == sorted([public.id, secret.id])
    assert ids("inst") == ids("admin") == [public.id]
    assert ids("rival") == []
    assert ids("broker", state="recommended") == sorted([public.id, secret.id])
    assert ids("broker", state="signed") == []
    assert workflow.list_matches(engine, Viewer.anonymous()) == []


def test_broker_queue(w):
    engine = w.service.engine
    pairs = {(c.demand.id, c.achievement.id) for c in workflow.unreviewed_pairs(w.service)}
    assert (w.demand.id, w.achievement.id) in pairs  # the copper-alloy pair is a good match
    assert (w.demand.id, w.other.id) not in pairs  # orange juice is not
    m = w.recommend(now=T0)
    pairs = {(c.demand.id, c.achievement.id) for c in workflow.unreviewed_pairs(w.service)}
    assert (w.demand.id, w.achievement.id) not in pairs
    assert [x.id for x in workflow.my_matches(engine, w["broker"].user_id)] == [m.id]
    assert workflow.stale_matches(engine, days=14, now=T0 + timedelta(days=13)) == []
    assert [x.id for x in workflow.stale_matches(engine, days=14, now=T0 + timedelta(days=15))] == [m.id]
    workflow.change(engine, m.id, actor=w["ent"], data=MatchUpdate(state="interested"),
                    now=T0 + timedelta(days=10))
    assert workflow.stale_matches(engine, days=14, now=T0 + timedelta(days=15)) == []
    workflow.change(engine, m.id, actor=w["ent"], data=MatchUpdate(state="declined"),
                    now=T0 + timedelta(days=11))
    assert workflow.stale_matches(engine, days=1, now=T0 + timedelta(days=100)) == []  # final
    assert workflow.my_matches(engine, w["broker"].user_id) == []


def _fail(w, demand, achievement, reason="price", note="报价差距过大, 企业预算不足"):
    m = w.recommend(demand=demand, achievement=achievement)
    w.move(m.id, "ent", "interested")
    w.move(m.id, "broker" if demand.confidential else "inst", "interested")
    return w.move(m.id, "broker", "failed", reason=reason, note=note)


def test_failure_library_search(w):
    price = _fail(w, w.demand, w.achievement)
    timing = _fail(w, w.demand, w.other, "timing", "企业投产计划推迟一年")
    engine = w.service.engine

    def found(q, who="broker", **kw):
        return [f.match.id for f in failures.search_failures(engine, w[who], q, **kw)]

    assert sorted(found("")) == sorted([price.id, timing.id])
    assert found("预算") == [price.id]  # the note
    assert found("价格") == [price.id]  # the reason's Chinese label
    assert found("PRICE") == [price.id]  # its code, any case
    assert found("果汁") == [timing.id]  # the achievement's title
    assert found("脐橙 预算") == []  # every word must occur in one case
    assert found("投产 推迟") == [timing.id]
    assert found("", reason="timing") == [timing.id]
    assert sorted(found("", who="admin")) == sorted([price.id, timing.id])
    secret = _fail(w, w.secret, w.achievement, "capability", "固砷工艺需要的设备企业没有")
    assert found("固砷", who="broker") == [secret.id]
    assert found("固砷", who="admin") == []  # confidential: brokers and the demand's organisation


def test_warnings_for_similar_pairs(w):
    svc = w.service
    engine, model = svc.engine, svc.encoder.model_id
    similar_demand = svc.create_demand(data=demand_data(
        w.rival_org, title="引线框架铜合金带材强度提升",
        description="生产引线框架用铜合金带材, 希望把抗拉强度提高到600MPa以上, 同时保持导电率65%IACS以上。"))
    similar_achievement = svc.create_achievement(data=achievement_data(
        w.uni_org, title="高强高导Cu-Ni-Si铜合金带材形变时效技术",
        description="微合金化结合形变时效处理, 铜合金带材抗拉强度650MPa, 导电率68%IACS, 用于引线框架。"))
    pairs = [(w.demand.id, w.achievement.id), (similar_demand.id, similar_achievement.id),
             (similar_demand.id, w.other.id), (w.secret.id, w.achievement.id)]
    assert all(v == [] for v in failures.warnings_for(engine, model, pairs, w["broker"]).values())
    failed = _fail(w, w.demand, w.achievement)
    warned = failures.warnings_for(engine, model, pairs, w["broker"])
    assert [x["match_id"] for x in warned[(w.demand.id, w.achievement.id)]] == [failed.id]
    got = warned[(similar_demand.id, similar_achievement.id)]
    assert len(got) == 1 and got[0]["reason"] == "price" and got[0]["match_id"] == failed.id
    assert got[0]["message_zh"] == "类似的对接曾因价格失败"
    assert got[0]["message_en"] == "a similar pairing failed on price"
    assert got[0]["similarity"] >= failures.SIMILAR
    assert warned[(similar_demand.id, w.other.id)] == []  # the achievement is unrelated
    assert warned[(w.secret.id, w.achievement.id)] == []  # the demand is unrelated
    # Someone who may not see the failed match is warned without its id.
    anonymous = failures.warnings_for(engine, model, pairs[:2], w["rival"])
    assert [x["match_id"] for x in anonymous[pairs[1]]] == [None]
