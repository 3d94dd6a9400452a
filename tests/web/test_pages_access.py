"""Who may open which page: every page route for every role."""

from __future__ import annotations

import pytest

from tests.web.conftest import login

ROLES = ["anonymous", "ent", "rival", "inst", "broker", "admin"]
OK, LOGIN, FORBIDDEN, MISSING = 200, 302, 403, 404


def matrix(w, admin_id):
    """(url, expected status per role in ROLES order)."""
    d, s, a = w.demand.id, w.secret.id, w.achievement.id
    return [
        ("/", [OK] * 6),
        ("/demands", [OK] * 6),
        ("/demands?industry_chain=nonferrous&min_trl=3&page=1", [OK] * 6),
        ("/achievements", [OK] * 6),
        ("/search", [OK] * 6),
        ("/search?q=铜合金&side=all", [OK] * 6),
        ("/search?q=铜合金&side=demands", [OK] * 6),
        (f"/demands/{d}", [OK] * 6),
        (f"/demands/{s}", [MISSING, OK, MISSING, MISSING, OK, MISSING]),
        (f"/achievements/{a}", [OK] * 6),
        ("/demands/99999", [MISSING] * 6),
        ("/demands/new", [LOGIN, OK, OK, FORBIDDEN, OK, FORBIDDEN]),
        ("/achievements/new", [LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN]),
        (f"/demands/{d}/edit", [LOGIN, OK, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN]),
        (f"/demands/{s}/edit", [LOGIN, OK, MISSING, MISSING, OK, MISSING]),
        (f"/achievements/{a}/edit", [LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN]),
        (f"/demands/{d}/delete", [LOGIN, OK, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN]),
        (f"/demands/{s}/delete", [LOGIN, OK, MISSING, MISSING, OK, MISSING]),
        (f"/achievements/{a}/delete", [LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN]),
        ("/admin/", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK]),
        ("/admin/organisations", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK]),
        ("/admin/users", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK]),
        (f"/admin/users/{admin_id}", [LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK]),
        ("/auth/login", [OK, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN]),
        ("/auth/logout", [LOGIN, OK, OK, OK, OK, OK]),
        ("/lang/en?next=/demands", [LOGIN] * 6),
        ("/healthz", [OK] * 6),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(app, world, role):
    from sqlmodel import Session, select

    from matcher.models import User

    with Session(app.extensions["techmatch.engine"]) as s:
        admin_id = s.exec(select(User.id).where(User.username == "admin")).one()
    client = app.test_client()
    if role != "anonymous":
        assert login(client, role).status_code == 302
    column = ROLES.index(role)
    wrong = []
    for url, expected in matrix(world, admin_id):
        got = client.get(url).status_code
        if got != expected[column]:
            wrong.append((url, expected[column], got))
    assert wrong == [], f"{role}: (url, expected, got)"


def test_anonymous_writes_go_to_sign_in_and_change_nothing(app, client, world):
    svc = app.extensions["techmatch.matcher"]
    for url in ["/demands/new", f"/demands/{world.demand.id}/edit", f"/demands/{world.demand.id}/delete",
                "/achievements/new", f"/achievements/{world.achievement.id}/delete", "/admin/users",
                "/admin/organisations"]:
        response = client.post(url, data={"title": "匿名写入", "name": "匿名机构", "username": "anon-x"})
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"], url
    from matcher.models import Side

    assert svc.count(Side.demand) == 2 and svc.count(Side.achievement) == 2
    assert svc.get(Side.demand, world.demand.id).title == world.demand.title
