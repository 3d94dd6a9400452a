"""Portal pages: home, lists, details with matches, forms, search, languages, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import Markup

from matcher.models import Side
from tests.conftest import achievement_data, demand_data
from tests.web.conftest import login

WEB = Path(__file__).resolve().parents[2] / "web"


def service(app):
    return app.extensions["techmatch.matcher"]


def text(response) -> str:
    return response.get_data(as_text=True)


def valid_demand(**kw) -> dict:
    data = {
        "title": "稀土永磁电机转子温升控制",
        "description": "我司生产新能源汽车驱动电机, 钕铁硼磁钢在高转速下温升超过120℃, 希望降低涡流损耗, 提高退磁安全裕度。",
        "industry_chain": "nonferrous", "technical_field": "稀土永磁", "region": "赣州市",
        "budget_wan": "50", "deadline": "2027-06-30", "cooperation_modes": ["joint_development"],
        "required_trl": "4", "contact_name": "李工", "contact_phone": "0797-5550123",
        "contact_email": "li@example.com",
    }
    data.update(kw)
    return data


def valid_achievement(**kw) -> dict:
    data = {
        "title": "分段斜极与磁钢分块降低永磁电机涡流损耗技术",
        "description": "通过磁钢轴向分块与分段斜极设计, 使永磁电机转子涡流损耗降低40%, 温升下降25℃, 已在样机上验证。",
        "industry_chain": "nonferrous", "technical_field": "电机设计", "region": "南昌市",
        "kind": "technology", "patent_number": "", "ipc_codes": "H02K 1/27, H02K 15/03", "trl": "6",
        "maturity": "pilot", "transfer_modes": ["licence"], "asking_price_wan": "30", "team": "电机团队",
    }
    data.update(kw)
    return data


# --- home, language ---------------------------------------------------------------------------

def test_home_is_chinese_with_figures_latest_and_search(client, world):
    page = text(client.get("/"))
    assert '<html lang="zh-CN">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "技术需求" in page and "科技成果" in page and "入驻机构" in page
    assert world.demand.title in page and world.achievement.title in page
    assert world.secret.title not in page  # confidential: not for anonymous visitors
    assert 'action="/search"' in page
    # figures count what the viewer may see: 1 public demand, 2 achievements, 4 organisations
    figures = re.findall(r'<span class="figure-number">(\d+)</span>', page)
    assert figures == ["1", "2", "4"]
    login(client, "broker")
    figures = re.findall(r'<span class="figure-number">(\d+)</span>', text(client.get("/")))
    assert figures == ["2", "2", "4"]


def test_assets_are_served_locally(client, world):
    page = text(client.get("/"))
    assert "http://" not in page and "https://" not in page  # no CDN, nothing from the internet
    assert client.get("/static/css/portal.css").status_code == 200
    assert client.get("/static/img/emblem.svg").status_code == 200


def test_english_by_query_and_by_switch(client, world):
    page = text(client.get("/?lang=en"))
    assert '<html lang="en">' in page and "Demands" in page and "Latest achievements" in page
    assert "Non-ferrous metals" in page  # enum labels follow the language
    # ?lang= is remembered for the session
    assert "Latest demands" in text(client.get("/"))
    response = client.get("/lang/zh?next=/demands")
    assert response.status_code == 302 and response.headers["Location"] == "/demands"
    assert "最新技术需求" in text(client.get("/"))
    response = client.get("/lang/en?next=/achievements")
    assert response.headers["Location"] == "/achievements"
    assert "Filter" in text(client.get("/achievements"))


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_language_switch_never_redirects_off_site(client, target):
    response = client.get("/lang/en", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_unknown_language_is_not_found(client):
    assert client.get("/lang/fr").status_code == 404
    assert '<html lang="zh-CN">' in text(client.get("/?lang=fr"))


def test_translations_cover_every_ui_string():
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    with open(WEB / "translations/en/LC_MESSAGES/messages.po", "rb") as f:
        po = read_po(f)
    with open(WEB / "translations/en/LC_MESSAGES/messages.mo", "rb") as f:
        mo = read_mo(f)
    method_map = [("__init__.py", "python"), ("errors.py", "python"), ("auth/**.py", "python"),
                  ("main/**.py", "python"), ("admin/**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    used = {msgid for _, _, msgid, _, _ in extract_from_dir(str(WEB), method_map, keywords=keywords)}
    translated = {m.id: m.string for m in po if m.id and m.string and not m.fuzzy}
    assert used, "extraction found nothing"
    assert sorted(used - set(translated)) == []
    # the compiled catalogue is the .po's current content
    assert {m.id: m.string for m in mo if m.id} == {k: v for k, v in translated.items() if k in used}


# --- lists ---------------------------------------------------------------------------------------

def test_lists_filter_and_paginate(app, client, world):
    svc = service(app)
    svc.bulk_create(Side.demand, [demand_data(world.rival, title=f"批量需求 {i:02d} 陶瓷釉料配方",
                                              industry_chain="building_materials", required_trl=3 + i % 5,
                                              region="景德镇市", cooperation_modes=["consulting"])
                                  for i in range(23)])
    page = text(client.get("/demands"))
    assert "共 24 条" in page and "第 1 / 2 页" in page  # 23 + 1 public; the confidential one hidden
    assert page.count('class="record-row"') == 20
    page2 = text(client.get("/demands?page=2"))
    assert page2.count('class="record-row"') == 4 and 'rel="prev"' in page2
    assert "共 1 条" in text(client.get("/demands?industry_chain=nonferrous"))
    assert "共 23 条" in text(client.get("/demands?region=景德镇市"))
    assert "共 23 条" in text(client.get("/demands?cooperation_mode=consulting"))
    # TRLs of the batch: 3,4,5,6,7 repeating; the world's demand needs TRL 5
    expected = sum(1 for i in range(23) if 3 + i % 5 >= 6)
    assert f"共 {expected} 条" in text(client.get("/demands?min_trl=6"))
    assert "共 0 条" in text(client.get("/demands?status=closed"))
    # unknown filter values are ignored rather than failing
    assert client.get("/demands?industry_chain=bogus&min_trl=x&page=abc").status_code == 200
    assert "共 2 条" in text(client.get("/achievements"))
    assert "共 1 条" in text(client.get("/achievements?industry_chain=food"))


def test_mine_filter_shows_own_organisation(client, world):
    login(client, "rival")
    page = text(client.get("/demands?mine=y"))
    assert "共 0 条" in page
    client.post("/auth/logout")
    login(client, "ent")
    page = text(client.get("/demands?mine=y"))
    assert "共 2 条" in page and world.secret.title in page


# --- confidentiality and contacts ------------------------------------------------------------------

def as_user(app, who):
    """A fresh client signed in as ``who`` (None: anonymous)."""
    client = app.test_client()
    if who:
        assert login(client, who).status_code == 302
    return client


def test_confidential_demand_is_invisible_to_others(app, world):
    for who in [None, "rival", "inst", "admin"]:
        client = as_user(app, who)
        assert world.secret.title not in text(client.get("/demands")), who
        assert world.secret.title not in text(client.get("/")), who
        assert client.get(f"/demands/{world.secret.id}").status_code == 404, who
        found = text(client.get("/search", query_string={"q": "含砷烟尘 固砷"}))
        assert world.secret.title not in re.sub(r"</?mark>", "", found), who
        for achievement in (world.achievement, world.other):
            page = re.sub(r"</?mark>", "", text(client.get(f"/achievements/{achievement.id}")))
            assert world.secret.title not in page, who


def test_confidential_demand_is_visible_to_owner_and_brokers(app, world):
    for who in ["ent", "broker"]:
        client = as_user(app, who)
        assert world.secret.title in text(client.get("/demands")), who
        page = text(client.get(f"/demands/{world.secret.id}"))
        assert world.secret.title in page and "保密" in page, who
        found = text(client.get("/search", query_string={"q": "含砷烟尘 固砷", "side": "demands"}))
        assert world.secret.title in re.sub(r"</?mark>", "", found), who


def test_contact_details_only_for_owner_and_brokers(app, world):
    for who, sees in [(None, False), ("rival", False), ("inst", False), ("admin", False),
                      ("ent", True), ("broker", True)]:
        page = text(as_user(app, who).get(f"/demands/{world.demand.id}"))
        assert ("0701-5550101" in page) is sees, who
        assert ("wang@example.com" in page) is sees, who
        assert ("联系方式仅对需求发布机构和技术经纪人可见" in page) is not sees, who


# --- details and matches ----------------------------------------------------------------------------

def test_demand_detail_explains_its_matches(client, world):
    page = text(client.get(f"/demands/{world.demand.id}"))
    assert world.demand.title in page and "匹配的科技成果" in page
    matches = page.split('id="matches"', 1)[1]
    assert world.achievement.title.split("及其")[0][:6] in re.sub(r"</?mark>", "", matches)
    assert "优质匹配" in matches and "匹配强度" in matches and "综合得分" in matches
    assert "<mark>铜合金</mark>" in matches  # shared term highlighted ...
    assert 'class="pair-query"' in matches and 'class="pair-record"' in matches  # ... in both texts
    pair = re.search(r'class="pair-query">(.*?)</blockquote>.*?class="pair-record">(.*?)</blockquote>',
                     matches, re.S)
    assert "<mark>" in pair.group(1) and "<mark>" in pair.group(2)
    assert "同属产业链" in matches or "产业链" in matches
    assert 'class="check-pass"' in matches
    assert "暂无高质量匹配" not in page
    english = text(client.get(f"/demands/{world.demand.id}?lang=en"))
    assert "Matching research achievements" in english and "Good match" in english
    assert "same industry chain" in english


def test_achievement_detail_lists_matching_demands(client, world):
    page = text(client.get(f"/achievements/{world.achievement.id}"))
    assert "匹配的技术需求" in page and world.demand.title in page.replace("<mark>", "").replace("</mark>", "")
    assert "CN-DEMO-2024-000001" in page and "TRL 6" in page


def test_no_good_match_says_so_and_offers_open_call(app, client, world):
    demand = service(app).create_demand(data=demand_data(
        world.ent, title="养老院护理排班与服务质量评估咨询", industry_chain="frontier",
        technical_field="养老服务", description="希望为三家养老院设计护工排班制度和服务满意度问卷, 并培训管理人员。"))
    page = text(client.get(f"/demands/{demand.id}"))
    assert "暂无高质量匹配" in page
    assert "发布为揭榜挂帅" in page and 'aria-disabled="true"' in page
    assert "No good match yet" in text(client.get(f"/demands/{demand.id}?lang=en"))
    assert "Publish as an open call" in text(client.get(f"/demands/{demand.id}?lang=en"))


def test_missing_records_are_not_found(client, world):
    assert client.get("/demands/99999").status_code == 404
    assert client.get("/achievements/99999").status_code == 404


# --- search ----------------------------------------------------------------------------------------

def test_search_both_sides_and_one_side(client, world):
    page = text(client.get("/search", query_string={"q": "高强高导铜合金"}))
    plain = page.replace("<mark>", "").replace("</mark>", "")
    assert world.demand.title in plain and world.achievement.title in plain
    assert "<mark>" in page
    only = text(client.get("/search", query_string={"q": "高强高导铜合金", "side": "achievements"})).replace(
        "<mark>", "").replace("</mark>", "")
    assert world.achievement.title in only and world.demand.title not in only
    assert client.get("/search").status_code == 200  # the empty form


def test_search_refuses_empty_and_oversize_queries(client, world):
    response = client.get("/search", query_string={"q": "   "})
    assert response.status_code == 400 and "请输入检索内容" in text(response)
    response = client.get("/search", query_string={"q": "铜" * 501})
    assert response.status_code == 400 and "最多 500 个字符" in text(response)


# --- create, edit, delete ---------------------------------------------------------------------------

def test_enterprise_posts_a_demand_for_its_organisation(app, client, world):
    login(client, "ent")
    response = client.post("/demands/new", data=valid_demand())
    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    record = service(app).get(Side.demand, new_id)
    assert record.organisation_id == world.ent and record.title == "稀土永磁电机转子温升控制"
    assert record.cooperation_modes == ["joint_development"] and record.required_trl == 4
    assert record.budget_wan == 50 and str(record.deadline) == "2027-06-30"
    page = text(client.get(response.headers["Location"]))
    assert "已发布" in page and "0797-5550123" in page


def test_broker_posts_for_an_organisation(app, client, world):
    login(client, "broker")
    form = text(client.get("/demands/new"))
    assert "赣鹰铜材(测试)" in form and "南昌测试大学" not in form  # enterprises only
    response = client.post("/demands/new", data=valid_demand(organisation_id=str(world.rival)))
    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert service(app).get(Side.demand, new_id).organisation_id == world.rival
    response = client.post("/achievements/new", data=valid_achievement(organisation_id=str(world.uni)))
    assert response.status_code == 302
    # an organisation of the wrong kind is not a choice
    before = service(app).count(Side.demand)
    response = client.post("/demands/new", data=valid_demand(organisation_id=str(world.uni)))
    assert response.status_code == 422 and service(app).count(Side.demand) == before


def test_institution_lists_an_achievement(app, client, world):
    login(client, "inst")
    response = client.post("/achievements/new", data=valid_achievement())
    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    record = service(app).get(Side.achievement, new_id)
    assert record.organisation_id == world.uni and record.ipc_codes == ["H02K 1/27", "H02K 15/03"]
    assert record.patent_number is None and record.transfer_modes == ["licence"]
    page = text(client.get(response.headers["Location"]))
    assert "H02K 1/27" in page and "匹配的技术需求" in page


def test_owner_edits_a_demand(app, client, world):
    login(client, "ent")
    form = text(client.get(f"/demands/{world.demand.id}/edit"))
    assert world.demand.title in form and 'value="0701-5550101"' in form
    response = client.post(f"/demands/{world.demand.id}/edit",
                           data=valid_demand(title="高强高导铜合金带材工艺优化(二期)", status="matched"))
    assert response.status_code == 302 and response.headers["Location"] == f"/demands/{world.demand.id}"
    record = service(app).get(Side.demand, world.demand.id)
    assert record.title == "高强高导铜合金带材工艺优化(二期)" and record.status == "matched"
    assert "已保存修改" in text(client.get(response.headers["Location"]))


def test_edit_form_shows_ipc_codes_as_text(app, client, world):
    service(app).update_achievement(world.achievement.id, data=__import__(
        "matcher.models", fromlist=["AchievementUpdate"]).AchievementUpdate(ipc_codes=["C22C 9/06", "C22F 1/08"]))
    login(client, "inst")
    assert 'value="C22C 9/06, C22F 1/08"' in text(client.get(f"/achievements/{world.achievement.id}/edit"))


def test_others_cannot_edit_or_delete(app, world):
    for who in ["rival", "inst", "admin"]:
        client = as_user(app, who)
        for record, url, data in [(world.demand, "/demands", valid_demand(title="被篡改")),
                                  (world.achievement, "/achievements", valid_achievement(title="被篡改"))]:
            if who == "inst" and url == "/achievements":
                continue  # its own
            assert client.post(f"{url}/{record.id}/edit", data=data).status_code == 403, who
            assert client.post(f"{url}/{record.id}/delete").status_code == 403, who
    assert service(app).get(Side.demand, world.demand.id).title == world.demand.title
    assert service(app).get(Side.achievement, world.achievement.id).title == world.achievement.title


def test_broker_edits_and_owner_deletes(app, client, world):
    login(client, "broker")
    response = client.post(f"/achievements/{world.other.id}/edit",
                           data=valid_achievement(title="脐橙果汁非热杀菌护色技术(修订)", status="available"))
    assert response.status_code == 302
    assert service(app).get(Side.achievement, world.other.id).title == "脐橙果汁非热杀菌护色技术(修订)"
    client.post("/auth/logout")
    login(client, "ent")
    confirm = text(client.get(f"/demands/{world.demand.id}/delete"))
    assert "删除确认" in confirm and world.demand.title in confirm
    response = client.post(f"/demands/{world.demand.id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/demands"
    assert client.get(f"/demands/{world.demand.id}").status_code == 404
    assert world.demand.title not in text(client.get(f"/achievements/{world.achievement.id}"))


# --- bad input ------------------------------------------------------------------------------------------

BAD_DEMANDS = [
    ({"title": "长" * 201}, "title", "长度应在 2 到 200 个字符之间"),
    ({"title": ""}, "title", "此项为必填项"),
    ({"description": "太短了"}, "description", "长度应在 10 到 20000 个字符之间"),
    ({"description": "长" * 20001}, "description", "长度应在 10 到 20000 个字符之间"),
    ({"technical_field": "域" * 101}, "technical_field", "最多 100 个字符"),
    ({"contact_phone": "1" * 33}, "contact_phone", "最多 32 个字符"),
    ({"contact_phone": "call me maybe"}, "contact_phone", "只能包含数字"),
    ({"contact_email": "not-an-email"}, "contact_email", "请输入有效的电子邮箱地址"),
    ({"budget_wan": "-5"}, "budget_wan", "应在 0 到 10000000 之间"),
    ({"budget_wan": "abc"}, "budget_wan", None),
    ({"deadline": "2026-13-45"}, "deadline", None),
    ({"industry_chain": "bogus"}, "industry_chain", None),
    ({"industry_chain": ""}, "industry_chain", "请选择产业链"),
    ({"required_trl": "12"}, "required_trl", None),
    ({"cooperation_modes": ["barter"]}, "cooperation_modes", None),
    ({"title": "标题\x00含空字符"}, "title", "包含不允许的控制字符"),
    ({"description": "描述里有一个响铃字符\x07和更多文字内容"}, "description", "包含不允许的控制字符"),
]


def test_bad_demand_input_is_refused_on_its_field(app, client, world):
    login(client, "ent")
    before = service(app).count(Side.demand)
    title = world.demand.title
    for change, field, message in BAD_DEMANDS:
        for url in ("/demands/new", f"/demands/{world.demand.id}/edit"):
            response = client.post(url, data=valid_demand(**change))
            page = text(response)
            assert response.status_code == 422, (url, change)
            assert f'id="{field}-error"' in page or (
                field == "cooperation_modes" and "has-error" in page), (url, change)
            if message:
                assert message in page, (url, change)
            assert "提交内容有误" in page
    assert service(app).count(Side.demand) == before
    assert service(app).get(Side.demand, world.demand.id).title == title


def test_domain_validation_lands_on_the_field(app, client, world):
    """Rules only the domain model knows (here: at most 20 IPC codes) still reach the field."""
    login(client, "inst")
    before = service(app).count(Side.achievement)
    codes = ", ".join(f"A01B {i}/00" for i in range(21))
    response = client.post("/achievements/new", data=valid_achievement(ipc_codes=codes))
    assert response.status_code == 422 and service(app).count(Side.achievement) == before
    page = text(response)
    assert 'id="ipc_codes-error"' in page and "IPC 分类号最多 20 个" in page
    english = text(client.post("/achievements/new?lang=en", data=valid_achievement(ipc_codes=codes)))
    assert "at most 20 IPC codes" in english


def test_oversize_request_body_is_refused(app, client, world):
    login(client, "ent")
    before = service(app).count(Side.demand)
    response = client.post("/demands/new", data=valid_demand(description="长" * 1_000_000))
    assert response.status_code == 413 and "提交内容过大" in text(response)
    assert service(app).count(Side.demand) == before


# --- script injection ------------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def test_injected_markup_renders_inert_everywhere(app, client, world):
    svc = service(app)
    payload = f"{SCRIPT}{IMG}"
    demand = svc.create_demand(data=demand_data(
        world.ent, title=f"铜合金带材 {payload}", technical_field=f"铜加工{IMG}"[:100],
        description=f"高强高导铜合金带材 抗拉强度 导电率 引线框架 {payload} 结尾说明文字。",
        contact_name=f"{IMG}"[:64], contact_phone="0701-5550101", region=f"鹰潭{IMG}"[:64]))
    achievement = svc.create_achievement(data=achievement_data(
        world.uni, title=f"铜合金形变时效 {payload}", team=f"团队{SCRIPT}",
        technical_field=f"铜合金{SCRIPT}", description=f"Cu-Ni-Si 铜合金 带材 抗拉强度 导电率 {payload} 引线框架。"))
    login(client, "broker")  # sees everything, contacts included
    pages = {
        "home": "/", "demands": "/demands", "achievements": "/achievements",
        "demand": f"/demands/{demand.id}", "achievement": f"/achievements/{achievement.id}",
        "edit demand": f"/demands/{demand.id}/edit", "edit achievement": f"/achievements/{achievement.id}/edit",
        "delete": f"/demands/{demand.id}/delete",
        "search": "/search?q=铜合金带材", "search script": f"/search?q={SCRIPT}",
        "other demand": f"/demands/{world.demand.id}", "other achievement": f"/achievements/{world.achievement.id}",
        "filter": f"/demands?region={IMG}",
    }
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        page = text(response)
        assert "<script>alert" not in page, name
        assert "<img src=x" not in page, name
        assert "onerror=alert(1)>" not in page.replace("&gt;", ">").replace("&#34;&gt;", "") or (
            "&lt;img src=x onerror=alert(1)&gt;" in page), name
    detail = text(client.get(f"/demands/{demand.id}"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "鹰潭&#34;&gt;&lt;img" in detail  # region, contact name: escaped too
    matches = text(client.get(f"/achievements/{achievement.id}")).split('id="matches"', 1)[1]
    assert "&lt;script&gt;" in matches  # shown (escaped) in the highlighted sentence pair


def test_injection_through_the_form_is_stored_verbatim_and_shown_escaped(app, client, world):
    login(client, "ent")
    response = client.post("/demands/new", data=valid_demand(
        title=f"标题{SCRIPT}", description=f"描述内容足够长 {SCRIPT} {IMG} 稀土永磁电机",
        technical_field=f"领域{IMG}", contact_name=f"联系人{SCRIPT}", contact_email="li@example.com"))
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert SCRIPT not in page and "<img src=x" not in page
    assert "标题&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "联系人&lt;script&gt;" in page


def test_highlight_escapes_and_marks():
    from web.main.filters import highlight

    out = highlight("<b>Copper</b> 铜合金 & copper", ["copper", "铜合金", "<b>"])
    assert isinstance(out, Markup)
    assert str(out) == ("<mark>&lt;b&gt;</mark><mark>Copper</mark>&lt;/b&gt; <mark>铜合金</mark> &amp; "
                        "<mark>copper</mark>")
    assert str(highlight("<i>x</i>", [])) == "&lt;i&gt;x&lt;/i&gt;"
    assert str(highlight(None, ["x"])) == ""
    # longer terms win over their parts
    assert str(highlight("高强高导铜合金", ["铜合金", "高强高导铜合金"])) == "<mark>高强高导铜合金</mark>"


def test_templates_never_mark_user_text_safe():
    for path in (WEB / "templates").rglob("*.html"):
        assert "|safe" not in path.read_text(encoding="utf-8").replace(" ", ""), path


# --- CSRF, rate limits, errors, headers ----------------------------------------------------------------

def _token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"',
                     page).group(1) or ""


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def test_csrf_token_required_on_every_form(csrf_app, world):
    app = csrf_app
    client = app.test_client()
    # sign-in itself needs the token
    response = client.post("/auth/login", data={"username": "ent", "password": "test-pass-123"})
    assert response.status_code == 400 and "安全令牌" in text(response)
    page = text(client.get("/auth/login"))
    token = re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/auth/login", data={"username": "ent", "password": "test-pass-123",
                                                "csrf_token": token})
    assert response.status_code == 302
    before = service(app).count(Side.demand)
    assert client.post("/demands/new", data=valid_demand()).status_code == 400
    assert client.post(f"/demands/{world.demand.id}/delete").status_code == 400
    assert client.post(f"/demands/{world.demand.id}/edit", data=valid_demand(title="改")).status_code == 400
    assert client.post("/auth/logout").status_code == 400
    assert service(app).count(Side.demand) == before
    assert service(app).get(Side.demand, world.demand.id).title == world.demand.title
    form = text(client.get("/demands/new"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    response = client.post("/demands/new", data=valid_demand(csrf_token=token))
    assert response.status_code == 302 and service(app).count(Side.demand) == before + 1
    delete_page = text(client.get(f"/demands/{world.demand.id}/delete"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', delete_page).group(1)
    assert client.post(f"/demands/{world.demand.id}/delete", data={"csrf_token": token}).status_code == 302


def test_login_attempts_are_rate_limited(app, world):
    app.config["RATELIMIT_ENABLED"] = True
    from web import limiter

    limiter.init_app(app)  # re-read the setting on this app
    client = app.test_client()
    for _ in range(10):
        assert client.post("/auth/login", data={"username": "ent", "password": "wrong-pass"}).status_code == 401
    response = client.post("/auth/login", data={"username": "ent", "password": "wrong-pass"})
    assert response.status_code == 429
    assert "请求过于频繁" in text(response) and "Too many requests" in text(response)
    assert client.get("/auth/login").status_code == 200  # the page itself is not limited
    app.config["RATELIMIT_ENABLED"] = False
    limiter.init_app(app)


def test_error_pages_are_bilingual_and_json_under_api(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    page = text(response)
    assert "页面不存在" in page and "Not found" in page and '<html lang="zh-CN">' in page
    english = text(client.get("/no-such-page?lang=en"))
    assert "<h1>Not found</h1>" in english and "页面不存在" in english
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404 and response.is_json
    assert response.json["error"]["code"] == 404 and response.json["error"]["message"]
    response = client.delete("/")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]


def test_server_error_rolls_back_and_renders_page(app, world):
    from sqlmodel import select

    from matcher.db import session_scope
    from matcher.models import Organisation, OrgKind

    @app.get("/boom")
    def boom():
        with session_scope(app.extensions["techmatch.engine"]) as session:
            session.add(Organisation(name="半途而废的机构", kind=OrgKind.enterprise.value))
            session.flush()
            raise RuntimeError("internal detail 4242")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    page = text(response)
    assert "服务器内部错误" in page and "Internal server error" in page and "internal detail 4242" not in page
    from sqlmodel import Session

    with Session(app.extensions["techmatch.engine"]) as s:
        assert s.exec(select(Organisation).where(Organisation.name == "半途而废的机构")).first() is None


def test_security_headers(client):
    response = client.get("/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
