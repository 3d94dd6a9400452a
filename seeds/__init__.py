"""Demo data: organisations, demands and achievements written for this project.

``seeds/data/<chain>.json`` hold the records (see ``seeds/SCHEMA.md``);
:func:`load_demo` stores them through the matcher service, so they are encoded
and indexed exactly like records posted in the portal.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from sqlmodel import Session, select

from matcher.models import (
    AchievementCreate,
    DemandCreate,
    Organisation,
    OrgKind,
    Role,
    Side,
    User,
)
from matcher.service import MatcherService

DEMO_PASSWORD = "demo-pass-2026"
DEMO_BROKER_ORG = {
    "name": "江西省技术转移服务中心(示例)",
    "kind": OrgKind.transfer_centre,
    "region": "南昌市",
    "description": "示例技术转移机构: 为企业与高校院所提供技术经纪、评估与对接服务。",
}


def data_files() -> list[Path]:
    folder = Path(str(resources.files("seeds").joinpath("data")))
    return sorted(folder.glob("*.json"))


def read_all() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in data_files()]


def load_demo(service: MatcherService, *, progress: bool = True) -> dict[str, int]:
    """Store every seed file's organisations and records; skip if demo data is there.

    Returns:
        Counts of what was created.
    """
    files = read_all()
    with Session(service.engine, expire_on_commit=False) as session:
        if service.count(Side.demand) or service.count(Side.achievement):
            return {"organisations": 0, "demands": 0, "achievements": 0}
        orgs: dict[str, Organisation] = {}
        by_name = {o.name: o for o in session.exec(select(Organisation)).all()}
        for f in files:
            for o in f["organisations"]:
                org = by_name.get(o["name"]) or Organisation(
                    name=o["name"], kind=OrgKind(o["kind"]), region=o.get("region", ""),
                    description=o.get("description", ""))
                session.add(org)
                by_name[org.name] = org
                orgs[o["key"]] = org
        if DEMO_BROKER_ORG["name"] not in by_name:
            session.add(Organisation(**DEMO_BROKER_ORG))
        session.commit()
        org_ids = {k: o.id for k, o in orgs.items()}
    demands, achievements = [], []
    for f in files:
        for d in f["demands"]:
            demands.append(DemandCreate.model_validate(
                {**{k: v for k, v in d.items() if k != "org"}, "organisation_id": org_ids[d["org"]]}))
        for a in f["achievements"]:
            achievements.append(AchievementCreate.model_validate(
                {**{k: v for k, v in a.items() if k != "org"}, "organisation_id": org_ids[a["org"]]}))
    service.bulk_create(Side.demand, demands, progress=progress)
    service.bulk_create(Side.achievement, achievements, progress=progress)
    return {"organisations": len(org_ids), "demands": len(demands),
            "achievements": len(achievements)}


def create_demo_accounts(engine) -> list[str]:
    """The four demo accounts (demo mode only), all with ``DEMO_PASSWORD``."""
    from werkzeug.security import generate_password_hash

    made = []
    with Session(engine) as session:
        def first(kind: OrgKind) -> int | None:
            org = session.exec(select(Organisation).where(Organisation.kind == kind)
                               .order_by(Organisation.id)).first()
            return org.id if org else None

        centre = session.exec(select(Organisation).where(
            Organisation.name == DEMO_BROKER_ORG["name"])).first()
        broker_org = centre.id if centre else first(OrgKind.transfer_centre)
        plan = [
            ("enterprise-demo", Role.enterprise, first(OrgKind.enterprise), "示例企业用户"),
            ("institution-demo", Role.institution,
             first(OrgKind.university) or first(OrgKind.institute), "示例高校用户"),
            ("broker-demo", Role.broker, broker_org, "示例技术经纪人"),
            ("admin-demo", Role.admin, None, "示例管理员"),
        ]
        for username, role, org_id, name in plan:
            if session.exec(select(User).where(User.username == username)).first():
                continue
            session.add(User(username=username, password_hash=generate_password_hash(DEMO_PASSWORD),
                             role=role, organisation_id=org_id, display_name=name))
            made.append(username)
        session.commit()
    return made
