"""The service keeps database and indexes consistent through every write."""

from __future__ import annotations

import numpy as np
import pytest
from sqlmodel import Session, select

from matcher.errors import NotFound, ValidationFailed
from matcher.models import DemandUpdate, Embedding, OrgKind, Side
from matcher.service import Filters, MatcherService
from matcher.sides import spec
from matcher.visibility import Viewer


def assert_consistent(svc: MatcherService):
    """Every live record has current vectors, and the in-memory indexes hold exactly the
    matchable records (live, in the side's active status)."""
    for side in Side:
        s = spec(side)
        with Session(svc.engine) as session:
            ids = set(session.exec(select(Embedding.record_id).where(Embedding.side == side.value)).all())
            live = set(session.exec(select(s.table.id).where(s.table.deleted_at == None)).all())  # noqa: E711
            matchable = set(session.exec(select(s.table.id).where(
                s.table.deleted_at == None, s.table.status == s.active_status)).all())  # noqa: E711
        st = svc.state(side)
        assert live <= ids, f"{side}: vectors for every live record"
        assert st.vectors.record_ids() == matchable
        assert st.keywords.record_ids() == matchable
        assert set(st.meta) == matchable


def test_create_match_update_delete_stay_consistent(service, factories):
    ent = factories.org(service.engine)
    uni = factories.org(service.engine, kind=OrgKind.university)
    d = service.create_demand(data=factories.demand(ent))
    a1 = service.create_achievement(data=factories.achievement(uni))
    a2 = service.create_achievement(data=factories.achievement(
        uni, title="脐橙果汁非热杀菌护色技术", industry_chain="food",
        description="超高压处理结合天然抗氧化剂, 使NFC橙汁冷藏60天色差变化小于2, 维生素C保留率90%。",
        kind="technology", patent_number=None))
    assert_consistent(service)
    results = service.match_demand(d.id, k=5)
    assert [r.record.id for r in results][0] == a1.id
    top = results[0]
    assert top.breakdown["dense_cosine"] is not None and top.breakdown["checks"]
    assert any(c["name"] == "industry_chain" and c["passed"] for c in top.explanation["checks"])
    assert "铜合金" in top.explanation["shared_terms"] or "导电率" in top.explanation["shared_terms"]

    # change the demand's text into the food problem: the ranking follows
    service.update_demand(d.id, data=DemandUpdate(
        title="橙汁冷藏褐变问题", industry_chain="food",
        description="我司NFC橙汁冷藏两个月后褐变明显, 维生素C损失严重, 寻求不加防腐剂的护色保鲜工艺。"))
    assert service.match_demand(d.id, k=1)[0].record.id == a2.id
    assert_consistent(service)

    service.delete(Side.achievement, a2.id)
    assert a2.id not in [r.record.id for r in service.match_demand(d.id, k=5)]
    assert_consistent(service)
    with pytest.raises(NotFound):
        service.delete(Side.achievement, a2.id)


def test_rebuild_gives_the_same_index(service, factories):
    uni = factories.org(service.engine, kind=OrgKind.university)
    for i in range(3):
        service.create_achievement(data=factories.achievement(uni, title=f"铜合金成果第{i}项"))
    ent = factories.org(service.engine)
    d = service.create_demand(data=factories.demand(ent))
    before = [(r.record.id, round(r.score, 6)) for r in service.match_demand(d.id, k=3)]
    with Session(service.engine) as s:
        n_vectors = len(s.exec(select(Embedding)).all())
    service.rebuild()
    with Session(service.engine) as s:
        assert len(s.exec(select(Embedding)).all()) == n_vectors, "rebuild re-encodes nothing"
    assert [(r.record.id, round(r.score, 6)) for r in service.match_demand(d.id, k=3)] == before
    assert_consistent(service)


def test_second_worker_sees_writes_of_the_first(service, factories, tmp_path):
    other = MatcherService(service.engine, service.encoder, tmp_path / "index")
    uni = factories.org(service.engine, kind=OrgKind.university)
    assert other.state(Side.achievement).vectors.ntotal == 0
    a = service.create_achievement(data=factories.achievement(uni))
    assert a.id in other.state(Side.achievement).vectors.record_ids()
    assert other.search("高强高导铜合金", Side.achievement, k=1)[0].record.id == a.id


def test_invalid_input_writes_nothing(service, factories):
    ent = factories.org(service.engine)
    d = service.create_demand(data=factories.demand(ent))
    with pytest.raises(ValidationFailed) as err:
        service.update_demand(d.id, data=DemandUpdate.model_construct(
            required_trl=12, _fields_set={"required_trl"}))
    assert "required_trl" in err.value.errors
    assert service.get(Side.demand, d.id).required_trl == 5
    with pytest.raises(ValidationFailed):
        service.create_demand(data=factories.demand(999999))
    assert service.count(Side.demand) == 1
    assert_consistent(service)


