"""Domain models (SQLModel): organisations, users, demands, achievements, vectors.

Layered as Base -> Create / Update -> table model -> Public, following the
full-stack FastAPI/SQLModel template.  Enumerations are stored as plain
strings so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from pydantic import EmailStr, field_validator, model_validator
from sqlalchemy import JSON, Column, Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Labelled(enum.StrEnum):
    """A string enum whose members carry a Chinese and an English label."""

    def __new__(cls, value: str, zh: str, en: str):
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.zh = zh  # type: ignore[attr-defined]
        obj.en = en  # type: ignore[attr-defined]
        return obj

    def label(self, lang: str = "zh") -> str:
        return self.en if lang.startswith("en") else self.zh  # type: ignore[attr-defined]

    @classmethod
    def choices(cls, lang: str = "zh") -> list[tuple[str, str]]:
        return [(m.value, m.label(lang)) for m in cls]


class OrgKind(Labelled):
    enterprise = "enterprise", "企业", "Enterprise"
    university = "university", "高校", "University"
    institute = "institute", "科研院所", "Research institute"
    transfer_centre = "transfer_centre", "技术转移中心", "Technology transfer centre"


class Role(Labelled):
    enterprise = "enterprise", "企业用户", "Enterprise"
    institution = "institution", "高校院所用户", "Institution"
    broker = "broker", "技术经纪人", "Broker"
    admin = "admin", "管理员", "Administrator"


class IndustryChain(Labelled):
    nonferrous = "nonferrous", "有色金属(铜/稀土/钨)", "Non-ferrous metals"
    electronics = "electronics", "电子信息", "Electronic information"
    equipment = "equipment", "装备制造", "Equipment manufacturing"
    petrochemical = "petrochemical", "石化化工", "Petrochemicals"
    building_materials = "building_materials", "建材", "Building materials"
    steel = "steel", "钢铁", "Steel"
    aviation = "aviation", "航空", "Aviation"
    new_energy = "new_energy", "新能源(锂电/光伏)", "New energy"
    food = "food", "食品", "Food"
    textiles = "textiles", "纺织服装", "Textiles and garments"
    biomedicine = "biomedicine", "中医药与生物医药", "TCM and biomedicine"
    furniture = "furniture", "现代家具", "Modern furniture"
    frontier = "frontier", "前沿领域", "Frontier fields"
    other = "other", "其他", "Other"  # a real catalogue is not all of Jiangxi's 13 chains


class CoopMode(Labelled):
    transfer = "transfer", "技术转让", "Transfer"
    licence = "licence", "技术许可", "Licence"
    joint_development = "joint_development", "合作开发", "Joint development"
    commissioned_development = "commissioned_development", "委托开发", "Commissioned development"
    consulting = "consulting", "技术咨询/服务", "Consulting"
    equity = "equity", "作价入股", "Equity"


class AchievementKind(Labelled):
    patent = "patent", "专利", "Patent"
    paper = "paper", "论文", "Paper"
    technology = "technology", "技术成果", "Technology"
    software = "software", "软件", "Software"


class Maturity(Labelled):
    lab = "lab", "实验室阶段", "Laboratory"
    pilot = "pilot", "中试阶段", "Pilot"
    small_batch = "small_batch", "小批量生产", "Small batch"
    mass_production = "mass_production", "产业化", "Mass production"


class DemandStatus(Labelled):
    open = "open", "征集中", "Open"
    matched = "matched", "已对接", "Matched"
    closed = "closed", "已关闭", "Closed"


class AchievementStatus(Labelled):
    available = "available", "可转化", "Available"
    transferred = "transferred", "已转化", "Transferred"
    withdrawn = "withdrawn", "已撤回", "Withdrawn"


class Side(enum.StrEnum):
    demand = "demand"
    achievement = "achievement"

    @property
    def other(self) -> Side:
        return Side.achievement if self is Side.demand else Side.demand


TITLE_MAX = 200
TEXT_MAX = 20000
# Ids are never handed out twice, not even after a row is removed: SQLite needs
# AUTOINCREMENT for that (PostgreSQL sequences never go back).
NO_REUSE = {"sqlite_autoincrement": True}


def _clean_text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


# --- organisations and users -------------------------------------------------

class OrganisationBase(SQLModel):
    name: str = Field(min_length=2, max_length=200, index=True, unique=True)
    kind: OrgKind = Field(sa_type=String(32))
    region: str = Field(default="", max_length=64)
    description: str = Field(default="", max_length=4000)


class Organisation(OrganisationBase, table=True):
    __table_args__ = NO_REUSE
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(32))
    created_at: datetime = Field(default_factory=utcnow)


class OrganisationCreate(OrganisationBase):
    pass


class User(SQLModel, table=True):
    __table_args__ = NO_REUSE
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(min_length=3, max_length=64, index=True, unique=True)
    password_hash: str = Field(max_length=256)
    role: str = Field(sa_type=String(32))  # a Role value
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    display_name: str = Field(default="", max_length=100)
    email: str = Field(default="", max_length=200)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API; only its SHA-256 digest is stored."""

    __table_args__ = NO_REUSE

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(max_length=64, index=True, unique=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


# --- demands -------------------------------------------------------------------

EXTERNAL_ID_MAX = 120


class _Common(SQLModel):
    title: str = Field(min_length=2, max_length=TITLE_MAX)
    description: str = Field(min_length=10, max_length=TEXT_MAX)
    industry_chain: IndustryChain = Field(sa_type=String(32), index=True)
    technical_field: str = Field(default="", max_length=100)
    region: str = Field(default="", max_length=64, index=True)
    # the record's id in the system it was imported from (unique per organisation)
    external_id: str | None = Field(default=None, max_length=EXTERNAL_ID_MAX)

    @field_validator("title", "description", "technical_field", "region", "external_id", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean_text(v)


class DemandBase(_Common):
    budget_wan: float | None = Field(default=None, ge=0, le=10_000_000)
    deadline: date | None = None
    cooperation_modes: list[CoopMode] = Field(default_factory=list, sa_type=JSON)
    required_trl: int = Field(default=1, ge=1, le=9)
    status: DemandStatus = Field(default=DemandStatus.open, sa_type=String(16))
    confidential: bool = False
    contact_name: str = Field(default="", max_length=64)
    contact_phone: str = Field(default="", max_length=32)
    contact_email: str = Field(default="", max_length=200)

    @field_validator("cooperation_modes", mode="after")
    @classmethod
    def _dedupe_modes(cls, v: list[CoopMode]) -> list[CoopMode]:
        return _unique(v)


class DemandCreate(DemandBase):
    organisation_id: int

    @field_validator("contact_email", mode="after")
    @classmethod
    def _email(cls, v: str) -> str:
        return _check_email(v)


class DemandUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=2, max_length=TITLE_MAX)
    description: str | None = Field(default=None, min_length=10, max_length=TEXT_MAX)
    industry_chain: IndustryChain | None = None
    technical_field: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=64)
    budget_wan: float | None = Field(default=None, ge=0, le=10_000_000)
    deadline: date | None = None
    cooperation_modes: list[CoopMode] | None = None
    required_trl: int | None = Field(default=None, ge=1, le=9)
    status: DemandStatus | None = None
    confidential: bool | None = None
    contact_name: str | None = Field(default=None, max_length=64)
    contact_phone: str | None = Field(default=None, max_length=32)
    contact_email: str | None = Field(default=None, max_length=200)
    external_id: str | None = Field(default=None, max_length=EXTERNAL_ID_MAX)


