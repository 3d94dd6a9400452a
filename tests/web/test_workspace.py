"""The broker workspace pages: access for every role, the match pipeline through the forms,
CSRF, injection, open calls, notifications and statistics."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

from sqlmodel import Session, func, select

from matcher import calls, workflow
from matcher.models import Match, MatchCreate, MatchEvent, Notification, OpenCallCreate, User
from matcher.visibility import Viewer
from tests.conftest import achievement_data, demand_data
from tests.web.conftest import login

ROLES = ["anonymous", "ent", "rival", "inst", "broker", "admin"]
OK, LOGIN, FORBIDDEN, MISSING = 200, 302, 403, 404
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def text(response) -> str:
    return response.get_data(as_text=True)


def engine(app):
    return app.extensions["techmatch.engine"]


def viewer(app, username: str) -> Viewer:
    with Session(engine(app)) as s:
        u = s.exec(select(User).where(User.username == username)).one()
        return Viewer(user_id=u.id, organisation_id=u.organisation_id, role=u.role)


def recommend(app, demand_id: int, achievement_id: int, note: str = "") -> int:
    m = workflow.recommend(engine(app), actor=viewer(app, "broker"),
                           data=MatchCreate(demand_id=demand_id, achievement_id=achievement_id, note=note))
    return m.id


def as_user(app, name: str):
    client = app.test_client()
    if name != "anonymous":
        assert login(client, name).status_code == 302
    return client


def state_of(app, match_id: int) -> str:
    with Session(engine(app)) as s:
        return s.get(Match, match_id).state


def events_of(app, match_id: int) -> int:
    with Session(engine(app)) as s:
        return s.exec(select(func.count()).select_from(MatchEvent).where(MatchEvent.match_id == match_id)).one()


def match_id_of(response) -> int:
    assert response.status_code == 302, response.status_code
    return int(re.search(r"/matches/(\d+)$", response.headers["Location"]).group(1))


# --- access ---------------------------------------------------------------------------------------

def test_access_matrix(app, world):
    m = recommend(app, world.demand.id, world.achievement.id)
    secret_m = recommend(app, world.secret.id, world.achievement.id)
    call = calls.create_call(engine(app), actor=viewer(app, "ent"), data=OpenCallCreate(
        demand_id=world.demand.id, reward_wan=50, deadline=date.today() + timedelta(days=30)))
    d, s = world.demand.id, world.secret.id
    matrix = [
        ("/workspace", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN]),
        ("/workspace?days=3", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN]),
        ("/matches", [LOGIN, OK, OK, OK, OK, OK]),
        ("/matches?state=recommended", [LOGIN, OK, OK, OK, OK, OK]),
        (f"/matches/{m}", [LOGIN, OK, MISSING, OK, OK, OK]),
        (f"/matches/{secret_m}", [LOGIN, OK, MISSING, MISSING, OK, MISSING]),
        ("/matches/99999", [LOGIN, MISSING, MISSING, MISSING, MISSING, MISSING]),
        ("/failures", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, OK]),
        ("/failures?q=价格&reason=price", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, OK]),
        ("/notifications", [LOGIN, OK, OK, OK, OK, OK]),
        ("/calls", [OK] * 6),
        (f"/calls/{call.id}", [OK] * 6),
        ("/calls/99999", [MISSING] * 6),
        (f"/calls/new?demand={d}", [LOGIN, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN]),
        (f"/calls/new?demand={s}", [LOGIN, OK, MISSING, FORBIDDEN, FORBIDDEN, FORBIDDEN]),
        ("/calls/new?demand=99999", [LOGIN, MISSING, MISSING, FORBIDDEN, FORBIDDEN, FORBIDDEN]),
        ("/stats", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, OK]),
    ]
    wrong = []
    for column, role in enumerate(ROLES):
        client = as_user(app, role)
        for url, expected in matrix:
            got = client.get(url).status_code
            if got != expected[column]:
                wrong.append((role, url, expected[column], got))
        # writes: anonymous to sign-in, others by role; nothing changes
        post = client.post(f"/matches/{m}", data={"state": "negotiating"}).status_code
        expected_post = {"anonymous": LOGIN, "rival": MISSING, "admin": FORBIDDEN, "broker": 409}.get(role, 403)
        if post != expected_post:
            wrong.append((role, f"POST /matches/{m}", expected_post, post))
        rec = client.post("/matches/recommend", data={"demand_id": d, "achievement_id": world.other.id})
        expected_rec = {"anonymous": LOGIN, "broker": LOGIN}.get(role, FORBIDDEN)  # broker: 302 to the match
        if rec.status_code != expected_rec:
            wrong.append((role, "POST /matches/recommend", expected_rec, rec.status_code))
    assert wrong == [], "(role, url, expected, got)"
    assert state_of(app, m) == "recommended" and events_of(app, m) == 1
    with Session(engine(app)) as session:  # only the broker's recommendation was written
        assert session.exec(select(func.count()).select_from(Match)).one() == 3


def test_anonymous_sees_the_sign_in_link_not_the_bell(client, world):
    page = text(client.get("/"))
    assert 'class="bell"' not in page and "/auth/login" in page


# --- the pipeline through the forms ---------------------------------------------------------------

def test_pipeline_recommend_answer_negotiate_sign(app, world):
    broker, ent, inst = as_user(app, "broker"), as_user(app, "ent"), as_user(app, "inst")
    # the broker recommends from the demand page's button
    page = text(broker.get(f"/demands/{world.demand.id}"))
    assert "推荐对接" in page and 'action="/matches/recommend"' in page
    m = match_id_of(broker.post("/matches/recommend", data={
        "demand_id": world.demand.id, "achievement_id": world.achievement.id, "note": "技术指标吻合",
        "next": f"/demands/{world.demand.id}"}))
    assert state_of(app, m) == "recommended"
    # the same pair again: refused with a message, nothing added
    again = broker.post("/matches/recommend", data={"demand_id": world.demand.id,
                                                    "achievement_id": world.achievement.id,
                                                    "next": f"/demands/{world.demand.id}"},
                        follow_redirects=True)
    assert "未重复推荐" in text(again)
    assert f"/matches/{m}" in text(broker.get(f"/demands/{world.demand.id}"))  # link to the live match

    # a forbidden transition: refused with a message, nothing written
    before = events_of(app, m)
    refused = broker.post(f"/matches/{m}", data={"state": "signed", "amount_wan": "10",
                                                 "cooperation_mode": "licence", "signed_on": "2026-01-05"})
    assert refused.status_code == 409 and "状态转换不允许" in text(refused)
    refused = ent.post(f"/matches/{m}", data={"state": "negotiating"})
    assert refused.status_code == 403 and "您无权执行此操作" in text(refused)
    assert state_of(app, m) == "recommended" and events_of(app, m) == before
    english = broker.post(f"/matches/{m}?lang=en", data={"state": "negotiating"})
    assert english.status_code == 409 and "transition not allowed" in text(english)
    broker.get("/?lang=zh")  # the language sticks to the session

    # both sides see their buttons and answer
    page = text(ent.get(f"/matches/{m}"))
    assert "有意向" in page and "婉拒" in page and "进入洽谈" not in page
    assert ent.post(f"/matches/{m}", data={"state": "interested"}).status_code == 302
    assert state_of(app, m) == "recommended"
    page = text(ent.get(f"/matches/{m}"))
    assert 'value="interested"' not in page  # answered already
    assert inst.post(f"/matches/{m}", data={"state": "interested"}).status_code == 302
    assert state_of(app, m) == "interested"

    # the broker negotiates, then signs: missing fields land on their fields, nothing written
    assert "进入洽谈" in text(broker.get(f"/matches/{m}"))
    assert broker.post(f"/matches/{m}", data={"state": "negotiating"}).status_code == 302
    before = events_of(app, m)
    bad = broker.post(f"/matches/{m}", data={"state": "signed", "amount_wan": "", "signed_on": ""})
    page = text(bad)
    assert bad.status_code == 422
    assert "签约金额(万元)为必填项" in page and "合作方式为必填项" in page and "签约日期为必填项" in page
    assert 'id="amount_wan-error"' in page and 'aria-invalid="true"' in page
    bad = broker.post(f"/matches/{m}", data={"state": "signed", "amount_wan": "-3",
                                             "cooperation_mode": "licence", "signed_on": "2026-11-01"})
    assert bad.status_code == 422 and "id=\"amount_wan-error\"" in text(bad)
    assert state_of(app, m) == "negotiating" and events_of(app, m) == before
    done = broker.post(f"/matches/{m}", data={"state": "signed", "amount_wan": "120.5",
                                              "cooperation_mode": "licence", "signed_on": "2026-11-01",
                                              "note": "签约完成"}, follow_redirects=True)
    page = text(done)
    assert done.status_code == 200 and "状态已更新" in page
    assert state_of(app, m) == "signed"
    assert "120.5 万元" in page and "技术许可" in page
    # the audit trail lists every step in order
    trail = page.split("操作记录", 1)[1]
    actions = re.findall(r"<code>([a-z_]+)</code>", trail)
    assert actions == ["recommend", "demand_interested", "achievement_interested", "negotiating", "signed"]
    assert "可执行的操作" not in page  # final: no more buttons
    en = text(broker.get(f"/matches/{m}?lang=en"))
    assert "Audit trail" in en and "Signed" in en

    # the enterprise was notified: the bell counts, the list marks read
    page = text(ent.get("/"))
    count = int(re.search(r'class="bell-count"[^>]*>(\d+)<', page).group(1))
    assert count >= 1
    with Session(engine(app)) as s:
        uid = s.exec(select(User.id).where(User.username == "ent")).one()
        first = s.exec(select(Notification).where(Notification.user_id == uid,
                                                  Notification.link == f"/matches/{m}")
                       .order_by(Notification.id)).first()
    assert "技术经纪人推荐对接" in text(ent.get("/notifications"))
    opened = ent.post(f"/notifications/{first.id}/read", data={"open": "1"})
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/matches/{m}")
    page = text(ent.get("/"))
    after = re.search(r'class="bell-count"[^>]*>(\d+)<', page)
    assert (int(after.group(1)) if after else 0) == count - 1
    assert inst.post(f"/notifications/{first.id}/read").status_code == 404  # not theirs


def test_failed_with_reason_feeds_the_library_and_warns(app, world):
    broker, ent, inst = as_user(app, "broker"), as_user(app, "ent"), as_user(app, "inst")
    m = match_id_of(broker.post("/matches/recommend", data={"demand_id": world.demand.id,
                                                            "achievement_id": world.other.id}))
    # a match may not fail before both sides are interested
    refused = broker.post(f"/matches/{m}", data={"state": "failed", "reason": "price", "note": "太贵"})
    assert refused.status_code == 409 and state_of(app, m) == "recommended"
    for client in (ent, inst):
        assert client.post(f"/matches/{m}", data={"state": "interested"}).status_code == 302
    bad = broker.post(f"/matches/{m}", data={"state": "failed", "reason": "", "note": ""})
    assert bad.status_code == 422
    assert "失败原因为必填项" in text(bad) and "请说明失败经过" in text(bad)
    assert state_of(app, m) == "interested"
    assert broker.post(f"/matches/{m}", data={"state": "failed", "reason": "price",
                                              "note": "报价与预算差距过大"}).status_code == 302
    assert state_of(app, m) == "failed"
    page = text(broker.get("/failures?q=价格"))
    assert "报价与预算差距过大" in page and f"/matches/{m}" in page
    assert "报价与预算差距过大" not in text(broker.get("/failures?q=知识产权"))
    assert "Price" in text(broker.get("/failures?lang=en"))
    broker.get("/?lang=zh")
    # the demand page warns beside the failed pair
    page = text(broker.get(f"/demands/{world.demand.id}"))
    assert "类似的对接曾因价格失败" in page
    assert "类似的对接曾因价格失败" not in text(ent.get(f"/demands/{world.demand.id}"))  # brokers only
    # a second attempt at the pair is allowed (the failure is final) and warns on its page
    m2 = match_id_of(broker.post("/matches/recommend", data={"demand_id": world.demand.id,
                                                             "achievement_id": world.other.id}))
    assert "类似的对接曾因价格失败" in text(broker.get(f"/matches/{m2}"))
    # declining ends a match at once
    assert ent.post(f"/matches/{m2}", data={"state": "declined"}).status_code == 302
    assert state_of(app, m2) == "declined"


def test_queue_lists_unreviewed_pairs_mine_and_stale(app, world):
    broker = as_user(app, "broker")
    page = text(broker.get("/workspace"))
    assert "待审核的高分配对" in page and "我负责的对接" in page and "停滞的对接" in page
    pairs = re.findall(r'name="demand_id" value="(\d+)">\s*<input type="hidden" name="achievement_id" '
                       r'value="(\d+)">', page.split('id="unreviewed"', 1)[1].split('id="mine"', 1)[0])
    assert (str(world.demand.id), str(world.achievement.id)) in pairs
    m = match_id_of(broker.post("/matches/recommend", data={"demand_id": world.demand.id,
                                                            "achievement_id": world.achievement.id,
                                                            "next": "/workspace"}))
    page = text(broker.get("/workspace"))
    mine = page.split('id="mine"', 1)[1].split('id="stale"', 1)[0]
    assert f"/matches/{m}" in mine
    unreviewed = page.split('id="unreviewed"', 1)[1].split('id="mine"', 1)[0]
    assert f'name="achievement_id" value="{world.achievement.id}"' not in unreviewed or (
        f'name="demand_id" value="{world.demand.id}"' not in unreviewed)
    stale = text(broker.get("/workspace?days=1")).split('id="stale"', 1)[1]
    assert f"/matches/{m}" not in stale  # active today
    with Session(engine(app)) as s:
        row = s.get(Match, m)
        row.last_activity_at = row.last_activity_at - timedelta(days=20)
        s.add(row)
        s.commit()
    assert f"/matches/{m}" in text(broker.get("/workspace?days=14")).split('id="stale"', 1)[1]
    assert broker.get("/workspace?days=abc").status_code == 200


# --- open calls -------------------------------------------------------------------------------

def test_open_call_publish_answer_and_grade(app, world):
    ent, inst, rival = as_user(app, "ent"), as_user(app, "inst"), as_user(app, "rival")
    svc = app.extensions["techmatch.matcher"]
    weak = svc.create_demand(data=demand_data(
        world.ent, title="养老院护理排班与服务质量评估咨询", industry_chain="frontier",
        technical_field="养老服务", description="希望为三家养老院设计护工排班制度和服务满意度问卷, 并培训管理人员。"))
    page = text(ent.get(f"/demands/{weak.id}"))
    assert f'href="/calls/new?demand={weak.id}"' in page  # the owner gets a real link
    assert f"/calls/new?demand={weak.id}" not in text(rival.get(f"/demands/{weak.id}"))
    bad = ent.post(f"/calls/new?demand={weak.id}", data={"reward_wan": "", "deadline": "2020-01-01"})
    assert bad.status_code == 422 and "此项为必填项" in text(bad)
    past = ent.post(f"/calls/new?demand={weak.id}", data={"reward_wan": "30", "deadline": "2020-01-01"})
    assert past.status_code == 422 and "截止日期不能早于今天" in text(past)
    deadline = (date.today() + timedelta(days=20)).isoformat()
    secret = ent.post(f"/calls/new?demand={world.secret.id}", data={"reward_wan": "30", "deadline": deadline})
    assert secret.status_code == 422 and "保密需求不能公开揭榜" in text(secret)
    created = ent.post(f"/calls/new?demand={weak.id}", data={"reward_wan": "30", "deadline": deadline})
    assert created.status_code == 302
    call_id = int(created.headers["Location"].rsplit("/", 1)[1])
    dup = ent.post(f"/calls/new?demand={weak.id}", data={"reward_wan": "30", "deadline": deadline})
    assert dup.status_code == 422 and "已发布为揭榜挂帅" in text(dup)
    assert "养老院护理排班" in text(app.test_client().get("/calls"))

    page = text(inst.get(f"/calls/{call_id}"))
    assert "我要揭榜" in page and world.achievement.title in page
    short = inst.post(f"/calls/{call_id}/submissions", data={"achievement_id": world.achievement.id,
                                                              "proposal": "太短"})
    assert short.status_code == 422 and "长度应在 10" in text(short)
    ok = inst.post(f"/calls/{call_id}/submissions", data={
        "achievement_id": world.achievement.id, "proposal": "我们提供排班优化模型与满意度评价体系, 三个月交付。"})
    assert ok.status_code == 302
    assert rival.post(f"/calls/{call_id}/submissions", data={
        "achievement_id": world.achievement.id, "proposal": "企业不能揭榜, 只有高校院所可以。"}).status_code == 403
    with Session(engine(app)) as s:
        from matcher.models import CallSubmission

        sub = s.exec(select(CallSubmission)).one()
    assert "排班优化模型" not in text(rival.get(f"/calls/{call_id}"))  # answers are not public
    page = text(ent.get(f"/calls/{call_id}"))
    assert "排班优化模型" in page and "保存评审" in page
    bad = ent.post(f"/calls/{call_id}/submissions/{sub.id}/grade", data={f"s{sub.id}-score": "120",
                                                                         f"s{sub.id}-verdict": "winner"})
    assert bad.status_code == 422 and "应在 0 到 100 之间" in text(bad)
    assert inst.post(f"/calls/{call_id}/submissions/{sub.id}/grade",
                     data={f"s{sub.id}-score": "90", f"s{sub.id}-verdict": "winner"}).status_code == 403
    graded = ent.post(f"/calls/{call_id}/submissions/{sub.id}/grade",
                      data={f"s{sub.id}-score": "90", f"s{sub.id}-verdict": "winner"}, follow_redirects=True)
    assert graded.status_code == 200 and "揭榜成功" in text(graded) and "已揭榜" in text(graded)


# --- CSRF, injection -------------------------------------------------------------------------------

def _token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"',
                     page).group(1) or re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login_with_token(client, name: str) -> None:
    page = text(client.get("/auth/login"))
    token = re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/auth/login", data={"username": name, "password": "test-pass-123",
                                            "csrf_token": token}).status_code == 302


def test_csrf_token_required_on_workspace_forms(app, world):
    app.config["WTF_CSRF_ENABLED"] = True
    m = recommend(app, world.demand.id, world.achievement.id)
    broker, ent = app.test_client(), app.test_client()
    _login_with_token(broker, "broker")
    _login_with_token(ent, "ent")
    data = {"demand_id": world.secret.id, "achievement_id": world.other.id}
    assert broker.post("/matches/recommend", data=data).status_code == 400
    assert ent.post(f"/matches/{m}", data={"state": "interested"}).status_code == 400
    with Session(engine(app)) as s:
        n = s.exec(select(Notification).where(Notification.user_id == viewer(app, "ent").user_id)).first()
    assert ent.post(f"/notifications/{n.id}/read").status_code == 400
    assert ent.post(f"/calls/new?demand={world.demand.id}", data={"reward_wan": "3",
                                                                   "deadline": "2099-01-01"}).status_code == 400
    with Session(engine(app)) as s:
        assert s.exec(select(func.count()).select_from(Match)).one() == 1
        assert not s.get(Notification, n.id).read
    assert state_of(app, m) == "recommended"
    # with the page's token it works
    token = _token(text(ent.get(f"/matches/{m}")))
    assert ent.post(f"/matches/{m}", data={"state": "interested", "csrf_token": token}).status_code == 302
    token = _token(text(broker.get(f"/demands/{world.demand.id}")))
    assert broker.post("/matches/recommend", data={**data, "csrf_token": token}).status_code == 302


def test_injection_renders_inert_on_workspace_pages(app, world):
    svc = app.extensions["techmatch.matcher"]
    payload = f"{SCRIPT}{IMG}"
    demand = svc.create_demand(data=demand_data(world.ent, title=f"铜合金带材 {payload}"))
    achievement = svc.create_achievement(data=achievement_data(world.uni, title=f"铜合金形变时效 {payload}"))
    broker, ent, inst = as_user(app, "broker"), as_user(app, "ent"), as_user(app, "inst")
    m = match_id_of(broker.post("/matches/recommend", data={"demand_id": demand.id,
                                                            "achievement_id": achievement.id,
                                                            "note": f"理由{payload}"}))
    ent.post(f"/matches/{m}", data={"state": "interested"})
    inst.post(f"/matches/{m}", data={"state": "interested"})
    assert broker.post(f"/matches/{m}", data={"state": "failed", "reason": "other",
                                              "note": f"经过{payload}"}).status_code == 302
    call = calls.create_call(engine(app), actor=viewer(app, "ent"), data=OpenCallCreate(
        demand_id=demand.id, reward_wan=5, deadline=date.today() + timedelta(days=3)))
    pages = {broker: ["/workspace", "/matches", f"/matches/{m}", "/failures", f"/failures?q={SCRIPT}",
                      "/stats", "/calls", f"/calls/{call.id}", f"/demands/{demand.id}"],
             ent: ["/notifications", f"/matches/{m}", f"/calls/{call.id}"],
             inst: ["/notifications", f"/calls/{call.id}"]}
    for client, urls in pages.items():
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            page = text(response)
            assert "<script>alert" not in page and "<img src=x" not in page, url
    page = text(broker.get(f"/matches/{m}"))
    assert "理由&lt;script&gt;alert(1)&lt;/script&gt;" in page and "经过&lt;script&gt;" in page
    assert "铜合金带材 &lt;script&gt;" in text(ent.get("/notifications"))


# --- statistics -------------------------------------------------------------------------------

def test_stats_page_shows_the_numbers_and_draws_charts(app, world):
    broker, ent, inst = as_user(app, "broker"), as_user(app, "ent"), as_user(app, "inst")
    m = recommend(app, world.demand.id, world.achievement.id)
    for client in (ent, inst):
        client.post(f"/matches/{m}", data={"state": "interested"})
    broker.post(f"/matches/{m}", data={"state": "negotiating"})
    broker.post(f"/matches/{m}", data={"state": "signed", "amount_wan": "10", "cooperation_mode": "licence",
                                       "signed_on": "2026-11-01"})
    f = recommend(app, world.demand.id, world.other.id)
    for client in (ent, inst):
        client.post(f"/matches/{f}", data={"state": "interested"})
    broker.post(f"/matches/{f}", data={"state": "failed", "reason": "timing", "note": "周期太长"})
    assert state_of(app, m) == "signed" and state_of(app, f) == "failed"

    response = broker.get("/stats")
    page = text(response)
    assert response.status_code == 200
    assert re.search(r'id="fig-matches">2<', page) and re.search(r'id="fig-signed">1<', page)
    assert re.search(r'id="fig-conversion">50%<', page)
    funnel = page.split('id="table-funnel"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"已推荐</th><td>2</td>", funnel) and re.search(r"已签约</th><td>1</td><td>1</td>", funnel)
    failures = page.split('id="table-failures"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"时间安排</th><td>1</td>", failures)
    trl = page.split('id="table-trl"', 1)[1].split("</table>", 1)[0]
    assert "<td>2</td>" in trl  # both achievements are TRL 6
    chains = page.split('id="table-chains"', 1)[1].split("</table>", 1)[0]
    assert "有色金属" in chains and "50%" in chains
    # chart data as JSON for static/js/stats.js; the library is served by the app
    data = json.loads(re.search(r'<script type="application/json" id="stats-data">(.*?)</script>', page,
                                re.S).group(1))
    ids = {c["id"] for c in data["charts"]}
    assert ids == {"chart-funnel", "chart-conversion", "chart-gaps", "chart-trl", "chart-failures"}
    assert all(f'<canvas id="{i}"' in page for i in ids)
    funnel_chart = next(c for c in data["charts"] if c["id"] == "chart-funnel")
    assert funnel_chart["datasets"][0]["data"] == [2, 2, 1, 1]  # both reached "interested"
    assert "/static/vendor/chart.umd.min.js" in page and "/static/js/stats.js" in page
    assert "<script>" not in page  # no inline script (the CSP forbids it)
    for asset in ("/static/vendor/chart.umd.min.js", "/static/js/stats.js"):
        response = broker.get(asset)
        assert response.status_code == 200
        response.close()
    en = text(broker.get("/stats?lang=en"))
    assert "Match funnel" in en and "Timing" in en and "Recommended" in en
    assert as_user(app, "admin").get("/stats").status_code == 200


def test_bell_and_nav_for_signed_in_users(app, world):
    recommend(app, world.demand.id, world.achievement.id)
    page = text(as_user(app, "ent").get("/"))
    assert 'class="bell"' in page and 'href="/notifications"' in page and "对接管理" in page
    assert "经纪人工作台" not in page
    page = text(as_user(app, "broker").get("/"))
    assert "经纪人工作台" in page and "平台统计" in page and "失败案例库" in page