def test_filters_never_cut_below_k(service, factories):
    uni = factories.org(service.engine, kind=OrgKind.university)
    items = []
    for i in range(30):
        chain = "food" if i % 10 == 0 else "nonferrous"
        items.append(factories.achievement(uni, title=f"成果{i}: 铜合金带材工艺改进", industry_chain=chain,
                                           region="赣州市" if i % 2 else "南昌市", trl=3 + i % 6))
    service.bulk_create(Side.achievement, items)
    ent = factories.org(service.engine)
    d = service.create_demand(data=factories.demand(ent))
    food = service.match_demand(d.id, k=3, filters=Filters(industry_chain="food"))
    assert len(food) == 3 and all(r.record.industry_chain == "food" for r in food)
    high = service.match_demand(d.id, k=5, filters=Filters(min_trl=8, region="赣州市"))
    expected = sum(1 for i in range(30) if i % 2 and 3 + i % 6 >= 8)
    assert len(high) == min(5, expected)
    assert all(r.record.trl >= 8 and r.record.region == "赣州市" for r in high)


def test_confidential_demand_never_reaches_other_organisations(service, factories):
    owner = factories.org(service.engine)
    rival = factories.org(service.engine)
    uni = factories.org(service.engine, kind=OrgKind.university)
    secret = service.create_demand(data=factories.demand(owner, confidential=True))
    public = service.create_demand(data=factories.demand(owner, title="公开需求: 铜合金带材强度提升"))
    a = service.create_achievement(data=factories.achievement(uni))
    outsiders = [Viewer(organisation_id=rival, role="enterprise"),
                 Viewer(organisation_id=uni, role="institution"), Viewer.anonymous(),
                 Viewer(role="admin")]
    for v in outsiders:
        seen = {r.record.id for r in service.match_achievement(a.id, k=10, viewer=v)}
        seen |= {r.record.id for r in service.search("铜合金带材", Side.demand, k=10, viewer=v)}
        assert secret.id not in seen and public.id in seen
        with pytest.raises(NotFound):
            service.get(Side.demand, secret.id, v)
    for v in (Viewer(organisation_id=owner, role="enterprise"), Viewer(role="broker")):
        assert secret.id in {r.record.id for r in service.match_achievement(a.id, k=10, viewer=v)}


OTHER_TOPICS = [
    ("锂云母提锂渣制备建材", "锂渣经碱激发制成蒸压砖, 抗压强度15MPa, 每吨处理成本60元。", "new_energy"),
    ("陶瓷釉面缺陷机器视觉检测", "基于深度学习的釉面针孔与裂纹检测, 检出率99%, 单件0.8秒。", "building_materials"),
    ("钢渣微粉制备混凝土掺合料", "钢渣磁选后立磨粉磨, 比表面积450m2/kg, 替代20%水泥。", "steel"),
    ("羽绒清洗逆流漂洗节水工艺", "逆流漂洗与膜分离回用, 羽绒清洗吨耗水降低50%。", "textiles"),
    ("数控机床主轴热误差补偿", "温度场建模与在线补偿, 五轴加工中心热漂移降低60%。", "equipment"),
]


def test_cross_lingual_match(service, factories):
    ent = factories.org(service.engine)
    uni = factories.org(service.engine, kind=OrgKind.university)
    english = service.create_achievement(data=factories.achievement(
        uni, title="Non-thermal preservation of orange juice", industry_chain="food",
        description="High-pressure processing with natural antioxidants keeps NFC orange juice "
                    "from browning for 60 days of cold storage and retains 90% of vitamin C.",
        kind="technology", patent_number=None))
    service.create_achievement(data=factories.achievement(uni))
    for title, text, chain in OTHER_TOPICS:
        service.create_achievement(data=factories.achievement(
            uni, title=title, description=text, industry_chain=chain, kind="technology",
            patent_number=None))
    d = service.create_demand(data=factories.demand(
        ent, title="橙汁冷藏褐变问题", industry_chain="food",
        description="我司NFC橙汁冷藏两个月后褐变明显, 维生素C损失严重, 寻求不加防腐剂的护色工艺。"))
    top = service.match_demand(d.id, k=1)[0]
    assert top.record.id == english.id
    assert top.breakdown["cross_lingual"] is True
    assert top.explanation["best_pair"]["method"] == "semantic"
    # and the other way round: the English record finds the Chinese demand first
    assert service.match_achievement(english.id, k=1)[0].record.id == d.id


def test_long_description_is_matched_past_the_model_limit(service, factories):
    uni = factories.org(service.engine, kind=OrgKind.university)
    filler = "本项目围绕企业数字化管理平台开展建设, 涵盖采购、仓储与财务流程的信息化改造。" * 40
    long = service.create_achievement(data=factories.achievement(
        uni, title="综合技术成果汇编", industry_chain="frontier",
        description=filler + "其中第十二项: 稀土永磁体晶界扩散镝铽工艺, 矫顽力提升30%且重稀土用量降低60%。"))
    service.create_achievement(data=factories.achievement(uni, title="企业数字化管理平台"))
    with Session(service.engine) as s:
        chunks = s.exec(select(Embedding).where(Embedding.record_id == long.id,
                                                Embedding.side == "achievement")).all()
    assert len(chunks) > 1, "the long record is split into passages"
    hits = service.search("钕铁硼磁体晶界扩散降低重稀土用量", Side.achievement, k=1)
    assert hits[0].record.id == long.id


def test_vectors_are_stored_with_their_model(service, factories):
    uni = factories.org(service.engine, kind=OrgKind.university)
    a = service.create_achievement(data=factories.achievement(uni))
    with Session(service.engine) as s:
        row = s.exec(select(Embedding).where(Embedding.record_id == a.id)).first()
    assert row.model_id == service.encoder.model_id
    v = np.frombuffer(row.vector, dtype=np.float32)
    assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4
