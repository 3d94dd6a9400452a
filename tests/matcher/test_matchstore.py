"""The stored match graph: it agrees with the live ranker, follows every write, hides what it must,
and is repaired after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from matcher.models import AchievementUpdate, DemandUpdate, MatchList, Side, StoredMatch
from matcher.sides import SIDES
from matcher.visibility import Viewer
from tests.conftest import achievement_data, demand_data

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def ids_of(results) -> list[int]:
    return [r.record.id for r in results]


def disagreements(svc, side: Side, record_ids=None, k: int = 10) -> list[tuple[int, list[int], list[int]]]:
    """Records whose stored top k differs from the live ranker's."""
    s = SIDES[side]
    with Session(svc.engine) as session:
        query = select(s.table).where(s.table.deleted_at == None)  # noqa: E711
        if record_ids is not None:
            query = query.where(s.table.id.in_(list(record_ids)))
        records = session.exec(query).all()
    out = []
    for record in records:
        stored = svc.store.read(record, k=k, explain=False)
        live = svc.match_record(record, k=k, explain=False)
        if stored is None or ids_of(stored) != ids_of(live):
            out.append((record.id, stored and ids_of(stored), ids_of(live)))
    return out


def test_store_agrees_with_the_live_ranker_on_the_demo_seeds(demo):
    app, _ = demo
    svc = app.extensions["techmatch.matcher"]
    for side in Side:
        assert disagreements(svc, side) == [], f"every {side.value} of the demo seeds"
    with Session(svc.engine) as session:
        tags = session.exec(select(MatchList)).all()
        assert len(tags) == svc.count(Side.demand) + svc.count(Side.achievement)
        assert {t.model_id for t in tags} == {svc.encoder.model_id}
        rows = session.exec(select(StoredMatch).where(StoredMatch.side == "demand")).all()
    assert rows and all(r.breakdown["strength"] == pytest.approx(r.strength, abs=1e-4) for r in rows)


def test_store_follows_every_write(demo_copy):
    svc = demo_copy.extensions["techmatch.matcher"]
    demands = svc.list_records(Side.demand, per_page=3)[0]
    achievements = svc.list_records(Side.achievement, per_page=3)[0]
    ent, uni = demands[0].organisation_id, achievements[0].organisation_id

    def check(label, touched_side: Side, record_id: int):
        other = touched_side.other
        assert disagreements(svc, touched_side, [record_id]) == [], f"{label}: its own list"
        assert disagreements(svc, other) == [], f"{label}: every list of the other side"

    a = svc.create_achievement(data=achievement_data(uni))
    check("new achievement", Side.achievement, a.id)
    d = svc.create_demand(data=demand_data(ent, title="铜合金引线框架带材强度与导电率提升"))
    check("new demand", Side.demand, d.id)
    assert a.id in ids_of(svc.store.read(d, k=10, explain=False)), "the new pair meets"
    svc.update_achievement(a.id, data=AchievementUpdate(
        title="脐橙果汁非热杀菌护色技术", industry_chain="food",
        description="超高压处理结合天然抗氧化剂, 使NFC橙汁冷藏60天色差变化小于2, 维生素C保留率90%。"))
    check("changed achievement", Side.achievement, a.id)
    svc.update_demand(d.id, data=DemandUpdate(status="closed"))
    check("closed demand", Side.demand, d.id)
    assert not any(d.id in ids_of(svc.store.read(x, k=50, explain=False) or []) for x in
                   svc.list_records(Side.achievement, per_page=50)[0]), "a closed demand leaves every list"
    svc.update_demand(d.id, data=DemandUpdate(status="open"))
    check("reopened demand", Side.demand, d.id)
    svc.delete(Side.achievement, a.id)
    check("deleted achievement", Side.achievement, achievements[0].id)
    with Session(svc.engine) as session:
        assert session.exec(select(StoredMatch).where(StoredMatch.side == "demand",
                                                      StoredMatch.other_id == a.id)).first() is None
        assert session.get(MatchList, ("achievement", a.id)) is None
    # every job ran, in the writing process (no queue configured)
    assert svc.outbox.pending(older_than=timedelta(0)) == []