class Demand(DemandBase, table=True):
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"), NO_REUSE)
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set when the record is deleted: it is kept (its matches, calls and audit trail
    # still point at it) but hidden from everyone but brokers, and never matched.
    deleted_at: datetime | None = Field(default=None, index=True)
    cooperation_modes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # stored as plain strings; the Create/Update models validate the enumerations
    industry_chain: str = Field(sa_type=String(32), index=True)
    status: str = Field(default=DemandStatus.open.value, sa_type=String(16))


# --- achievements ----------------------------------------------------------------

class AchievementBase(_Common):
    kind: AchievementKind = Field(sa_type=String(16))
    patent_number: str | None = Field(default=None, max_length=64)
    ipc_codes: list[str] = Field(default_factory=list, sa_type=JSON)
    trl: int = Field(default=1, ge=1, le=9)
    maturity: Maturity = Field(default=Maturity.lab, sa_type=String(16))
    transfer_modes: list[CoopMode] = Field(default_factory=list, sa_type=JSON)
    asking_price_wan: float | None = Field(default=None, ge=0, le=10_000_000)
    team: str = Field(default="", max_length=200)
    status: AchievementStatus = Field(
        default=AchievementStatus.available, sa_type=String(16)
    )
    filing_date: date | None = None  # a patent's application date
    publication_date: date | None = None  # a patent's publication date

    @field_validator("transfer_modes", mode="after")
    @classmethod
    def _dedupe_modes(cls, v: list[CoopMode]) -> list[CoopMode]:
        return _unique(v)

    @field_validator("ipc_codes", mode="after")
    @classmethod
    def _ipc(cls, v: list[str]) -> list[str]:
        codes = _unique([c.strip() for c in v if c and c.strip()])
        if len(codes) > 20 or any(len(c) > 32 for c in codes):
            raise ValueError("IPC 分类号最多 20 个, 每个不超过 32 字符 / at most 20 IPC codes of 32 characters")
        return codes


class AchievementCreate(AchievementBase):
    organisation_id: int

    @model_validator(mode="after")
    def _patent_number(self) -> AchievementCreate:
        if self.kind != AchievementKind.patent:
            self.patent_number = None
        if self.filing_date and self.publication_date and self.publication_date < self.filing_date:
            raise ValueError("公开日不能早于申请日 / the publication date cannot be before the filing date")
        return self


class AchievementUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=2, max_length=TITLE_MAX)
    description: str | None = Field(default=None, min_length=10, max_length=TEXT_MAX)
    industry_chain: IndustryChain | None = None
    technical_field: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=64)
    kind: AchievementKind | None = None
    patent_number: str | None = Field(default=None, max_length=64)
    ipc_codes: list[str] | None = None
    trl: int | None = Field(default=None, ge=1, le=9)
    maturity: Maturity | None = None
    transfer_modes: list[CoopMode] | None = None
    asking_price_wan: float | None = Field(default=None, ge=0, le=10_000_000)
    team: str | None = Field(default=None, max_length=200)
    status: AchievementStatus | None = None
    filing_date: date | None = None
    publication_date: date | None = None
    external_id: str | None = Field(default=None, max_length=EXTERNAL_ID_MAX)


