"""Request and response bodies of the JSON API.

The request models are the domain's ``...Create`` / ``...Update`` models with
unknown fields forbidden, so the API validates exactly what the service will
store and the OpenAPI document shows exactly what is validated.  The response
models describe the public serialisation (``web.api.serialise``); they are
also checked against every answer, so the document cannot drift from the code.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from matcher.models import (
    AchievementCreate,
    AchievementKind,
    AchievementStatus,
    AchievementUpdate,
    CoopMode,
    DemandCreate,
    DemandStatus,
    DemandUpdate,
    IndustryChain,
    Maturity,
)

FORBID = ConfigDict(extra="forbid")
MAX_K = 50

# --- requests ---------------------------------------------------------------------


class TokenRequest(BaseModel):
    """用户名与密码 / username and password."""

    model_config = FORBID
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class DemandIn(DemandCreate):
    """新技术需求 / a new technology demand.

    ``organisation_id``: enterprises may omit it (their own organisation is
    used); brokers must give it.
    """

    model_config = FORBID
    organisation_id: int | None = None  # type: ignore[assignment]


class DemandPatch(DemandUpdate):
    """需求的部分修改 / a partial update of a demand (only the fields given change)."""

    model_config = FORBID


class AchievementIn(AchievementCreate):
    """新科技成果 / a new research achievement.

    ``organisation_id``: institutions may omit it (their own organisation is
    used); brokers must give it.
    """

    model_config = FORBID
    organisation_id: int | None = None  # type: ignore[assignment]


class AchievementPatch(AchievementUpdate):
    """成果的部分修改 / a partial update of an achievement (only the fields given change)."""

    model_config = FORBID


class _ListQuery(BaseModel):
    model_config = FORBID
    industry_chain: IndustryChain | None = None
    region: str | None = Field(default=None, max_length=64)
    min_trl: int | None = Field(default=None, ge=1, le=9)
    cooperation_mode: CoopMode | None = None
    organisation_id: int | None = Field(default=None, ge=1)
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)


class DemandListQuery(_ListQuery):
    """需求列表的筛选与分页 / filters and paging of the demand list (every status unless given)."""

    status: DemandStatus | None = None


class AchievementListQuery(_ListQuery):
    """成果列表的筛选与分页 / filters and paging of the achievement list (every status unless given)."""

    status: AchievementStatus | None = None


class MatchQuery(BaseModel):
    """匹配结果数与筛选 / how many matches, and filters on the matched side.

    Only open demands and available achievements are matched.
    """

    model_config = FORBID
    k: int = Field(default=10, ge=1, le=MAX_K)
    industry_chain: IndustryChain | None = None
    region: str | None = Field(default=None, max_length=64)
    min_trl: int | None = Field(default=None, ge=1, le=9)
    cooperation_mode: CoopMode | None = None


class SearchQuery(BaseModel):
    """自由文本检索 / free-text search of one side (achievements unless ``side`` says otherwise)."""

    model_config = FORBID
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    side: Literal["demands", "achievements"] = "achievements"
    k: int = Field(default=10, ge=1, le=MAX_K)


# --- responses --------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: int
    message: str = Field(description="中文在前, 英文在后 / Chinese first, then English")
    fields: dict[str, str] = Field(default_factory=dict,
                                   description="每个出错字段一条说明 / one message per invalid field")


class ErrorOut(BaseModel):
    """错误 / an error."""

    error: ErrorDetail


class TokenOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class _RecordOut(BaseModel):
    id: int
    title: str
    description: str
    industry_chain: IndustryChain
    technical_field: str
    region: str
    status: str
    organisation_id: int
    organisation_name: str | None
    created_at: datetime
    updated_at: datetime


CONTACT_NOTE = "仅经纪人与发布机构可见, 其他人不返回此字段 / only brokers and the owning organisation get this field"


class DemandOut(_RecordOut):
    """技术需求 / a technology demand."""

    status: DemandStatus
    budget_wan: float | None
    deadline: date | None
    cooperation_modes: list[CoopMode]
    required_trl: int
    confidential: bool
    contact_name: str | None = Field(default=None, description=CONTACT_NOTE)
    contact_phone: str | None = Field(default=None, description=CONTACT_NOTE)
    contact_email: str | None = Field(default=None, description=CONTACT_NOTE)


class AchievementOut(_RecordOut):
    """科技成果 / a research achievement."""

    status: AchievementStatus
    kind: AchievementKind
    patent_number: str | None
    ipc_codes: list[str]
    trl: int
    maturity: Maturity
    transfer_modes: list[CoopMode]
    asking_price_wan: float | None
    team: str


class _Page(BaseModel):
    total: int
    page: int
    per_page: int


class DemandPage(_Page):
    items: list[DemandOut]


class AchievementPage(_Page):
    items: list[AchievementOut]


class _Scored(BaseModel):
    score: float = Field(description="排序分数 / ranking score (only comparable within one answer)")
    strength: float = Field(description="匹配强度 0..1 / absolute match strength 0..1")
    good: bool = Field(description="强度达到阈值 / strength reaches the good-match threshold")
    breakdown: dict[str, Any]
    explanation: dict[str, Any] = Field(
        description="共同关键词、最相近的句子对、兼容性检查 / shared terms, best sentence pair, checks")


class AchievementResult(_Scored):
    achievement: AchievementOut


class DemandResult(_Scored):
    demand: DemandOut


class AchievementResults(BaseModel):
    """最佳成果在前 / best achievements first."""

    results: list[AchievementResult]


class DemandResults(BaseModel):
    """最佳需求在前 / best demands first."""

    results: list[DemandResult]


class SearchResults(BaseModel):
    """检索结果, 最相关在前 / search results, best first (demand or achievement objects by ``side``)."""

    results: list[DemandResult | AchievementResult]