def test_confidential_demands_never_leave_the_store(demo_copy):
    svc = demo_copy.extensions["techmatch.matcher"]
    demand = svc.list_records(Side.demand, per_page=1)[0][0]
    svc.update_demand(demand.id, data=DemandUpdate(confidential=True))
    with Session(svc.engine) as session:
        holders = session.exec(select(StoredMatch.record_id).where(
            StoredMatch.side == "achievement", StoredMatch.other_id == demand.id)).all()
    assert holders, "the store holds the confidential demand in achievements' lists"
    owner = Viewer(user_id=1, organisation_id=demand.organisation_id, role="enterprise")
    stranger = Viewer(user_id=2, organisation_id=-1, role="institution")
    broker = Viewer(user_id=3, organisation_id=None, role="broker")
    admin = Viewer(user_id=4, organisation_id=None, role="admin")
    checked = 0
    for aid in holders:
        if demand.id not in ids_of(svc.match(Side.achievement, aid, k=50, viewer=broker)):
            continue  # listed beyond the 50 a list answers for (in its reserve)
        checked += 1
        for viewer, sees in [(owner, True), (stranger, False), (Viewer.anonymous(), False), (admin, False)]:
            found = ids_of(svc.match(Side.achievement, aid, k=50, viewer=viewer))
            assert (demand.id in found) is sees, (viewer, aid)
    assert checked, "the confidential demand is among some achievement's best 50"
    gaps_admin = sum(svc.store.supply_gaps(admin).values())
    gaps_all = sum(svc.store.supply_gaps(broker).values())
    assert gaps_admin <= gaps_all


def test_a_lost_job_is_repaired_by_matches_verify(demo_copy):
    """Redis unreachable at write time: the job stays pending; ``matches verify`` runs it."""
    svc = demo_copy.extensions["techmatch.matcher"]

    class DownQueue:
        def enqueue(self, *args):
            raise ConnectionError("redis is down")

    svc.outbox.queue = DownQueue()
    uni = svc.list_records(Side.achievement, per_page=1)[0][0].organisation_id
    a = svc.create_achievement(data=achievement_data(uni))
    assert len(svc.outbox.pending(older_than=timedelta(0))) == 1
    assert not svc.store.current(a), "no list yet: the job did not run"
    svc.outbox.queue = None
    result = demo_copy.test_cli_runner().invoke(args=["matches", "verify"])
    assert result.exit_code == 0, result.output
    assert svc.outbox.pending(older_than=timedelta(0)) == []
    assert disagreements(svc, Side.achievement, [a.id]) == []
    assert disagreements(svc, Side.demand) == []


CRASH = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    os.environ["TECHMATCH_INSTANCE"] = sys.argv[1]
    from web import create_app
    import matcher.matchstore as ms
    from tests.conftest import achievement_data

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    ms.MatchStore.enter = die      # killed while the new record enters the other side's lists
    app = create_app({{"TESTING": True, "SECRET_KEY": "x", "CACHE_DIR": sys.argv[3]}})
    with app.app_context():
        svc = app.extensions["techmatch.matcher"]
        svc.create_achievement(data=achievement_data(int(sys.argv[2]), title="进程被杀时写入的成果"))
    print("not killed")
""")


def test_worker_killed_mid_update_is_repaired(demo_copy, encoder):
    svc = demo_copy.extensions["techmatch.matcher"]
    uni = svc.list_records(Side.achievement, per_page=1)[0][0].organisation_id
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CRASH.format(root=str(ROOT)), demo_copy.instance_path,
                           str(uni), str(encoder.cache_dir)], capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    with Session(svc.engine) as session:
        from matcher.models import Achievement

        new = session.exec(select(Achievement).where(Achievement.title == "进程被杀时写入的成果")).one()
    assert len(svc.outbox.pending(older_than=timedelta(0))) == 1, "the job is still pending"
    result = demo_copy.test_cli_runner().invoke(args=["matches", "verify"])
    assert result.exit_code == 0, result.output
    assert disagreements(svc, Side.achievement, [new.id]) == []
    assert disagreements(svc, Side.demand) == []


def test_reads_never_encode(demo_copy, monkeypatch):
    """Detail pages and the API read stored matches: no encoder call at read time."""
    svc = demo_copy.extensions["techmatch.matcher"]
    demand = svc.list_records(Side.demand, per_page=1)[0][0]
    achievement = svc.list_records(Side.achievement, per_page=1)[0][0]

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder was called on a read")

    monkeypatch.setattr(svc.encoder, "encode", refuse)
    client = demo_copy.test_client()
    for url in (f"/demands/{demand.id}", f"/achievements/{achievement.id}",
                f"/api/v1/demands/{demand.id}/matches", f"/api/v1/achievements/{achievement.id}/matches?k=20"):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    results = client.get(f"/api/v1/demands/{demand.id}/matches").json["results"]
    assert results and all("explanation" in r and "checks" in r["breakdown"] for r in results)
