"""Portal fixtures: an app per test (own instance folder and database) with a small world.

The world: two enterprises (one with a confidential demand), one university, one
transfer centre, and a user of every role.  ``login(client, name)`` signs in
through the real form.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session
from werkzeug.security import generate_password_hash

from matcher.models import OrgKind, Role, Side, User
from tests.conftest import PG_URL, achievement_data, demand_data, make_org

PASSWORD = "test-pass-123"


@pytest.fixture
def app(tmp_path, encoder):
    from web import create_app

    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test",
        "WTF_CSRF_ENABLED": False,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "RATELIMIT_ENABLED": False,
        "CACHE_DIR": str(encoder.cache_dir),
        "INSTANCE_PATH": str(tmp_path),
    })
    from matcher.db import init_db

    with app.app_context():
        init_db(app.extensions["techmatch.engine"])
    yield app
    app.extensions["techmatch.engine"].dispose()


@pytest.fixture
def world(app):
    """Organisations, one user per role, demands (one confidential) and achievements."""
    engine = app.extensions["techmatch.engine"]
    svc = app.extensions["techmatch.matcher"]
    w = type("World", (), {})()
    w.ent = make_org(engine, "赣鹰铜材(测试)", OrgKind.enterprise, "鹰潭市")
    w.rival = make_org(engine, "竞争企业(测试)", OrgKind.enterprise, "南昌市")
    w.uni = make_org(engine, "南昌测试大学", OrgKind.university, "南昌市")
    w.centre = make_org(engine, "测试技术转移中心", OrgKind.transfer_centre, "南昌市")
    with Session(engine) as s:
        for name, role, org in [("ent", Role.enterprise, w.ent), ("rival", Role.enterprise, w.rival),
                                ("inst", Role.institution, w.uni), ("broker", Role.broker, w.centre),
                                ("admin", Role.admin, None)]:
            s.add(User(username=name, password_hash=generate_password_hash(PASSWORD),
                       role=role.value, organisation_id=org, display_name=name))
        s.commit()
    w.demand = svc.create_demand(data=demand_data(w.ent, contact_phone="0701-5550101",
                                                  contact_email="wang@example.com"))
    w.secret = svc.create_demand(data=demand_data(
        w.ent, title="保密需求: 含砷烟尘无害化处理", confidential=True,
        description="冶炼烟尘含砷约8%, 希望开发稳定化固砷工艺, 浸出毒性低于国家标准限值。"))
    w.achievement = svc.create_achievement(data=achievement_data(w.uni))
    w.other = svc.create_achievement(data=achievement_data(
        w.uni, title="脐橙果汁非热杀菌护色技术", industry_chain="food", kind="technology",
        patent_number=None,
        description="超高压处理结合天然抗氧化剂, 使NFC橙汁冷藏60天色差变化小于2, 维生素C保留率90%。"))
    w.side = Side
    return w


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, username: str, password: str = PASSWORD):
    return client.post("/auth/login", data={"username": username, "password": password},
                       follow_redirects=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def pg_app(request, tmp_path, encoder):
    """The portal on PostgreSQL too, where ``TECHMATCH_TEST_DATABASE_URL`` is set."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
        schema = None
    else:
        if not PG_URL:
            pytest.skip("TECHMATCH_TEST_DATABASE_URL not set: PostgreSQL variant not run")
        import uuid

        from tests.conftest import _drop_pg, _pg_engine

        schema = f"t_{uuid.uuid4().hex[:12]}"
        _pg_engine(schema).dispose()
        sep = "&" if "?" in PG_URL else "?"
        url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    from web import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
                      "DATABASE_URL": url, "RATELIMIT_ENABLED": False,
                      "CACHE_DIR": str(encoder.cache_dir), "INSTANCE_PATH": str(tmp_path)})
    from matcher.db import init_db

    init_db(app.extensions["techmatch.engine"])
    yield app
    app.extensions["techmatch.engine"].dispose()
    if schema:
        _drop_pg(schema)
