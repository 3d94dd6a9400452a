"""Demo data: organisations, demands and achievements written for this project.

``seeds/data/<chain>.json`` hold the records (see ``seeds/SCHEMA.md``);
:func:`load_demo` stores them through the matcher service, so they are encoded
and indexed exactly like records posted in the portal.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from matcher.models import (
    AchievementCreate,
    DemandCreate,
    OrgKind,
    Role,
    Side,
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
    if service.count(Side.demand) or service.count(Side.achievement):
        return {"organisations": 0, "demands": 0, "achievements": 0}
    directory = service.directory
    org_ids: dict[str, int] = {}
    for f in files:
        for o in f["organisations"]:
            org = directory.ensure_organisation(o["name"], OrgKind(o["kind"]).value, o.get("region", ""),
                                                o.get("description", ""))
            org_ids[o["key"]] = org.id
    directory.ensure_organisation(DEMO_BROKER_ORG["name"], DEMO_BROKER_ORG["kind"].value,
                                  DEMO_BROKER_ORG["region"], DEMO_BROKER_ORG["description"])
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


def create_demo_accounts(service: MatcherService) -> list[str]:
    """The four demo accounts (demo mode only), all with ``DEMO_PASSWORD``."""
    directory = service.directory

    def first(*kinds: OrgKind) -> int | None:
        for kind in kinds:
            orgs = sorted(directory.organisations([kind.value]), key=lambda o: o.id)
            if orgs:
                return orgs[0].id
        return None

    centre = directory.organisation_by_name(DEMO_BROKER_ORG["name"])
    plan = [
        ("enterprise-demo", Role.enterprise, first(OrgKind.enterprise), "示例企业用户"),
        ("institution-demo", Role.institution, first(OrgKind.university, OrgKind.institute), "示例高校用户"),
        ("broker-demo", Role.broker, centre.id if centre else first(OrgKind.transfer_centre), "示例技术经纪人"),
        ("admin-demo", Role.admin, None, "示例管理员"),
    ]
    made = []
    for username, role, org_id, name in plan:
        if directory.user_by_name(username) is not None:
            continue
        directory.create_user(username=username, password=DEMO_PASSWORD, role=role.value,
                              organisation_id=org_id, display_name=name)
        made.append(username)
    return made
