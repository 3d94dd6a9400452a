"""The JSON API: who may do what (an access matrix over every role), and who sees what."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import Session, select

from matcher.models import Side, User
from web.security import issue_token

ROLES = [None, "ent", "rival", "inst", "broker", "admin"]  # None: anonymous
OUTSIDERS = [None, "rival", "inst", "admin"]  # may not see the confidential demand of "ent"
INSIDERS = ["ent", "broker"]


def make_tokens(app) -> dict[str, str]:
    """A bearer token for each user of the app."""
    engine = app.extensions["techmatch.engine"]
    with Session(engine) as session:
        users = {u.username: u.id for u in session.exec(select(User)).all()}
    return {name: issue_token(engine, uid)[0] for name, uid in users.items()}


@pytest.fixture
def tokens(app, world):
    return make_tokens(app)


def headers(tokens, who):
    return {"Authorization": f"Bearer {tokens[who]}"} if who else {}


def new_demand(org=None, **kw):
    body = {"title": "稀土永磁废料高值化回收", "industry_chain": "nonferrous", "region": "赣州市",
            "description": "钕铁硼废料年产300吨, 希望开发低酸耗的稀土元素分离回收工艺, 回收率95%以上。",
            "cooperation_modes": ["joint_development"], "required_trl": 4}
    if org is not None:
        body["organisation_id"] = org
    return {**body, **kw}


def new_achievement(org=None, **kw):
    body = {"title": "钕铁硼废料短流程再生技术", "industry_chain": "nonferrous", "kind": "technology",
            "description": "氢破碎结合晶界扩散, 由废旧磁体直接制备再生磁体, 磁性能恢复到原料的95%。",
            "trl": 5, "maturity": "pilot", "transfer_modes": ["licence"]}
    if org is not None:
        body["organisation_id"] = org
    return {**body, **kw}


# Every endpoint, in an order where the destructive calls come last.  Paths name
# records of the world in braces; the expected status is given per role, or one
# status for every role.
def cases(w):
    anyone = {r: 200 for r in ROLES}
    insiders_only = {r: (200 if r in INSIDERS else 404) for r in ROLES}
    return [
        ("GET", "/demands", None, anyone),
        ("GET", f"/demands/{w.demand.id}", None, anyone),
        ("GET", f"/demands/{w.secret.id}", None, insiders_only),
        ("GET", "/demands/999999", None, {r: 404 for r in ROLES}),
        ("GET", f"/demands/{w.demand.id}/matches?k=3", None, anyone),
        ("GET", f"/demands/{w.secret.id}/matches?k=3", None, insiders_only),
        ("GET", "/achievements", None, anyone),
        ("GET", f"/achievements/{w.achievement.id}", None, anyone),
        ("GET", "/achievements/999999", None, {r: 404 for r in ROLES}),
        ("GET", f"/achievements/{w.achievement.id}/matches?k=3", None, anyone),
        ("GET", "/search?q=铜合金&side=demands", None, anyone),
        ("GET", "/search?q=铜合金&side=achievements", None, anyone),
        ("GET", "/openapi.json", None, anyone),
        ("POST", "/demands", new_demand(w.ent),
         {None: 401, "ent": 201, "rival": 403, "inst": 403, "broker": 201, "admin": 403}),
        ("POST", "/achievements", new_achievement(w.uni),
         {None: 401, "ent": 403, "rival": 403, "inst": 201, "broker": 201, "admin": 403}),
        ("PATCH", f"/demands/{w.demand.id}", {"budget_wan": 120},
         {None: 401, "ent": 200, "rival": 403, "inst": 403, "broker": 200, "admin": 403}),
        ("PATCH", f"/demands/{w.secret.id}", {"budget_wan": 120},
         {None: 401, "ent": 200, "rival": 404, "inst": 404, "broker": 200, "admin": 404}),
        ("PATCH", f"/achievements/{w.achievement.id}", {"asking_price_wan": 90},
         {None: 401, "ent": 403, "rival": 403, "inst": 200, "broker": 200, "admin": 403}),
        ("PATCH", "/achievements/999999", {"asking_price_wan": 90},
         {None: 401, "ent": 404, "rival": 404, "inst": 404, "broker": 404, "admin": 404}),
        ("DELETE", f"/demands/{w.secret.id}", None,
         {None: 401, "ent": 204, "rival": 404, "inst": 404, "broker": 204, "admin": 404}),
        ("DELETE", f"/demands/{w.demand.id}", None,
         {None: 401, "ent": 204, "rival": 403, "inst": 403, "broker": 204, "admin": 403}),
        ("DELETE", f"/achievements/{w.other.id}", None,
         {None: 401, "ent": 403, "rival": 403, "inst": 204, "broker": 204, "admin": 403}),
    ]


@pytest.mark.parametrize("role", ROLES, ids=[r or "anonymous" for r in ROLES])
def test_role(app, world, client, tokens, role):
    """What each role sees, then what it may do (one world per role: building one is slow)."""
    check_confidential(world, client, tokens, role)
    check_contacts(world, client, tokens, role)
    check_access(app, world, client, tokens, role)


def check_confidential(world, client, tokens, role):
    """The confidential demand in lists (any status), detail, matches and search: insiders only."""
    h = headers(tokens, role)
    secret = world.secret.id
    visible = role in INSIDERS

    listed = client.get("/api/v1/demands?per_page=100", headers=h).json
    assert (secret in [d["id"] for d in listed["items"]]) is visible
    assert listed["total"] == (2 if visible else 1)
    for status in ("open", "matched", "closed"):
        items = client.get(f"/api/v1/demands?status={status}", headers=h).json["items"]
        assert visible or secret not in [d["id"] for d in items]

    assert client.get(f"/api/v1/demands/{secret}", headers=h).status_code == (200 if visible else 404)

    for achievement in (world.achievement.id, world.other.id):
        found = client.get(f"/api/v1/achievements/{achievement}/matches?k=50", headers=h).json["results"]
        assert (secret in [r["demand"]["id"] for r in found]) is visible

    found = client.get("/api/v1/search?q=含砷烟尘无害化处理&side=demands&k=50", headers=h).json["results"]
    assert (secret in [r["demand"]["id"] for r in found]) is visible
    if visible:
        assert found[0]["demand"]["id"] == secret


def check_contacts(world, client, tokens, role):
    """Demand contacts only for brokers and the own organisation, wherever a demand appears."""
    h = headers(tokens, role)
    contacts = ("contact_name", "contact_phone", "contact_email")
    shown = role in INSIDERS
    demand = client.get(f"/api/v1/demands/{world.demand.id}", headers=h).json
    listed = client.get("/api/v1/demands", headers=h).json["items"]
    matched = client.get(f"/api/v1/achievements/{world.achievement.id}/matches?k=5",
                         headers=h).json["results"]
    for item in [demand, *listed, *[r["demand"] for r in matched]]:
        assert all((c in item) is shown for c in contacts), item
        assert item["organisation_name"] == "赣鹰铜材(测试)"
    if shown:
        assert demand["contact_phone"] == "0701-5550101"


def check_access(app, world, client, tokens, role):
    """Every endpoint answers the role as the table in ``cases`` says, and failures write nothing."""
    svc = app.extensions["techmatch.matcher"]
    wrong = []
    for method, path, body, expected in cases(world):
        before = (svc.count(Side.demand), svc.count(Side.achievement))
        resp = client.open(f"/api/v1{path}", method=method, json=body, headers=headers(tokens, role))
        after = (svc.count(Side.demand), svc.count(Side.achievement))
        want = expected[role]
        if resp.status_code != want:
            wrong.append(f"{method} {path}: {resp.status_code}, expected {want}: {resp.get_data(True)[:200]}")
        if resp.status_code >= 400:
            assert resp.is_json and set(resp.json["error"]) == {"code", "message", "fields"}
            assert resp.json["error"]["code"] == resp.status_code
            assert after == before, f"{method} {path} failed but wrote"
        if method == "POST" and want == 201:
            assert resp.json["id"] and after[0] + after[1] == before[0] + before[1] + 1
        if method == "DELETE" and want == 204:
            assert resp.get_data() == b"" and sum(after) == sum(before) - 1
    assert not wrong, "\n".join(wrong)


def test_enterprise_creates_for_its_own_organisation(app, world, client, tokens):
    resp = client.post("/api/v1/demands", json=new_demand(deadline="2027-06-30"),
                       headers=headers(tokens, "ent"))
    assert resp.status_code == 201, resp.json
    created = resp.json
    assert created["organisation_id"] == world.ent
    assert created["organisation_name"] == "赣鹰铜材(测试)"
    assert created["deadline"] == "2027-06-30" and created["status"] == "open"
    assert created["cooperation_modes"] == ["joint_development"]
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert resp.headers["Location"].endswith(f"/api/v1/demands/{created['id']}")
    got = client.get(resp.headers["Location"], headers=headers(tokens, "ent"))
    assert got.status_code == 200 and got.json == created


def test_creation_rules(app, world, client, tokens):
    svc = app.extensions["techmatch.matcher"]
    before = svc.count(Side.demand)
    resp = client.post("/api/v1/demands", json=new_demand(), headers=headers(tokens, "broker"))
    assert resp.status_code == 422 and "organisation_id" in resp.json["error"]["fields"]
    resp = client.post("/api/v1/demands", json=new_demand(987654), headers=headers(tokens, "broker"))
    assert resp.status_code == 422 and "organisation_id" in resp.json["error"]["fields"]
    assert svc.count(Side.demand) == before
    resp = client.post("/api/v1/achievements", json=new_achievement(world.uni),
                       headers=headers(tokens, "broker"))
    assert resp.status_code == 201 and resp.json["organisation_id"] == world.uni
    # A caller who may not write gets 401/403 whatever they send, never field messages.
    assert client.post("/api/v1/demands", json={"x": 1}).status_code == 401
    assert client.post("/api/v1/demands", json={"x": 1}, headers=headers(tokens, "inst")).status_code == 403
    assert client.post("/api/v1/achievements", json={}, headers=headers(tokens, "admin")).status_code == 403


def test_reads(world, client):
    """Serialisation, matches, search, list filters and paging (one world: building one is slow)."""
    achievement = client.get(f"/api/v1/achievements/{world.achievement.id}").json
    assert achievement["kind"] == "patent" and achievement["maturity"] == "pilot"
    assert achievement["transfer_modes"] == ["licence", "joint_development"]
    assert achievement["organisation_name"] == "南昌测试大学"
    assert achievement["industry_chain"] == "nonferrous" and achievement["status"] == "available"
    assert datetime.fromisoformat(achievement["updated_at"])

    results = client.get(f"/api/v1/demands/{world.demand.id}/matches?k=2").json["results"]
    assert [r["achievement"]["id"] for r in results][0] == world.achievement.id
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    top = results[0]
    assert isinstance(top["good"], bool) and 0 <= top["strength"] <= 1
    assert {"shared_terms", "best_pair", "checks"} <= set(top["explanation"])
    filtered = client.get(f"/api/v1/demands/{world.demand.id}/matches?industry_chain=food").json
    assert [r["achievement"]["id"] for r in filtered["results"]] == [world.other.id]

    found = client.get("/api/v1/search?q=橙汁杀菌").json["results"]  # achievements by default
    assert found[0]["achievement"]["id"] == world.other.id
    assert isinstance(found[0]["score"], float)

    page = client.get("/api/v1/achievements?per_page=1&page=2").json
    assert page["total"] == 2 and page["page"] == 2 and page["per_page"] == 1
    assert [a["id"] for a in page["items"]] == [world.achievement.id]  # newest first
    food = client.get("/api/v1/achievements?industry_chain=food").json
    assert [a["id"] for a in food["items"]] == [world.other.id]
    assert client.get("/api/v1/achievements?min_trl=9").json["total"] == 0
    assert client.get("/api/v1/achievements?cooperation_mode=licence").json["total"] == 2
    assert client.get("/api/v1/achievements?cooperation_mode=equity").json["total"] == 0
    assert client.get("/api/v1/demands?region=鹰潭市").json["total"] == 1
    assert client.get("/api/v1/achievements?status=withdrawn").json["items"] == []
    assert client.get(f"/api/v1/achievements?organisation_id={world.uni}").json["total"] == 2


def test_owner_updates_and_deletes(app, world, client, tokens):
    h = headers(tokens, "ent")
    resp = client.patch(f"/api/v1/demands/{world.demand.id}", json={"status": "matched", "region": "南昌市"},
                        headers=h)
    assert resp.status_code == 200
    assert resp.json["status"] == "matched" and resp.json["region"] == "南昌市"
    assert resp.json["title"] == world.demand.title  # untouched fields stay
    assert client.delete(f"/api/v1/demands/{world.demand.id}", headers=h).status_code == 204
    assert client.get(f"/api/v1/demands/{world.demand.id}", headers=h).status_code == 404
