"""The two sides of the market, described once.

A :class:`SideSpec` says everything that differs between demands (技术需求, posted
by enterprises) and achievements (科技成果, listed by universities and
institutes): the table and its Create/Update models, the status a record must
have to be matched, the names of the fields that hold its TRL, cooperation
modes and money, who owns it, and how it is spelled in URLs and messages.
Every layer (records, indexes, ranking, portal, API, CLI) asks this module
instead of describing the difference again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matcher.models import (
    Achievement,
    AchievementCreate,
    AchievementStatus,
    AchievementUpdate,
    Demand,
    DemandCreate,
    DemandStatus,
    DemandUpdate,
    Labelled,
    OrgKind,
    Role,
    Side,
)
from matcher.ranking import Profile


@dataclass(frozen=True)
class SideSpec:
    """What one side of the market is made of."""

    side: Side
    table: type[Demand] | type[Achievement]
    create: type[DemandCreate] | type[AchievementCreate]
    update: type[DemandUpdate] | type[AchievementUpdate]
    statuses: type[Labelled]
    active_status: str  # only records in this status are matched (open / available)
    trl_field: str  # required TRL of a demand, offered TRL of an achievement
    modes_field: str  # cooperation modes wanted / transfer modes offered
    money_field: str  # budget of a demand / asking price of an achievement
    owner_role: str  # the role whose members post this side for their own organisation
    org_kinds: tuple[str, ...]  # organisations that own records of this side
    confidential: bool  # whether records of this side can be confidential
    plural: str  # URL segment and API spelling: "demands"
    zh: str
    en: str

    @property
    def name(self) -> str:
        return self.side.value

    @property
    def other(self) -> SideSpec:
        return SIDES[self.side.other]

    def trl(self, record: Any) -> int:
        return int(getattr(record, self.trl_field))

    def modes(self, record: Any) -> tuple[str, ...]:
        return tuple(str(m) for m in (getattr(record, self.modes_field) or ()))

    def money(self, record: Any) -> float | None:
        return getattr(record, self.money_field)

    def is_confidential(self, record: Any) -> bool:
        return self.confidential and bool(getattr(record, "confidential", False))

    def profile(self, record: Any) -> Profile:
        """The record's structured fields, as the compatibility checks read them."""
        return Profile(str(record.industry_chain), record.technical_field or "", record.region or "",
                       self.trl(record), self.modes(record), self.money(record))


DEMANDS = SideSpec(
    side=Side.demand, table=Demand, create=DemandCreate, update=DemandUpdate, statuses=DemandStatus,
    active_status=DemandStatus.open.value, trl_field="required_trl", modes_field="cooperation_modes",
    money_field="budget_wan", owner_role=Role.enterprise.value, org_kinds=(OrgKind.enterprise.value,),
    confidential=True, plural="demands", zh="需求", en="demand",
)
ACHIEVEMENTS = SideSpec(
    side=Side.achievement, table=Achievement, create=AchievementCreate, update=AchievementUpdate,
    statuses=AchievementStatus, active_status=AchievementStatus.available.value, trl_field="trl",
    modes_field="transfer_modes", money_field="asking_price_wan", owner_role=Role.institution.value,
    org_kinds=(OrgKind.university.value, OrgKind.institute.value), confidential=False,
    plural="achievements", zh="成果", en="achievement",
)
SIDES: dict[Side, SideSpec] = {Side.demand: DEMANDS, Side.achievement: ACHIEVEMENTS}

# Every spelling of a side that callers may use: the API documents the singular.
_SPELLINGS = {name: spec.side for spec in SIDES.values() for name in (spec.name, spec.plural)}


def spec(side: Side | str) -> SideSpec:
    """The spec of a side, given as :class:`Side`, "demand" or "demands"."""
    return SIDES[parse_side(side)]


def parse_side(value: Side | str) -> Side:
    """A side from any accepted spelling ("demand"/"demands", "achievement"/"achievements").

    Raises:
        ValueError: not a side.
    """
    if isinstance(value, Side):
        return value
    try:
        return _SPELLINGS[str(value).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown side {value!r}; expected demand or achievement") from None


def of(record: Any) -> SideSpec:
    """The spec of a record's side."""
    for s in SIDES.values():
        if isinstance(record, s.table):
            return s
    raise TypeError(f"not a demand or an achievement: {type(record).__name__}")