class Achievement(AchievementBase, table=True):
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"), NO_REUSE)
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set when the record is deleted: it is kept (its matches, calls and audit trail
    # still point at it) but hidden from everyone but brokers, and never matched.
    deleted_at: datetime | None = Field(default=None, index=True)
    ipc_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    transfer_modes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    industry_chain: str = Field(sa_type=String(32), index=True)
    kind: str = Field(sa_type=String(16))
    maturity: str = Field(default=Maturity.lab.value, sa_type=String(16))
    status: str = Field(default=AchievementStatus.available.value, sa_type=String(16))


# --- vectors and index bookkeeping ---------------------------------------------------

class Embedding(SQLModel, table=True):
    """One passage vector of one record, and the model that made it."""

    __table_args__ = (UniqueConstraint("side", "record_id", "chunk"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    side: str = Field(max_length=16, index=True)
    record_id: int = Field(index=True)
    chunk: int = 0
    model_id: str = Field(max_length=300)
    text_hash: str = Field(max_length=64)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class IndexRevision(SQLModel, table=True):
    """Bumped in the same transaction as every write to a side's records or vectors.

    Each process compares it with the revision its in-memory index was built
    at, so several workers never serve a stale index.
    """

    side: str = Field(primary_key=True, max_length=16)
    revision: int = 0
    stats_version: int = 0  # the side's current corpus statistics (CorpusStats.version)


class IndexChange(SQLModel, table=True):
    """Which records a revision changed: a process that is behind catches up on these
    records alone instead of reloading the whole side."""

    __table_args__ = (Index("ix_indexchange_side_revision", "side", "revision"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    side: str = Field(max_length=16)
    revision: int
    record_id: int


class CorpusStats(SQLModel, table=True):
    """A side's corpus statistics, frozen: BM25 document frequencies and lengths, and the
    per-language mean and covariance of its vectors (dense scores are standardised with
    them).  Every process scores with the same snapshot, so a score computed now and
    one computed later agree until a new snapshot is taken (the stored match graph
    depends on that)."""

    __table_args__ = (UniqueConstraint("side", "version"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    side: str = Field(max_length=16)
    version: int
    revision: int  # the side's index revision it was computed at
    records: int
    model_id: str = Field(max_length=300)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class StoredMatch(SQLModel, table=True):
    """One candidate of one record's stored match list (the best K of the other side).

    Holds every candidate, confidential ones included: who may see which is decided
    when a list is read, by the one visibility rule.
    """

    __tablename__ = "stored_match"
    __table_args__ = (UniqueConstraint("side", "record_id", "other_id"),
                      Index("ix_stored_match_list", "side", "record_id", "score"),
                      Index("ix_stored_match_other", "side", "other_id"),
                      Index("ix_stored_match_queue", "side", "good", "strength"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    side: str = Field(max_length=16)  # the side of the record whose list this is
    record_id: int
    other_id: int
    score: float
    strength: float
    good: bool
    breakdown: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class MatchList(SQLModel, table=True):
    """The tag of one record's stored match list: what it was computed with."""

    __tablename__ = "match_list"

    side: str = Field(primary_key=True, max_length=16)
    record_id: int = Field(primary_key=True)
    model_id: str = Field(max_length=300)
    stats_version: int  # the other side's corpus statistics it was scored with
    revision: int  # the other side's index revision when it was (re)computed
    text_hash: str = Field(max_length=64)  # the record's text it was computed for
    full: bool  # the list holds K candidates (more may exist beyond it)
    kth_score: float | None = None  # the lowest score in a full list
    kth_id: int | None = None
    computed_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    """The outbox: work to do after a write, recorded in the write's own transaction.

    Delivered to the queue (RQ) after commit, or run in-process without one; a job
    whose delivery failed (Redis down, a crash) stays pending and is delivered again
    by the worker's sweep or ``techmatch matches verify``.  Jobs are idempotent.
    """

    __table_args__ = (Index("ix_job_pending", "state", "created_at"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(default="pending", max_length=16)  # pending, done, failed
    attempts: int = 0
    error: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    done_at: datetime | None = None


def _check_email(v: str) -> str:
    if not v:
        return v
    from pydantic import TypeAdapter

    TypeAdapter(EmailStr).validate_python(v)
    return v


# --- the broker workspace: matches, audit trail, alerts, open calls ------------------
#
# Records referenced here carry foreign keys: a deleted demand or achievement is
# kept (``deleted_at``), so a match, its audit trail and the failure library keep
# pointing at the record they were about, and an id is never given to another.

class MatchState(Labelled):
    recommended = "recommended", "已推荐", "Recommended"
    interested = "interested", "双方有意向", "Both interested"
    declined = "declined", "已婉拒", "Declined"
    negotiating = "negotiating", "洽谈中", "Negotiating"
    signed = "signed", "已签约", "Signed"
    failed = "failed", "未成交", "Failed"


class SideAnswer(Labelled):
    interested = "interested", "有意向", "Interested"
    declined = "declined", "婉拒", "Declined"


class FailureReason(Labelled):
    price = "price", "价格", "Price"
    maturity = "maturity", "技术成熟度", "Technology maturity"
    ip_ownership = "ip_ownership", "知识产权归属", "IP ownership"
    capability = "capability", "承接能力", "Capability"
    scope = "scope", "需求范围", "Scope"
    timing = "timing", "时间安排", "Timing"
    other = "other", "其他原因", "Other reasons"


class Match(SQLModel, table=True):
    """A broker's proposal that one demand and one achievement should meet.

    ``open_pair`` is ``"<demand_id>:<achievement_id>"`` while the match is
    alive (every state but declined and failed) and NULL afterwards; its
    unique constraint refuses a second live match of the same pair on every
    database, without a race.
    """

    __table_args__ = NO_REUSE

    id: int | None = Field(default=None, primary_key=True)
    demand_id: int = Field(foreign_key="demand.id", index=True)
    achievement_id: int = Field(foreign_key="achievement.id", index=True)
    state: str = Field(default=MatchState.recommended.value, sa_type=String(16), index=True)
    open_pair: str | None = Field(default=None, max_length=40, unique=True)
    broker_id: int = Field(foreign_key="user.id", index=True)
    demand_answer: str | None = Field(default=None, sa_type=String(16))
    achievement_answer: str | None = Field(default=None, sa_type=String(16))
    note: str = Field(default="", max_length=4000)
    amount_wan: float | None = None
    cooperation_mode: str | None = Field(default=None, sa_type=String(32))
    signed_on: date | None = None
    failure_reason: str | None = Field(default=None, sa_type=String(16), index=True)
    failure_note: str = Field(default="", max_length=4000)
    created_at: datetime = Field(default_factory=utcnow)
    last_activity_at: datetime = Field(default_factory=utcnow, index=True)


class MatchEvent(SQLModel, table=True):
    """One change of a match: the audit trail (never updated, never deleted)."""

    __table_args__ = NO_REUSE

    id: int | None = Field(default=None, primary_key=True)
    match_id: int = Field(foreign_key="match.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, sa_type=String(16))
    to_state: str = Field(sa_type=String(16))
    note: str = Field(default="", max_length=4000)
    at: datetime = Field(default_factory=utcnow, index=True)


class Notification(SQLModel, table=True):
    """An in-app message to one user; ``dedup_key`` makes a retried job harmless."""

    __table_args__ = (UniqueConstraint("user_id", "dedup_key"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    kind: str = Field(max_length=32)
    title_zh: str = Field(max_length=300)
    title_en: str = Field(max_length=300)
    body_zh: str = Field(default="", max_length=2000)
    body_en: str = Field(default="", max_length=2000)
    link: str = Field(default="", max_length=300)
    read: bool = False
    dedup_key: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Subscription(SQLModel, table=True):
    """A saved search: new records it ranks highly are announced to its owner."""

    __table_args__ = NO_REUSE

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    side: str = Field(max_length=16, index=True)
    query: str = Field(max_length=2000)
    filters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class CallVerdict(Labelled):
    winner = "winner", "揭榜成功", "Winner"
    shortlisted = "shortlisted", "入围", "Shortlisted"
    rejected = "rejected", "未入选", "Rejected"


class OpenCall(SQLModel, table=True):
    """揭榜挂帅: a demand published as an open call with a reward and a deadline."""

    __table_args__ = NO_REUSE

    id: int | None = Field(default=None, primary_key=True)
    demand_id: int = Field(foreign_key="demand.id", index=True, unique=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    reward_wan: float
    deadline: date
    created_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class CallSubmission(SQLModel, table=True):
    """An institution's answer to an open call: one of its achievements and a proposal.

    ``winner_of`` holds the call id while the submission is the winner and is
    NULL otherwise; its unique constraint allows one winner per call.
    """

    __table_args__ = (UniqueConstraint("call_id", "achievement_id"), NO_REUSE)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="opencall.id", index=True)
    achievement_id: int = Field(foreign_key="achievement.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    submitted_by: int = Field(foreign_key="user.id")
    proposal: str = Field(max_length=TEXT_MAX)
    score: int | None = None
    verdict: str | None = Field(default=None, sa_type=String(16))
    winner_of: int | None = Field(default=None, unique=True)
    graded_by: int | None = Field(default=None, foreign_key="user.id")
    graded_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class MatchCreate(SQLModel):
    """A broker's recommendation of an achievement for a demand."""

    demand_id: int = Field(ge=1)
    achievement_id: int = Field(ge=1)
    note: str = Field(default="", max_length=4000)

    @field_validator("note", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean_text(v)


class MatchUpdate(SQLModel):
    """A change of a match: a new state with its fields, and/or another assigned broker.

    ``signed`` needs ``amount_wan``, ``cooperation_mode`` and ``signed_on``;
    ``failed`` needs ``reason`` and ``note``.
    """

    state: MatchState | None = None
    note: str = Field(default="", max_length=4000)
    amount_wan: float | None = Field(default=None, gt=0, le=10_000_000)
    cooperation_mode: CoopMode | None = None
    signed_on: date | None = None
    reason: FailureReason | None = None
    broker_id: int | None = Field(default=None, ge=1)

    @field_validator("note", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean_text(v)


class OpenCallCreate(SQLModel):
    """An enterprise's demand published as an open call (揭榜挂帅)."""

    demand_id: int = Field(ge=1)
    reward_wan: float = Field(gt=0, le=10_000_000)
    deadline: date


class SubmissionCreate(SQLModel):
    """An institution's answer to an open call."""

    achievement_id: int = Field(ge=1)
    proposal: str = Field(min_length=10, max_length=TEXT_MAX)

    @field_validator("proposal", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean_text(v)


class SubmissionGrade(SQLModel):
    """The call owner's grade of one answer."""

    score: int = Field(ge=0, le=100)
    verdict: CallVerdict


class SubscriptionCreate(SQLModel):
    """A saved search of one side with optional filters (``side``: demand or achievement;
    the plurals are accepted too)."""

    side: Side
    query: str = Field(min_length=1, max_length=2000)
    industry_chain: IndustryChain | None = None
    region: str | None = Field(default=None, max_length=64)
    min_trl: int | None = Field(default=None, ge=1, le=9)
    cooperation_mode: CoopMode | None = None

    @field_validator("side", mode="before")
    @classmethod
    def _side(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("demands", "achievements"):
            return v.strip().lower()[:-1]
        return v

    @field_validator("query", "region", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return _clean_text(v)
