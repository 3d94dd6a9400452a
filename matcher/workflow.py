"""The match pipeline: a broker recommends a pairing, both sides answer, the broker closes it.

State machine (``PATCH state=`` names the target state):

====================  ========================  ==========================  =========================
target state          from                      who                         needs
====================  ========================  ==========================  =========================
recommended (create)  -                         broker                      demand, achievement
interested            recommended, own side     enterprise user of the      -
                      not answered yet          demand's organisation /
                                                institution user of the
                                                achievement's organisation
declined              recommended, interested   the same, for its own side  -
negotiating           interested                broker                      -
signed                negotiating               broker                      amount_wan > 0,
                                                                            cooperation_mode,
                                                                            signed_on
failed                interested, negotiating   broker                      reason, note
====================  ========================  ==========================  =========================

Each side's answer is kept (``demand_answer`` / ``achievement_answer``).  The
match becomes ``interested`` once both sides said interested and ``declined``
as soon as either declines.  Declined, signed and failed are final.

Checks, in this order: a match the caller may not see is 404; a caller whose
role may not move a match to that state is 403 (admins never act); a
transition not allowed from the current state is 409; missing or bad fields
are 422.

Confidential demands: their matches are seen only by brokers and the demand's
organisation (as the records are).  The achievement's institution therefore
never sees such a match, so the broker relays the institution's answer: for a
match on a confidential demand a broker may answer for the achievement side
(the audit trail records that the broker did).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from matcher.alerts import notify_org
from matcher.errors import Conflict, Forbidden, NotFound, ValidationFailed
from matcher.models import (
    Achievement,
    AchievementStatus,
    Demand,
    DemandStatus,
    Match,
    MatchCreate,
    MatchEvent,
    MatchState,
    MatchUpdate,
    Role,
    SideAnswer,
    User,
    utcnow,
)
from matcher.service import MatcherService
from matcher.visibility import Viewer

S = MatchState
FINAL = {S.declined.value, S.signed.value, S.failed.value}
LIVE = [S.recommended.value, S.interested.value, S.negotiating.value]
# "recommended" is reached only by creating a match: as a PATCH target it is
# refused like any other transition not allowed (409 for brokers, 403 for the rest).
BROKER_TARGETS: dict[MatchState, set[MatchState]] = {
    S.recommended: set(), S.negotiating: {S.interested}, S.signed: {S.negotiating},
    S.failed: {S.interested, S.negotiating}}
SIDE_TARGETS = {S.interested: {S.recommended}, S.declined: {S.recommended, S.interested}}
DEFAULT_STALE_DAYS = 14

NOT_ALLOWED = "状态转换不允许 / transition not allowed"


# --- who sees a match ---------------------------------------------------------------------

@dataclass
class Parties:
    demand: Demand | None
    achievement: Achievement | None


def parties(session: Session, match: Match) -> Parties:
    return Parties(session.get(Demand, match.demand_id), session.get(Achievement, match.achievement_id))


def can_see(viewer: Viewer, p: Parties) -> bool:
    """Brokers see every match; admins the non-confidential ones; organisations their own.

    A match on a demand the viewer may not see (confidential, or deleted since) is seen
    only by brokers (and, for a confidential one, the demand's organisation): the one
    visibility rule decides.
    """
    if viewer.is_broker:
        return True
    if p.demand is None or not viewer.can_see(p.demand):
        return False
    if p.demand.confidential:
        return viewer.organisation_id is not None and viewer.organisation_id == p.demand.organisation_id
    if viewer.role == Role.admin.value:
        return True
    orgs = {p.demand.organisation_id, p.achievement.organisation_id if p.achievement else None}
    return viewer.organisation_id is not None and viewer.organisation_id in orgs


def _load(session: Session, match_id: int, viewer: Viewer, *, lock: bool = False) -> tuple[Match, Parties]:
    match = session.get(Match, match_id, with_for_update=lock)
    if match is None:
        raise NotFound(f"match {match_id} not found")
    p = parties(session, match)
    if not can_see(viewer, p):
        raise NotFound(f"match {match_id} not found")
    return match, p


def get_match(engine, match_id: int, viewer: Viewer) -> tuple[Match, Parties, list[MatchEvent]]:
    """A match with its records and audit trail (oldest first); NotFound if the viewer may not see it."""
    with Session(engine, expire_on_commit=False) as session:
        match, p = _load(session, match_id, viewer)
        events = session.exec(select(MatchEvent).where(MatchEvent.match_id == match_id)
                              .order_by(MatchEvent.id)).all()  # the order they happened in
        return match, p, list(events)


def with_parties(engine, matches: list[Match]) -> list[tuple[Match, Parties]]:
    """Each match with its demand and achievement (None where deleted)."""
    with Session(engine, expire_on_commit=False) as session:
        return [(m, parties(session, m)) for m in matches]


def live_matches(engine, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """The live match (its id) of each given (demand id, achievement id) pair that has one."""
    if not pairs:
        return {}
    keys = [_pair_key(d, a) for d, a in pairs]
    with Session(engine) as session:
        rows = session.exec(select(Match.id, Match.demand_id, Match.achievement_id)
                            .where(Match.open_pair.in_(keys))).all()
    return {(d, a): mid for mid, d, a in rows}


def list_matches(engine, viewer: Viewer, *, state: str | None = None, broker_id: int | None = None,
                 demand_id: int | None = None, achievement_id: int | None = None,
                 limit: int = 100) -> list[tuple[Match, Parties]]:
    """Matches the viewer may see, most recently active first."""
    conds: list[Any] = []
    if state:
        conds.append(Match.state == state)
    if broker_id:
        conds.append(Match.broker_id == broker_id)
    if demand_id:
        conds.append(Match.demand_id == demand_id)
    if achievement_id:
        conds.append(Match.achievement_id == achievement_id)
    if not viewer.is_broker and viewer.role != Role.admin.value:
        if viewer.organisation_id is None:
            return []
        org = viewer.organisation_id
        conds.append(Match.demand_id.in_(select(Demand.id).where(Demand.organisation_id == org))
                     | Match.achievement_id.in_(select(Achievement.id).where(
                         Achievement.organisation_id == org)))
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(select(Match).where(*conds)
                            .order_by(Match.last_activity_at.desc(), Match.id.desc())).all()
        out = []
        for m in rows:
            p = parties(session, m)
            if can_see(viewer, p):
                out.append((m, p))
                if len(out) >= limit:
                    break
        return out


# --- writes ---------------------------------------------------------------------------------

def _event(session: Session, match: Match, actor: Viewer, action: str, from_state: str | None,
           note: str, now: datetime) -> None:
    session.add(MatchEvent(match_id=match.id, user_id=actor.user_id, action=action,
                           from_state=from_state, to_state=match.state, note=note, at=now))


def _pair_key(demand_id: int, achievement_id: int) -> str:
    return f"{demand_id}:{achievement_id}"


def recommend(engine, *, actor: Viewer, data: MatchCreate, now: datetime | None = None) -> Match:
    """A broker proposes that a demand and an achievement meet; both organisations are notified.

    Raises:
        Forbidden: the actor is not a broker.
        ValidationFailed: no such (open) demand or (available) achievement.
        Conflict: the pair already has a live or signed match.
    """
    if actor.role != Role.broker.value:
        raise Forbidden("only brokers recommend matches")
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        demand = session.get(Demand, data.demand_id)
        achievement = session.get(Achievement, data.achievement_id)
        errors = {}
        if demand is None:
            errors["demand_id"] = "需求不存在 / no such demand"
        elif demand.status != DemandStatus.open.value:
            errors["demand_id"] = "需求不在征集中 / the demand is not open"
        if achievement is None:
            errors["achievement_id"] = "成果不存在 / no such achievement"
        elif achievement.status != AchievementStatus.available.value:
            errors["achievement_id"] = "成果不可转化 / the achievement is not available"
        if errors:
            raise ValidationFailed(errors)
        assert demand is not None and achievement is not None
        signed = session.exec(select(Match.id).where(
            Match.demand_id == demand.id, Match.achievement_id == achievement.id,
            Match.state == S.signed.value)).first()
        if signed is not None:
            raise Conflict(f"pair already signed in match {signed}")
        match = Match(demand_id=demand.id, achievement_id=achievement.id, broker_id=actor.user_id,
                      state=S.recommended.value, open_pair=_pair_key(demand.id, achievement.id),
                      note=data.note, created_at=now, last_activity_at=now)
        session.add(match)
        try:
            session.flush()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict("the pair already has a live match") from exc
        _event(session, match, actor, "recommend", None, data.note, now)
        _notify_parties(session, match, demand, achievement,
                        title_zh=f"技术经纪人推荐对接: {demand.title} ⇄ {achievement.title}",
                        title_en=f"A broker recommends a pairing: {demand.title} ⇄ {achievement.title}")
        try:
            session.commit()
        except IntegrityError as exc:  # a concurrent recommendation of the same pair won
            session.rollback()
            raise Conflict("the pair already has a live match") from exc
        return match


def _notify_parties(session: Session, match: Match, demand: Demand, achievement: Achievement, *,
                    title_zh: str, title_en: str) -> None:
    link = f"/matches/{match.id}"
    key = f"matchstate:{match.id}:{match.state}"
    notify_org(session, demand.organisation_id, kind="pipeline", title_zh=title_zh, title_en=title_en,
               link=link, dedup_key=key)
    if not demand.confidential:  # the institution may not see a confidential demand's match
        notify_org(session, achievement.organisation_id, kind="pipeline", title_zh=title_zh,
                   title_en=title_en, link=link, dedup_key=key)


def answering_side(actor: Viewer, p: Parties) -> str | None:
    """Which side's answer the actor gives: "demand", "achievement" or None (may not answer)."""
    if actor.organisation_id is not None:
        if actor.role == Role.enterprise.value and p.demand and actor.organisation_id == p.demand.organisation_id:
            return "demand"
        if (actor.role == Role.institution.value and p.achievement
                and actor.organisation_id == p.achievement.organisation_id):
            return "achievement"
    if actor.role == Role.broker.value and p.demand is not None and p.demand.confidential:
        return "achievement"  # relayed: the institution cannot see this match
    return None


def change(engine, match_id: int, *, actor: Viewer, data: MatchUpdate,
           now: datetime | None = None) -> Match:
    """Move a match to ``data.state`` (and/or reassign its broker), with an audit entry.

    Raises:
        NotFound: no such match, or one the actor may not see.
        Forbidden: the actor's role may not make this change.
        Conflict: the change is not allowed from the current state.
        ValidationFailed: a field the target state needs is missing.
    """
    now = now or utcnow()
    if data.state is None and data.broker_id is None:
        raise ValidationFailed({"state": "请指定新状态 / give the new state"})
    with Session(engine, expire_on_commit=False) as session:
        match, p = _load(session, match_id, actor, lock=True)
        if actor.role not in (Role.broker.value, Role.enterprise.value, Role.institution.value):
            raise Forbidden("this role may not act on matches")
        if data.broker_id is not None:
            _reassign(session, match, actor, data, now)
        if data.state is not None:
            _transition(session, match, p, actor, data, now)
        match.last_activity_at = now
        session.add(match)
        session.commit()
        return match


def _reassign(session: Session, match: Match, actor: Viewer, data: MatchUpdate, now: datetime) -> None:
    if actor.role != Role.broker.value:
        raise Forbidden("only brokers assign brokers")
    user = session.get(User, data.broker_id)
    if user is None or user.role != Role.broker.value or not user.active:
        raise ValidationFailed({"broker_id": "该用户不是技术经纪人 / that user is not a broker"})
    if match.state in FINAL:
        raise Conflict(NOT_ALLOWED)
    match.broker_id = user.id
    _event(session, match, actor, "assign", match.state,
           data.note if data.state is None else f"broker -> {user.username}", now)


def _transition(session: Session, match: Match, p: Parties, actor: Viewer, data: MatchUpdate,
                now: datetime) -> None:
    target = MatchState(data.state)
    before = match.state
    if target in SIDE_TARGETS:
        side = answering_side(actor, p)
        if side is None:
            raise Forbidden("only the side's own organisation answers")
        answer_field = f"{side}_answer"
        current = getattr(match, answer_field)
        if before not in {s.value for s in SIDE_TARGETS[target]}:
            raise Conflict(NOT_ALLOWED)
        if target is S.interested and current is not None:
            raise Conflict(NOT_ALLOWED)  # answered already
        if target is S.declined and current == SideAnswer.declined.value:
            raise Conflict(NOT_ALLOWED)
        setattr(match, answer_field, SideAnswer(target.value).value)
        if target is S.declined:
            match.state = S.declined.value
        elif match.demand_answer == match.achievement_answer == SideAnswer.interested.value:
            match.state = S.interested.value
        action = f"{side}_{target.value}"
        if actor.role == Role.broker.value:
            action += "_relayed"
    else:
        if actor.role != Role.broker.value:
            raise Forbidden("only brokers move a match to this state")
        if before not in {s.value for s in BROKER_TARGETS[target]}:
            raise Conflict(NOT_ALLOWED)
        if target is S.signed:
            errors = {}
            if data.amount_wan is None:
                errors["amount_wan"] = "签约金额(万元)为必填项 / amount_wan (10k CNY) is required"
            if data.cooperation_mode is None:
                errors["cooperation_mode"] = "合作方式为必填项 / cooperation_mode is required"
            if data.signed_on is None:
                errors["signed_on"] = "签约日期为必填项 / signed_on is required"
            if errors:
                raise ValidationFailed(errors)
            match.amount_wan = data.amount_wan
            match.cooperation_mode = data.cooperation_mode.value if data.cooperation_mode else None
            match.signed_on = data.signed_on
        if target is S.failed:
            errors = {}
            if data.reason is None:
                errors["reason"] = "失败原因为必填项 / reason is required"
            if not data.note:
                errors["note"] = "请说明失败经过 / note is required"
            if errors:
                raise ValidationFailed(errors)
            match.failure_reason = data.reason.value if data.reason else None
            match.failure_note = data.note
        match.state = target.value
        action = target.value
    if match.state in FINAL:
        match.open_pair = None
    _event(session, match, actor, action, before, data.note, now)
    if match.state != before and p.demand is not None and p.achievement is not None:
        st = MatchState(match.state)
        _notify_parties(session, match, p.demand, p.achievement,
                        title_zh=f"对接状态变为「{st.zh}」: {p.demand.title} ⇄ {p.achievement.title}",
                        title_en=f"Match is now “{st.en}”: {p.demand.title} ⇄ {p.achievement.title}")


# --- the broker's queue ----------------------------------------------------------------------

@dataclass
class Candidate:
    """A high-scoring pair nobody has looked at yet."""

    demand: Demand
    achievement: Achievement
    score: float
    strength: float


def unreviewed_pairs(service: MatcherService, *, per_demand: int = 5, limit: int = 50) -> list[Candidate]:
    """Good matches (``MatchResult.good``) of open demands that have no match record yet, strongest
    first, at most ``per_demand`` per demand: read from the stored match graph (one query)."""
    return [Candidate(d, a, score, strength)
            for d, a, score, strength in service.store.unreviewed(limit=limit, per_demand=per_demand)]


def stale_matches(engine, *, days: int = DEFAULT_STALE_DAYS, now: datetime | None = None) -> list[Match]:
    """Live matches with no activity for ``days`` days, longest idle first."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(select(Match).where(
            Match.state.in_(LIVE), Match.last_activity_at < cutoff)
            .order_by(Match.last_activity_at, Match.id)).all())


def my_matches(engine, broker_id: int) -> list[Match]:
    """Live matches assigned to a broker, most recently active first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(select(Match).where(
            Match.broker_id == broker_id, Match.state.in_(LIVE))
            .order_by(Match.last_activity_at.desc(), Match.id.desc())).all())


def aware(dt: datetime) -> datetime:
    """A stored datetime as UTC-aware (SQLite hands back naive ones, written as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
