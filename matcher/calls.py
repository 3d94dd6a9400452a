"""Open calls (揭榜挂帅): an enterprise publishes a demand with a reward; institutions answer.

Rules:
- only an enterprise user publishes, for an open demand of its own organisation;
  a confidential demand cannot become a public call (422), one call per demand (409);
- the deadline is a date; answers are accepted until the end of that day
  (server date), later ones are refused (422), as are answers after a winner
  was chosen (409);
- institutions answer with one of their own organisation's achievements
  (one answer per achievement);
- only enterprise users of the call's organisation grade (score 0-100 and a
  verdict); nobody grades an answer of their own organisation or their own
  answer (403); one winner per call (409; demote the winner first to change it).

Calls are public, except that a call whose demand has since been made
confidential is seen only by brokers and its organisation.  Answers are seen
by brokers and the call's organisation; an institution sees its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from matcher.errors import Conflict, Forbidden, NotFound, ValidationFailed
from matcher.models import (
    Achievement,
    CallSubmission,
    CallVerdict,
    Demand,
    DemandStatus,
    OpenCall,
    OpenCallCreate,
    Role,
    SubmissionCreate,
    SubmissionGrade,
    utcnow,
)
from matcher.visibility import Viewer


@dataclass
class CallView:
    call: OpenCall
    demand: Demand
    submissions: list[CallSubmission]  # those the viewer may see
    awarded: bool = False  # a winner was chosen (whether or not the viewer sees it)

    def status(self, today: date | None = None) -> str:
        if self.awarded:
            return "awarded"
        return "open" if (today or date.today()) <= self.call.deadline else "closed"


def achievements_of(engine, ids) -> dict[int, Achievement]:
    """The achievements that answered, by id (deleted ones are missing)."""
    ids = set(ids)
    if not ids:
        return {}
    with Session(engine, expire_on_commit=False) as session:
        return {a.id: a for a in session.exec(select(Achievement).where(Achievement.id.in_(ids))).all()}


def _visible_call(session: Session, call_id: int, viewer: Viewer) -> tuple[OpenCall, Demand]:
    call = session.get(OpenCall, call_id)
    demand = session.get(Demand, call.demand_id) if call else None
    if call is None or demand is None or not viewer.can_see_demand(demand):
        raise NotFound(f"call {call_id} not found")
    return call, demand


def _sees_all_answers(viewer: Viewer, call: OpenCall) -> bool:
    return viewer.is_broker or viewer.organisation_id == call.organisation_id


def create_call(engine, *, actor: Viewer, data: OpenCallCreate, today: date | None = None) -> OpenCall:
    """Publish an enterprise's own open demand as an open call.

    Raises:
        Forbidden: not an enterprise user, or not the demand's organisation.
        ValidationFailed: no such demand, confidential, not open, or a deadline in the past.
        Conflict: the demand already has a call.
    """
    if actor.role != Role.enterprise.value or actor.organisation_id is None:
        raise Forbidden("only enterprises publish open calls")
    with Session(engine, expire_on_commit=False) as session:
        demand = session.get(Demand, data.demand_id)
        if demand is None or not actor.can_see_demand(demand):
            raise ValidationFailed({"demand_id": "需求不存在 / no such demand"})
        if demand.organisation_id != actor.organisation_id:
            raise Forbidden("only the demand's own organisation publishes it")
        errors = {}
        if demand.confidential:
            errors["demand_id"] = "保密需求不能公开揭榜 / a confidential demand cannot become a public call"
        elif demand.status != DemandStatus.open.value:
            errors["demand_id"] = "需求不在征集中 / the demand is not open"
        if data.deadline < (today or date.today()):
            errors["deadline"] = "截止日期不能早于今天 / the deadline cannot be in the past"
        if errors:
            raise ValidationFailed(errors)
        call = OpenCall(demand_id=demand.id, organisation_id=demand.organisation_id,
                        reward_wan=data.reward_wan, deadline=data.deadline, created_by=actor.user_id)
        session.add(call)
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict("the demand already has an open call") from exc
        return call


def _view(session: Session, call: OpenCall, demand: Demand, viewer: Viewer) -> CallView:
    awarded = session.exec(select(CallSubmission.id).where(CallSubmission.winner_of == call.id)).first()
    return CallView(call, demand, _answers(session, call, viewer), awarded is not None)


def _answers(session: Session, call: OpenCall, viewer: Viewer) -> list[CallSubmission]:
    conds = [CallSubmission.call_id == call.id]
    if not _sees_all_answers(viewer, call):
        if viewer.organisation_id is None:
            return []
        conds.append(CallSubmission.organisation_id == viewer.organisation_id)
    return list(session.exec(select(CallSubmission).where(*conds).order_by(CallSubmission.id)).all())


def list_calls(engine, viewer: Viewer) -> list[CallView]:
    """Calls the viewer may see, latest deadline first (with the answers they may see)."""
    with Session(engine, expire_on_commit=False) as session:
        out = []
        for call in session.exec(select(OpenCall).order_by(OpenCall.deadline.desc(), OpenCall.id.desc())):
            demand = session.get(Demand, call.demand_id)
            if demand is not None and viewer.can_see_demand(demand):
                out.append(_view(session, call, demand, viewer))
        return out


def get_call(engine, call_id: int, viewer: Viewer) -> CallView:
    with Session(engine, expire_on_commit=False) as session:
        call, demand = _visible_call(session, call_id, viewer)
        return _view(session, call, demand, viewer)


def submit(engine, call_id: int, *, actor: Viewer, data: SubmissionCreate,
           today: date | None = None) -> CallSubmission:
    """An institution answers a call with one of its achievements.

    Raises:
        NotFound: no such call (or one the actor may not see).
        Forbidden: not an institution user.
        ValidationFailed: past the deadline, or not the actor's own achievement.
        Conflict: the call has a winner, or this achievement answered already.
    """
    with Session(engine, expire_on_commit=False) as session:
        call, _ = _visible_call(session, call_id, actor)
        if actor.role != Role.institution.value or actor.organisation_id is None:
            raise Forbidden("only institutions answer open calls")
        if (today or date.today()) > call.deadline:
            raise ValidationFailed({"deadline": f"揭榜已于 {call.deadline} 截止 / the call closed on "
                                                f"{call.deadline}"})
        achievement = session.get(Achievement, data.achievement_id)
        if achievement is None or achievement.organisation_id != actor.organisation_id:
            raise ValidationFailed({"achievement_id": "只能以本单位的成果揭榜 / answer with an "
                                                      "achievement of your own organisation"})
        if session.exec(select(CallSubmission.id).where(CallSubmission.winner_of == call.id)).first():
            raise Conflict("the call has a winner")
        row = CallSubmission(call_id=call.id, achievement_id=achievement.id,
                             organisation_id=actor.organisation_id, submitted_by=actor.user_id,
                             proposal=data.proposal)
        session.add(row)
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict("this achievement answered the call already") from exc
        return row


def grade(engine, call_id: int, submission_id: int, *, actor: Viewer, data: SubmissionGrade,
          now: datetime | None = None) -> CallSubmission:
    """The call's enterprise grades one answer.

    Raises:
        NotFound: no such call or answer.
        Forbidden: not an enterprise user of the call's organisation, or the actor's own answer.
        Conflict: a second winner.
    """
    with Session(engine, expire_on_commit=False) as session:
        call, _ = _visible_call(session, call_id, actor)
        row = session.get(CallSubmission, submission_id)
        if row is None or row.call_id != call.id:
            raise NotFound(f"submission {submission_id} not found")
        if actor.role != Role.enterprise.value or actor.organisation_id != call.organisation_id:
            raise Forbidden("only the call's enterprise grades")
        if row.organisation_id == actor.organisation_id or row.submitted_by == actor.user_id:
            raise Forbidden("nobody grades their own answer")
        winner = data.verdict is CallVerdict.winner
        if winner:
            other = session.exec(select(CallSubmission.id).where(
                CallSubmission.winner_of == call.id, CallSubmission.id != row.id)).first()
            if other is not None:
                raise Conflict(f"submission {other} is the winner already")
        row.score = data.score
        row.verdict = data.verdict.value
        row.winner_of = call.id if winner else None
        row.graded_by = actor.user_id
        row.graded_at = now or utcnow()
        session.add(row)
        try:
            session.commit()
        except IntegrityError as exc:  # a concurrent grading chose another winner
            session.rollback()
            raise Conflict("the call has a winner already") from exc
        return row
