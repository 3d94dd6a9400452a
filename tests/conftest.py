"""Shared fixtures: the real bundled model (once per session), per-test databases."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from matcher.db import init_db, make_engine, sqlite_url
from matcher.models import (
    AchievementCreate,
    DemandCreate,
    Organisation,
    OrgKind,
)
from matcher.service import MatcherService

PG_URL = os.environ.get("TECHMATCH_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TECHMATCH_TEST_REDIS_URL")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session")
def encoder():
    """The real bundled multilingual model, loaded once for the whole session."""
    from embeddings import get_encoder

    enc = get_encoder()
    assert enc.dim == 384
    return enc


def _pg_engine(schema: str):
    base = make_engine(PG_URL)
    with base.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    base.dispose()
    from sqlalchemy import create_engine

    return create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})


def _drop_pg(schema: str) -> None:
    base = make_engine(PG_URL)
    with base.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    base.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request, tmp_path):
    """A fresh empty database per test: SQLite, and PostgreSQL where configured."""
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path))
        init_db(engine)
        yield engine
        engine.dispose()
        return
    if not PG_URL:
        pytest.skip("TECHMATCH_TEST_DATABASE_URL not set: PostgreSQL variant not run")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = _pg_engine(schema)
    init_db(engine)
    yield engine
    engine.dispose()
    _drop_pg(schema)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(sqlite_url(tmp_path))
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def service(any_engine, encoder, tmp_path):
    return MatcherService(any_engine, encoder, tmp_path / "index")


def make_org(engine, name: str | None = None, kind: OrgKind = OrgKind.enterprise,
             region: str = "南昌市") -> int:
    from sqlmodel import Session

    with Session(engine) as session:
        org = Organisation(name=name or f"测试机构-{uuid.uuid4().hex[:6]}", kind=kind, region=region)
        session.add(org)
        session.commit()
        return org.id


def demand_data(org_id: int, **kw) -> DemandCreate:
    data = dict(
        organisation_id=org_id,
        title="高强高导铜合金带材工艺优化",
        description="我司生产引线框架用铜合金带材, 抗拉强度520MPa, 导电率60%IACS, "
                    "希望通过成分优化与形变热处理把强度提高到600MPa以上, 导电率不低于65%IACS。",
        industry_chain="nonferrous", technical_field="铜加工", region="鹰潭市",
        budget_wan=100, required_trl=5, cooperation_modes=["joint_development"],
    )
    data.update(kw)
    return DemandCreate.model_validate(data)


def achievement_data(org_id: int, **kw) -> AchievementCreate:
    data = dict(
        organisation_id=org_id,
        title="Cu-Ni-Si系高强高导铜合金及其形变时效工艺",
        description="通过微合金化与多级形变时效, 使铜合金带材抗拉强度达到650MPa, "
                    "导电率保持在68%IACS, 已完成中试, 适用于引线框架和连接器。",
        industry_chain="nonferrous", technical_field="铜合金", region="南昌市", kind="patent",
        patent_number="CN-DEMO-2024-000001", trl=6, maturity="pilot",
        transfer_modes=["licence", "joint_development"], asking_price_wan=80,
    )
    data.update(kw)
    return AchievementCreate.model_validate(data)


@pytest.fixture
def factories():
    return type("F", (), {"org": staticmethod(make_org), "demand": staticmethod(demand_data),
                          "achievement": staticmethod(achievement_data)})


@pytest.fixture(scope="session")
def demo(tmp_path_factory, encoder):
    """The real demo seeds, loaded once for the whole test session through the CLI
    (``techmatch db init`` and ``techmatch seed --demo``): ``(app, runner)``.

    Tests must not change it; :func:`demo_copy` gives a private copy to change.
    """
    from web import create_app

    folder = tmp_path_factory.mktemp("demo")
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "INSTANCE_PATH": str(folder),
                      "CACHE_DIR": str(encoder.cache_dir)})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "init"]).exit_code == 0
    result = runner.invoke(args=["seed", "--demo"])
    assert result.exit_code == 0, result.output
    assert "demo accounts" in result.output
    yield app, runner
    app.extensions["techmatch.engine"].dispose()


@pytest.fixture
def demo_copy(demo, tmp_path, encoder):
    """A private copy of the seeded demo database (and its saved indexes), as an app."""
    import shutil

    from web import create_app

    app, _ = demo
    source = Path(app.instance_path)
    engine = app.extensions["techmatch.engine"]
    with engine.connect() as conn:  # fold the WAL into the main file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    for item in source.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp_path / item.name)
        elif item.suffix == ".sqlite3":
            shutil.copy2(item, tmp_path / item.name)
    copy = create_app({"TESTING": True, "SECRET_KEY": "test", "INSTANCE_PATH": str(tmp_path),
                       "CACHE_DIR": str(encoder.cache_dir), "RATELIMIT_ENABLED": False,
                       "WTF_CSRF_ENABLED": False})
    yield copy
    copy.extensions["techmatch.engine"].dispose()
