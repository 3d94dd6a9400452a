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
    CallVerdict,
    CoopMode,
    DemandCreate,
    DemandStatus,
    DemandUpdate,
    FailureReason,
    IndustryChain,
    MatchCreate,
    MatchState,
    MatchUpdate,
    Maturity,
    OpenCallCreate,
    Side,
    SideAnswer,
    SubmissionCreate,
    SubmissionGrade,
    SubscriptionCreate,
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


SIDE_DOC = ("检索对象: demand 或 achievement (复数 demands / achievements 亦可) / the side: demand or "
            "achievement (the plurals demands / achievements are accepted too)")
SideName = Literal["demand", "achievement", "demands", "achievements"]


class SearchQuery(BaseModel):
    """自由文本检索 / free-text search of one side (achievements unless ``side`` says otherwise)."""

    model_config = FORBID
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    side: SideName = Field(default="achievement", description=SIDE_DOC)
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
    external_id: str | None = Field(default=None, description="来源系统中的编号 / the id in the source system")
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
    filing_date: date | None = Field(default=None, description="申请日 / a patent's application date")
    publication_date: date | None = Field(default=None, description="公开日 / a patent's publication date")


class _Page(BaseModel):
    total: int
    page: int
    per_page: int


class DemandPage(_Page):
    items: list[DemandOut]


class AchievementPage(_Page):
    items: list[AchievementOut]


class MatchWarning(BaseModel):
    """类似对接的失败记录 / a similar pairing that failed before."""

    reason: FailureReason
    message_zh: str
    message_en: str
    match_id: int | None = Field(description="失败的对接 (调用者无权查看时为空) / the failed match "
                                             "(null when the caller may not see it)")
    similarity: float = Field(description="需求与成果两侧余弦相似度的较小者 / the smaller of the two "
                                          "cosine similarities")


class _Scored(BaseModel):
    score: float = Field(description="排序分数 / ranking score (only comparable within one answer)")
    strength: float = Field(description="匹配强度 0..1 / absolute match strength 0..1")
    good: bool = Field(description="强度达到阈值 / strength reaches the good-match threshold")
    breakdown: dict[str, Any]
    explanation: dict[str, Any] = Field(
        description="共同关键词、最相近的句子对、兼容性检查 / shared terms, best sentence pair, checks")
    warnings: list[MatchWarning] = Field(
        default_factory=list,
        description="类似对接曾失败的提醒 (仅匹配结果) / similar pairings that failed (match results only)")


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


# --- the broker workspace: matches, queue, failures, alerts, open calls, statistics ---------


class MatchIn(MatchCreate):
    """经纪人推荐对接 / a broker recommends an achievement for a demand."""

    model_config = FORBID


class MatchPatch(MatchUpdate):
    """对接状态变更 / move a match to a new state (and/or assign another broker).

    ``interested`` / ``declined``: the demand's enterprise or the achievement's
    institution answers for its own side.  ``negotiating``, ``signed`` (needs
    ``amount_wan``, ``cooperation_mode``, ``signed_on``) and ``failed`` (needs
    ``reason`` and ``note``): brokers.  403 for a role that may not make the
    change, 409 for a transition not allowed from the current state.
    """

    model_config = FORBID


class MatchListQuery(BaseModel):
    """对接筛选 / filters of the match list."""

    model_config = FORBID
    state: MatchState | None = None
    demand_id: int | None = Field(default=None, ge=1)
    achievement_id: int | None = Field(default=None, ge=1)
    broker_id: int | None = Field(default=None, ge=1)
    limit: int = Field(default=100, ge=1, le=500)


class QueueQuery(BaseModel):
    """经纪人工作台 / the broker's queue."""

    model_config = FORBID
    stale_days: int = Field(default=14, ge=1, le=365)
    limit: int = Field(default=50, ge=1, le=200)


class FailureQuery(BaseModel):
    """失败案例检索 / search of the failure library (every word must occur; empty lists all)."""

    model_config = FORBID
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    reason: FailureReason | None = None
    limit: int = Field(default=50, ge=1, le=200)


class NotificationQuery(BaseModel):
    model_config = FORBID
    unread: bool = False
    limit: int = Field(default=50, ge=1, le=200)


