"""The portal in a real browser: Debian's Chromium driven by Playwright.

Every role signs in through the form; the enterprise posts a demand and sees
its matches; the UI switches to English; screenshots of the main pages go to
``test-output/screenshots/``.  Never downloads a browser: without
``/usr/bin/chromium`` the test is skipped (``make test`` installs it).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from matcher.models import AchievementCreate, DemandCreate, OrgKind, Side
from tests.conftest import OUTPUT, make_org
from tests.web.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = OUTPUT / "screenshots"
CHAINS = ["nonferrous", "new_energy", "electronics", "food"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="chromium 未安装 / /usr/bin/chromium missing: apt-get install chromium "
                              "fonts-noto-cjk (make test does this); never 'playwright install'"),
]


def add_seed_sample(app) -> None:
    """A few real seed records per chain, so pages and matches look like the portal's."""
    import seeds

    svc = app.extensions["techmatch.matcher"]
    engine = app.extensions["techmatch.engine"]
    demands, achievements = [], []
    for data in seeds.read_all():
        if data["chain"] not in CHAINS:
            continue
        picked_d, picked_a = data["demands"][:2], data["achievements"][:3]
        keys = {r["org"] for r in picked_d + picked_a}
        orgs = {o["key"]: make_org(engine, o["name"], OrgKind(o["kind"]), o.get("region", ""))
                for o in data["organisations"] if o["key"] in keys}
        demands += [DemandCreate.model_validate({**{k: v for k, v in r.items() if k != "org"},
                                                 "organisation_id": orgs[r["org"]]}) for r in picked_d]
        achievements += [AchievementCreate.model_validate({**{k: v for k, v in r.items() if k != "org"},
                                                           "organisation_id": orgs[r["org"]]}) for r in picked_a]
    svc.bulk_create(Side.demand, demands)
    svc.bulk_create(Side.achievement, achievements)


@pytest.fixture
def live_server(app, world):
    """The app on 127.0.0.1 and a free port, served from a background thread."""
    from werkzeug.serving import make_server

    app.config.update(WTF_CSRF_ENABLED=True, DEMO_MODE=True)
    add_seed_sample(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def browser_context(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
            viewport={"width": 1280, "height": 900}, locale="zh-CN")
        context.set_default_timeout(60_000)
        yield context
        context.close()


def shot(page, name: str, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 5_000
    return path


def sign_in(page, base: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/auth/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#content form button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert page.locator(".flash-success").inner_text().startswith("欢迎")


def test_portal_in_a_browser(live_server, browser_context, world):
    base = live_server
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # sign-in page (demo hint shown in DEMO_MODE)
    page.goto(f"{base}/auth/login")
    assert page.locator("h1").inner_text() == "用户登录"
    assert page.locator(".demo-hint").is_visible()
    shot(page, "login")

    # the enterprise posts a demand through the form and sees its matches
    sign_in(page, base, "ent")
    assert page.locator(".figure-number").count() == 3
    shot(page, "home")
    page.click("nav.mainnav >> text=发布需求")
    page.fill("#title", "引线框架铜合金带材强度与导电率同步提升")
    page.fill("#description", "我司生产QFN引线框架用Cu-Fe-P系铜合金带材, 抗拉强度约520MPa, 导电率约60%IACS。"
                              "希望通过微合金化和形变时效工艺优化, 使抗拉强度达到600MPa以上, 导电率不低于65%IACS, "
                              "并能在现有轧制产线上实施。")
    page.select_option("#industry_chain", "nonferrous")
    page.fill("#technical_field", "铜加工")
    page.fill("#region", "鹰潭市")
    page.select_option("#required_trl", "5")
    page.fill("#budget_wan", "120")
    page.check("input[name=cooperation_modes][value=joint_development]")
    page.fill("#contact_name", "王工")
    page.fill("#contact_phone", "0701-5550199")
    page.click("#content form button[type=submit]")
    page.wait_for_url(f"{base}/demands/*")
    assert "已发布" in page.locator(".flash-success").inner_text()
    assert page.locator("h1").inner_text() == "引线框架铜合金带材强度与导电率同步提升"
    matches = page.locator("li.match")
    assert matches.count() >= 3
    first = matches.first
    assert first.locator(".badge-good").count() == 1
    assert first.locator("mark").count() > 0
    assert first.locator(".checks-list li").count() >= 3
    assert "0701-5550199" in page.locator(".contact").inner_text()
    detail = shot(page, "demand-detail")
    demand_url = page.url

    page.goto(f"{base}/demands")
    assert page.locator(".record-row").count() >= 9
    shot(page, "demand-list")

    page.fill(".masthead-search input[name=q]", "锂电池 正极材料")
    page.click(".masthead-search button")
    page.wait_for_url(f"{base}/search*")
    assert page.locator(".record-row").count() > 0
    shot(page, "search")

    # English, then back to Chinese
    page.goto(demand_url)
    page.click("a.lang-switch")
    page.wait_for_url(demand_url)
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("nav.mainnav").inner_text().split()[:2] == ["Home", "Demands"]
    assert page.locator("#matches h2").inner_text() == "Matching research achievements"
    assert "Good match" in page.locator("li.match").first.inner_text()
    shot(page, "demand-detail-en")
    page.click("a.lang-switch")
    assert page.locator("html").get_attribute("lang") == "zh-CN"

    # sign out through the confirmation form
    page.goto(f"{base}/auth/logout")
    page.click("#content form button[type=submit]")
    assert "您已退出登录" in page.locator(".flash").inner_text()

    # the institution: its achievement's page lists matching demands
    sign_in(page, base, "inst")
    assert page.locator("nav.mainnav >> text=发布成果").count() == 1
    page.goto(f"{base}/achievements/{world.achievement.id}")
    assert page.locator("#matches h2").inner_text() == "匹配的技术需求"
    assert page.locator("li.match").count() >= 1
    assert world.secret.title not in page.content()
    shot(page, "achievement-detail")

    # the broker sees the confidential demand
    sign_in(page, base, "broker")
    page.goto(f"{base}/demands")
    assert world.secret.title in page.locator(".results").inner_text()

    # the admin manages users
    sign_in(page, base, "admin")
    page.click("nav.mainnav >> text=系统管理")
    page.click(".tabs >> text=用户与角色")
    assert page.locator("table.table tbody tr").count() == 5
    shot(page, "admin-users")

    # a phone-sized screen: no sideways scrolling, the menu folds away
    phone = browser_context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(demand_url)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert not phone.locator("nav.mainnav ul").is_visible()
    phone.click("label.nav-toggle-label")
    assert phone.locator("nav.mainnav ul").is_visible()
    shot(phone, "demand-detail-phone")
    phone.goto(f"{base}/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "home-phone")

    assert errors == []
    assert detail.exists()
