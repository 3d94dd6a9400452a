"""The broker workspace in the JSON API: matches, queue, failures, notifications, subscriptions, calls, stats."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select

from matcher.models import User
from tests.web.test_api import headers, make_tokens


@pytest.fixture
def tokens(app, world):
    return make_tokens(app)


def api(client, tokens, who, method, path, body=None):
    kw = {"json": body} if body is not None else {}
    return client.open(f"/api/v1{path}", method=method, headers=headers(tokens, who), **kw)


def is_error(resp, code):
    assert resp.status_code == code, resp.get_data(True)
    assert set(resp.json["error"]) == {"code", "message", "fields"} and resp.json["error"]["code"] == code
    return resp.json["error"]


def user_id(app, name):
    with Session(app.extensions["techmatch.engine"]) as s:
        return s.exec(select(User.id).where(User.username == name)).one()


def recommend(client, tokens, world, demand=None, achievement=None):
    resp = api(client, tokens, "broker", "POST", "/matches",
               {"demand_id": (demand or world.demand).id, "achievement_id": (achievement or world.achievement).id,
                "note": "铜合金配对"})
    assert resp.status_code == 201, resp.json
    return resp.json


def test_match_pipeline_over_the_api(app, world, client, tokens):
    pair = {"demand_id": world.demand.id, "achievement_id": world.achievement.id}
    for who, code in [(None, 401), ("ent", 403), ("inst", 403), ("admin", 403), ("rival", 403)]:
        is_error(api(client, tokens, who, "POST", "/matches", pair), code)
    created = recommend(client, tokens, world)
    mid = created["id"]
    assert created["state"] == "recommended" and created["state_zh"] == "已推荐"
    assert created["broker_id"] == user_id(app, "broker")
    assert created["demand"]["title"] == world.demand.title
    assert created["achievement"]["organisation_name"] == "南昌测试大学"
    err = is_error(api(client, tokens, "broker", "POST", "/matches", pair), 409)
    assert err["message"].startswith("与当前状态冲突")
    err = is_error(api(client, tokens, "broker", "POST", "/matches", {**pair, "demand_id": 999999}), 422)
    assert "demand_id" in err["fields"]

    patch = lambda who, body: api(client, tokens, who, "PATCH", f"/matches/{mid}", body)  # noqa: E731
    err = is_error(patch("broker", {"state": "married"}), 422)
    assert "state" in err["fields"] and err["fields"]["state"].startswith("状态取值无效")
    is_error(patch("broker", {"state": "negotiating"}), 409)  # nobody answered yet
    is_error(patch("ent", {"state": "negotiating"}), 403)  # brokers only
    is_error(patch("broker", {"state": "interested"}), 403)  # the sides answer for themselves
    is_error(patch("admin", {"state": "interested"}), 403)
    is_error(patch("rival", {"state": "interested"}), 404)
    is_error(patch(None, {"state": "interested"}), 401)
    assert patch("ent", {"state": "interested", "note": "有兴趣"}).json["demand_answer"] == "interested"
    is_error(patch("ent", {"state": "interested"}), 409)  # answered already
    assert patch("inst", {"state": "interested"}).json["state"] == "interested"
    assert patch("broker", {"state": "negotiating"}).json["state"] == "negotiating"
    err = is_error(patch("broker", {"state": "signed", "amount_wan": 80}), 422)
    assert set(err["fields"]) == {"cooperation_mode", "signed_on"}
    err = is_error(patch("broker", {"state": "signed", "amount_wan": -1, "cooperation_mode": "licence",
                                    "signed_on": "2026-05-01"}), 422)
    assert "amount_wan" in err["fields"]
    signed = patch("broker", {"state": "signed", "amount_wan": 80, "cooperation_mode": "licence",
                              "signed_on": "2026-05-01"}).json
    assert (signed["state"], signed["amount_wan"], signed["signed_on"]) == ("signed", 80.0, "2026-05-01")
    is_error(patch("broker", {"state": "failed", "reason": "price", "note": "x"}), 409)  # final

    detail = api(client, tokens, "ent", "GET", f"/matches/{mid}").json
    assert [(e["action"], e["from_state"], e["to_state"], e["username"]) for e in detail["events"]] == [
        ("recommend", None, "recommended", "broker"),
        ("demand_interested", "recommended", "recommended", "ent"),
        ("achievement_interested", "recommended", "interested", "inst"),
        ("negotiating", "interested", "negotiating", "broker"),
        ("signed", "negotiating", "signed", "broker"),
    ]
    assert detail["events"][0]["note"] == "铜合金配对" and detail["events"][1]["note"] == "有兴趣"
    for who, code in [("inst", 200), ("admin", 200), ("broker", 200), ("rival", 404), (None, 401)]:
        assert api(client, tokens, who, "GET", f"/matches/{mid}").status_code == code
    assert [m["id"] for m in api(client, tokens, "broker", "GET", "/matches?state=signed").json["items"]] == [mid]
    assert api(client, tokens, "broker", "GET", "/matches?state=failed").json["items"] == []
    assert api(client, tokens, "rival", "GET", "/matches").json["items"] == []
    is_error(api(client, tokens, "broker", "GET", "/matches?state=nope"), 422)


def test_confidential_match_visibility_over_the_api(world, client, tokens):
    mid = recommend(client, tokens, world, demand=world.secret)["id"]
    for who, code in [("ent", 200), ("broker", 200), ("inst", 404), ("admin", 404), ("rival", 404)]:
        assert api(client, tokens, who, "GET", f"/matches/{mid}").status_code == code, who
        listed = [m["id"] for m in api(client, tokens, who, "GET", "/matches").json["items"]]
        assert (mid in listed) is (code == 200), who
    is_error(api(client, tokens, "inst", "PATCH", f"/matches/{mid}", {"state": "interested"}), 404)
    assert api(client, tokens, "broker", "PATCH", f"/matches/{mid}",
               {"state": "interested"}).json["achievement_answer"] == "interested"


def test_broker_queue_and_failures_with_warnings(app, world, client, tokens):
    for who, code in [(None, 401), ("ent", 403), ("inst", 403), ("admin", 403)]:
        is_error(api(client, tokens, who, "GET", "/broker/queue"), code)
    queue = api(client, tokens, "broker", "GET", "/broker/queue?stale_days=3").json
    assert queue["stale_days"] == 3 and queue["mine"] == [] and queue["stale"] == []
    assert (world.demand.id, world.achievement.id) in {
        (c["demand"]["id"], c["achievement"]["id"]) for c in queue["unreviewed"]}
    is_error(api(client, tokens, "broker", "GET", "/broker/queue?stale_days=0"), 422)

    mid = recommend(client, tokens, world)["id"]
    for who in ("ent", "inst"):
        api(client, tokens, who, "PATCH", f"/matches/{mid}", {"state": "interested"})
    err = is_error(api(client, tokens, "broker", "PATCH", f"/matches/{mid}", {"state": "failed"}), 422)
    assert set(err["fields"]) == {"reason", "note"}
    is_error(api(client, tokens, "broker", "PATCH", f"/matches/{mid}",
                 {"state": "failed", "reason": "weather", "note": "x"}), 422)
    failed = api(client, tokens, "broker", "PATCH", f"/matches/{mid}",
                 {"state": "failed", "reason": "maturity", "note": "中试数据不足, 企业要求量产验证"}).json
    assert failed["failure_reason"] == "maturity"
    queue = api(client, tokens, "broker", "GET", "/broker/queue").json
    assert queue["mine"] == []  # final matches leave the queue
    assert (world.demand.id, world.achievement.id) not in {
        (c["demand"]["id"], c["achievement"]["id"]) for c in queue["unreviewed"]}

    for who, code in [(None, 401), ("ent", 403), ("inst", 403)]:
        is_error(api(client, tokens, who, "GET", "/failures"), code)
    items = api(client, tokens, "broker", "GET", "/failures?q=量产").json["items"]
    assert [i["match"]["id"] for i in items] == [mid]
    assert (items[0]["reason_zh"], items[0]["reason_en"]) == ("技术成熟度", "Technology maturity")
    assert api(client, tokens, "admin", "GET", "/failures?q=成熟度").json["items"][0]["match"]["id"] == mid
    assert api(client, tokens, "broker", "GET", "/failures?q=橙汁保鲜").json["items"] == []

    # The match results warn about the failed pairing, for everybody; the id only to who may see it.
    for who, visible in [(None, False), ("ent", True), ("rival", False), ("broker", True)]:
        results = api(client, tokens, who, "GET", f"/demands/{world.demand.id}/matches?k=5").json["results"]
        by_id = {r["achievement"]["id"]: r["warnings"] for r in results}
        assert [w["reason"] for w in by_id[world.achievement.id]] == ["maturity"], who
        warning = by_id[world.achievement.id][0]
        assert warning["message_zh"] == "类似的对接曾因技术成熟度失败"
        assert warning["message_en"] == "a similar pairing failed on technology maturity"
        assert warning["match_id"] == (mid if visible else None), who
        assert by_id.get(world.other.id, []) == []
    back = api(client, tokens, "inst", "GET", f"/achievements/{world.achievement.id}/matches?k=5").json
    assert [w["reason"] for r in back["results"] if r["demand"]["id"] == world.demand.id
            for w in r["warnings"]] == ["maturity"]


def test_notifications_in_process(app, world, client, tokens):
    """Without Redis the alerts run as the record is written: the enterprise hears of the new achievement."""
    items = api(client, tokens, "ent", "GET", "/notifications").json
    alerts = [n for n in items["items"] if n["kind"] == "match"]
    links = [n["link"] for n in alerts]
    # the copper alloy for the copper demand (the juice technology too, on these two-record
    # sides the ranker finds it good for the copper demand: it is the ranker's call, not ours)
    assert f"/achievements/{world.achievement.id}" in links
    assert set(links) <= {f"/achievements/{world.achievement.id}", f"/achievements/{world.other.id}"}
    assert len(links) == len(set(links))  # one alert per pair
    assert all("新科技成果" in n["title_zh"] and "new achievement" in n["title_en"] for n in alerts)
    assert items["unread"] == len(items["items"]) >= 1
    # the institution heard of no demand: both demands came before its achievements,
    # and nothing about the juice technology went to the copper enterprise
    assert api(client, tokens, "inst", "GET", "/notifications").json["items"] == []
    nid = alerts[0]["id"]
    is_error(api(client, tokens, "rival", "POST", f"/notifications/{nid}/read"), 404)
    is_error(api(client, tokens, None, "GET", "/notifications"), 401)
    read = api(client, tokens, "ent", "POST", f"/notifications/{nid}/read")
    assert read.status_code == 200 and read.json["read"] is True
    after = api(client, tokens, "ent", "GET", "/notifications").json
    assert after["unread"] == items["unread"] - 1
    assert api(client, tokens, "ent", "GET", "/notifications?unread=true").json["items"] == [
        n for n in after["items"] if not n["read"]]
    # newest first
    stamps = [n["created_at"] for n in after["items"]]
    assert stamps == sorted(stamps, reverse=True)


def test_subscriptions(app, world, client, tokens):
    is_error(api(client, tokens, None, "POST", "/subscriptions", {"side": "achievement", "query": "x"}), 401)
    err = is_error(api(client, tokens, "rival", "POST", "/subscriptions", {"side": "things", "query": "x"}), 422)
    assert "side" in err["fields"]
    sub = api(client, tokens, "rival", "POST", "/subscriptions",
              {"side": "achievement", "query": "钕铁硼废料 稀土回收", "industry_chain": "nonferrous"})
    assert sub.status_code == 201 and sub.json["filters"] == {"industry_chain": "nonferrous"}
    other = api(client, tokens, "rival", "POST", "/subscriptions",
                {"side": "achievement", "query": "钕铁硼废料 稀土回收", "industry_chain": "food"}).json
    assert [s["id"] for s in api(client, tokens, "rival", "GET", "/subscriptions").json["items"]] == [
        sub.json["id"], other["id"]]
    assert api(client, tokens, "ent", "GET", "/subscriptions").json["items"] == []
    is_error(api(client, tokens, "ent", "DELETE", f"/subscriptions/{other['id']}"), 404)
    assert api(client, tokens, "rival", "DELETE", f"/subscriptions/{other['id']}").status_code == 204

    new = api(client, tokens, "inst", "POST", "/achievements", {
        "title": "钕铁硼废料短流程再生与稀土回收技术", "industry_chain": "nonferrous", "kind": "technology",
        "description": "氢破碎结合晶界扩散, 由钕铁硼废料直接制备再生磁体并回收稀土, 稀土回收率96%。",
        "trl": 5, "maturity": "pilot"})
    assert new.status_code == 201
    got = [n for n in api(client, tokens, "rival", "GET", "/notifications").json["items"]
           if n["kind"] == "subscription"]
    assert [n["link"] for n in got] == [f"/achievements/{new.json['id']}"]
    assert "钕铁硼废料" in got[0]["title_zh"] and got[0]["body_zh"] == new.json["title"]
    api(client, tokens, "inst", "POST", "/achievements", {   # unrelated: no alert
        "title": "赣南脐橙采后保鲜涂膜", "industry_chain": "food", "kind": "technology",
        "description": "壳聚糖复合涂膜使脐橙常温贮藏90天腐烂率低于3%, 已在果园示范应用。"})
    assert len([n for n in api(client, tokens, "rival", "GET", "/notifications").json["items"]
                if n["kind"] == "subscription"]) == 1


def test_open_calls(app, world, client, tokens):
    today = date.today()
    body = {"demand_id": world.demand.id, "reward_wan": 50, "deadline": str(today + timedelta(days=30))}
    for who, code in [(None, 401), ("inst", 403), ("broker", 403), ("admin", 403), ("rival", 403)]:
        is_error(api(client, tokens, who, "POST", "/calls", body), code)
    err = is_error(api(client, tokens, "ent", "POST", "/calls", {**body, "demand_id": world.secret.id}), 422)
    assert "保密需求" in err["fields"]["demand_id"]
    err = is_error(api(client, tokens, "ent", "POST", "/calls", {**body, "deadline": "2020-01-01"}), 422)
    assert "deadline" in err["fields"]
    is_error(api(client, tokens, "ent", "POST", "/calls", {**body, "reward_wan": 0}), 422)
    call = api(client, tokens, "ent", "POST", "/calls", body)
    assert call.status_code == 201 and call.json["status"] == "open" and call.json["reward_wan"] == 50
    cid = call.json["id"]
    is_error(api(client, tokens, "ent", "POST", "/calls", body), 409)
    detail = api(client, tokens, None, "GET", f"/calls/{cid}").json
    assert detail["suggested_solvers"][0]["achievement"]["id"] == world.achievement.id
    assert detail["suggested_solvers"][0]["good"] is True
    assert [c["id"] for c in api(client, tokens, None, "GET", "/calls").json["items"]] == [cid]

    answer = {"achievement_id": world.achievement.id, "proposal": "以Cu-Ni-Si合金形变时效工艺承接, 三个月完成中试。"}
    for who, code in [(None, 401), ("ent", 403), ("broker", 403)]:
        is_error(api(client, tokens, who, "POST", f"/calls/{cid}/submissions", answer), code)
    sub = api(client, tokens, "inst", "POST", f"/calls/{cid}/submissions", answer)
    assert sub.status_code == 201 and sub.json["verdict"] is None
    is_error(api(client, tokens, "inst", "POST", f"/calls/{cid}/submissions", answer), 409)
    second = api(client, tokens, "inst", "POST", f"/calls/{cid}/submissions",
                 {**answer, "achievement_id": world.other.id}).json
    sid = sub.json["id"]
    # answers: the call's enterprise, brokers and the answering institution see them; others do not
    for who, n in [("ent", 2), ("broker", 2), ("inst", 2), ("rival", 0), (None, 0)]:
        assert len(api(client, tokens, who, "GET", f"/calls/{cid}").json["submissions"]) == n, who

    grade = {"score": 92, "verdict": "winner"}
    for who, code in [(None, 401), ("inst", 403), ("broker", 403), ("rival", 403)]:
        is_error(api(client, tokens, who, "PATCH", f"/calls/{cid}/submissions/{sid}", grade), code)
    is_error(api(client, tokens, "ent", "PATCH", f"/calls/{cid}/submissions/{sid}", {"score": 101,
                                                                                   "verdict": "winner"}), 422)
    is_error(api(client, tokens, "ent", "PATCH", f"/calls/{cid}/submissions/999", grade), 404)
    graded = api(client, tokens, "ent", "PATCH", f"/calls/{cid}/submissions/{sid}", grade).json
    assert (graded["score"], graded["verdict"]) == (92, "winner") and graded["graded_at"]
    is_error(api(client, tokens, "ent", "PATCH", f"/calls/{cid}/submissions/{second['id']}", grade), 409)
    assert api(client, tokens, "ent", "PATCH", f"/calls/{cid}/submissions/{second['id']}",
               {"score": 70, "verdict": "shortlisted"}).status_code == 200
    assert api(client, tokens, None, "GET", f"/calls/{cid}").json["status"] == "awarded"
    is_error(api(client, tokens, "inst", "POST", f"/calls/{cid}/submissions", answer), 409)  # has a winner


def test_stats_access(world, client, tokens):
    for who, code in [(None, 401), ("ent", 403), ("inst", 403), ("rival", 403)]:
        is_error(api(client, tokens, who, "GET", "/stats"), code)
    for who in ("broker", "admin"):
        got = api(client, tokens, who, "GET", "/stats").json
        assert got["funnel"] == {"recommended": 0, "interested": 0, "negotiating": 0, "signed": 0}
        assert got["trl_distribution"]["6"] == 2 and sum(got["trl_distribution"].values()) == 2


NEW_PATHS = {
    "/api/v1/matches": {"get", "post"},
    "/api/v1/matches/{match_id}": {"get", "patch"},
    "/api/v1/broker/queue": {"get"},
    "/api/v1/failures": {"get"},
    "/api/v1/notifications": {"get"},
    "/api/v1/notifications/{notification_id}/read": {"post"},
    "/api/v1/subscriptions": {"get", "post"},
    "/api/v1/subscriptions/{subscription_id}": {"delete"},
    "/api/v1/calls": {"get", "post"},
    "/api/v1/calls/{call_id}": {"get"},
    "/api/v1/calls/{call_id}/submissions": {"post"},
    "/api/v1/calls/{call_id}/submissions/{submission_id}": {"patch"},
    "/api/v1/stats": {"get"},
}
PUBLIC_GETS = {"/api/v1/calls", "/api/v1/calls/{call_id}"}


def test_openapi_documents_the_workspace(client):
    doc = client.get("/api/v1/openapi.json").json
    paths = {p: set(ops) for p, ops in doc["paths"].items()}
    assert {p: paths.get(p) for p in NEW_PATHS} == NEW_PATHS
    schemas = doc["components"]["schemas"]
    for path in NEW_PATHS:
        for method, op in doc["paths"][path].items():
            assert op["summary"] and op["operationId"], (path, method)
            security = op["security"]
            if path in PUBLIC_GETS and method == "get":
                assert {} in security and {"bearerAuth": []} in security, path
            else:
                assert security == [{"bearerAuth": []}], (path, method)
            ok = {"get": "200", "post": "201", "patch": "200", "delete": "204"}[method]
            if path.endswith("/read"):
                ok = "200"
            assert ok in op["responses"] and "401" in op["responses"], (path, method)
            if method in ("post", "patch") and not path.endswith("/read"):
                name = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schemas[name]["additionalProperties"] is False, (path, method)
    assert "warnings" in schemas["AchievementResult"]["properties"]
    patch = doc["paths"]["/api/v1/matches/{match_id}"]["patch"]["responses"]
    assert {"403", "404", "409", "422"} <= set(patch)


def test_deleted_ids_are_never_handed_out_again(app, world, client, tokens):
    """Issue 11, finding 1: a broker's demand for another organisation, a match on it with a
    private note, the demand deleted; the next demand of another organisation must not get the
    same id, nor inherit the match, its note, audit trail or open call."""
    created = api(client, tokens, "broker", "POST", "/demands", {
        "organisation_id": world.rival, "title": "经纪人代发的需求", "industry_chain": "nonferrous",
        "description": "代竞争企业发布: 铜合金带材抗拉强度提升到600MPa, 导电率不低于65%IACS。"})
    assert created.status_code == 201, created.json
    old_id = created.json["id"]
    match = api(client, tokens, "broker", "POST", "/matches", {
        "demand_id": old_id, "achievement_id": world.achievement.id, "note": "私密备注: 报价底线 80 万"})
    assert match.status_code == 201, match.json
    assert api(client, tokens, "broker", "DELETE", f"/demands/{old_id}").status_code == 204
    new = api(client, tokens, "ent", "POST", "/demands", {
        "title": "企业自己的新需求", "industry_chain": "nonferrous",
        "description": "引线框架冲压模具寿命提高, 毛刺控制在5微米以内, 寻求合作开发。"})
    assert new.status_code == 201, new.json
    assert new.json["id"] > old_id, "a deleted record's id is never given to another record"
    # the enterprise sees neither the deleted demand nor the match on it, and cannot move it
    assert api(client, tokens, "ent", "GET", f"/demands/{old_id}").status_code == 404
    assert api(client, tokens, "ent", "GET", f"/matches/{match.json['id']}").status_code == 404
    assert api(client, tokens, "ent", "PATCH", f"/matches/{match.json['id']}",
               {"state": "interested"}).status_code == 404
    # the broker still sees the match, its note and its record (kept for the audit trail)
    kept = api(client, tokens, "broker", "GET", f"/matches/{match.json['id']}")
    assert kept.status_code == 200 and kept.json["demand_id"] == old_id
    assert "私密备注" in kept.json["note"]
    with Session(app.extensions["techmatch.engine"]) as s:
        from matcher.models import Demand

        row = s.get(Demand, old_id)
        assert row is not None and row.deleted_at is not None
