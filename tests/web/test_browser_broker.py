"""The broker workspace in a real browser (Debian's Chromium driven by Playwright).

A broker recommends a pair from a demand page, the enterprise and the institution
both say they are interested, the broker moves the match to negotiating and then
signed; screenshots of the workspace, the match page and the statistics (charts drawn
by the vendored Chart.js under the app's Content-Security-Policy) go to
``test-output/screenshots/``.  Skipped without ``/usr/bin/chromium``; never downloads a browser.
"""

from __future__ import annotations

import pytest

from tests.web.test_browser import (  # noqa: F401 - the fixtures are shared
    CHROMIUM,
    browser_context,
    live_server,
    shot,
    sign_in,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="chromium 未安装 / /usr/bin/chromium missing: apt-get install chromium "
                              "fonts-noto-cjk (make test does this); never 'playwright install'"),
]


def test_broker_pipeline_in_a_browser(live_server, browser_context, world):  # noqa: F811
    base, browser = live_server, browser_context
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # the broker recommends the pair from the demand's page
    sign_in(page, base, "broker")
    page.goto(f"{base}/demands/{world.demand.id}")
    item = page.locator("li.match", has_text=world.achievement.title)
    assert item.count() == 1
    item.locator(".match-broker button").click()
    page.wait_for_url(f"{base}/matches/*")
    match_url = page.url
    assert "已推荐对接" in page.locator(".flash-success").inner_text()
    assert page.locator("h1 .badge").inner_text() == "已推荐"

    page.goto(f"{base}/workspace")
    assert page.locator("#mine").inner_text().count(world.demand.title) == 1
    assert page.locator("#unreviewed .recommend-form").count() >= 1
    shot(page, "broker-workspace")

    # both sides say they are interested; the enterprise's bell shows the news
    for name in ("ent", "inst"):
        sign_in(page, base, name)
        assert int(page.locator(".bell-count").inner_text()) >= 1
        page.goto(match_url)
        page.click("#actions button[value=interested]")
        page.wait_for_url(match_url)
        assert "状态已更新" in page.locator(".flash-success").inner_text()
    assert page.locator("h1 .badge").inner_text() == "双方有意向"

    # the broker negotiates, then records the signing
    sign_in(page, base, "broker")
    page.goto(match_url)
    page.click("#actions button[value=negotiating]")
    page.wait_for_url(match_url)
    assert page.locator("h1 .badge").inner_text() == "洽谈中"
    page.click("#sign-form button[value=signed]")  # empty: the fields say what is missing
    assert page.locator("#amount_wan-error").inner_text() == "签约金额(万元)为必填项"
    page.fill("#amount_wan", "150")
    page.select_option("#cooperation_mode", "licence")
    page.fill("#signed_on", "2026-11-20")
    page.click("#sign-form button[value=signed]")
    page.wait_for_url(match_url)
    assert page.locator("h1 .badge").inner_text() == "已签约"
    assert page.locator("table.audit tbody tr").count() == 5
    shot(page, "broker-match")

    # statistics: charts drawn by Chart.js from the JSON block, figures in tables too
    page.goto(f"{base}/stats")
    page.wait_for_function("document.querySelectorAll('canvas[data-drawn]').length === 5")
    assert page.evaluate("typeof window.Chart") == "function"
    assert page.locator("#fig-signed").inner_text() == "1"
    width = page.evaluate("document.getElementById('chart-funnel').width")
    assert width > 100
    shot(page, "broker-stats")

    # the one expected error: the empty signing form's 422 answer
    assert [e for e in errors if "status of 422" not in e] == []