class SubscriptionIn(SubscriptionCreate):
    """保存检索订阅 / save a search: new records it ranks highly are announced to you."""

    model_config = FORBID


class CallIn(OpenCallCreate):
    """发布揭榜挂帅 / publish an own open demand as an open call with a reward (万元) and a deadline."""

    model_config = FORBID


class SubmissionIn(SubmissionCreate):
    """揭榜 / answer a call with an own achievement and a proposal."""

    model_config = FORBID


class GradeIn(SubmissionGrade):
    """评审揭榜方案 / grade an answer (score 0-100, verdict)."""

    model_config = FORBID


class RecordRef(BaseModel):
    """需求或成果的摘要 / a demand or achievement in brief."""

    id: int
    title: str
    industry_chain: IndustryChain
    organisation_id: int
    organisation_name: str | None


class MatchEventOut(BaseModel):
    id: int
    user_id: int | None
    username: str | None
    action: str
    from_state: MatchState | None
    to_state: MatchState
    note: str
    at: datetime


class MatchOut(BaseModel):
    """一次对接 / a match (records are null once deleted)."""

    id: int
    state: MatchState
    state_zh: str
    state_en: str
    demand_id: int
    achievement_id: int
    demand: RecordRef | None
    achievement: RecordRef | None
    broker_id: int
    demand_answer: SideAnswer | None
    achievement_answer: SideAnswer | None
    note: str
    amount_wan: float | None
    cooperation_mode: CoopMode | None
    signed_on: date | None
    failure_reason: FailureReason | None
    failure_note: str
    created_at: datetime
    last_activity_at: datetime


class MatchDetail(MatchOut):
    """对接详情与审计记录 / a match with its audit trail (oldest first)."""

    events: list[MatchEventOut]
    warnings: list[MatchWarning]


class MatchList(BaseModel):
    items: list[MatchOut]


class QueueCandidate(BaseModel):
    demand: RecordRef
    achievement: RecordRef
    score: float
    strength: float
    warnings: list[MatchWarning]


class BrokerQueue(BaseModel):
    """经纪人工作台 / unreviewed good pairs, my live matches, and stale live matches."""

    unreviewed: list[QueueCandidate]
    mine: list[MatchOut]
    stale: list[MatchOut]
    stale_days: int


class FailureOut(BaseModel):
    match: MatchOut
    reason_zh: str
    reason_en: str


class FailureList(BaseModel):
    """失败案例, 最相关在前 / failed matches, best hits first."""

    items: list[FailureOut]


class NotificationOut(BaseModel):
    id: int
    kind: str
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    link: str
    read: bool
    created_at: datetime


class NotificationList(BaseModel):
    """我的通知, 最新在前 / own notifications, newest first."""

    items: list[NotificationOut]
    unread: int


class SubscriptionOut(BaseModel):
    id: int
    side: Side
    query: str
    filters: dict[str, Any]
    created_at: datetime


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]


class SubmissionOut(BaseModel):
    id: int
    call_id: int
    achievement_id: int
    achievement: RecordRef | None
    organisation_id: int
    proposal: str
    score: int | None
    verdict: CallVerdict | None
    created_at: datetime
    graded_at: datetime | None


class CallOut(BaseModel):
    """揭榜挂帅 / an open call (answers as the caller may see them)."""

    id: int
    demand_id: int
    demand: RecordRef
    organisation_id: int
    reward_wan: float
    deadline: date
    status: Literal["open", "closed", "awarded"]
    created_at: datetime
    submissions: list[SubmissionOut]


class CallDetail(CallOut):
    suggested_solvers: list[AchievementResult] = Field(
        description="最匹配的成果 / the best-matching achievements")


class CallList(BaseModel):
    items: list[CallOut]


class ChainStats(BaseModel):
    industry_chain: str
    label_zh: str
    label_en: str
    recommended: int
    signed: int
    conversion: float | None
    median_days_to_sign: float | None
    supply_gaps: int


class StatsOut(BaseModel):
    """平台统计 / platform statistics (see ``matcher.stats.compute``)."""

    funnel: dict[str, int]
    by_state: dict[str, int]
    conversion: float | None
    median_days_to_sign: float | None
    chains: list[ChainStats]
    supply_gaps: int
    trl_distribution: dict[str, int]
    failure_reasons: dict[str, int]
