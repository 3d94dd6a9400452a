"""The broker workspace in the JSON API: matches, queue, failure library, alerts, open calls, stats.

Registered on the ``/api/v1`` blueprint of ``web.api.routes``.  Status codes of
the match pipeline: 404 for a match the caller may not see, 403 for a role
that may not make the change (admins never act), 409 for a transition not
allowed from the current state or a duplicate, 422 for an unknown state or a
missing field (see ``matcher.workflow``).
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from spectree import Response

from matcher import alerts, calls, failures, stats, workflow
from matcher.models import FailureReason, MatchState, Role
from matcher.visibility import Viewer
from web.api import serialise
from web.api.auth import api_user, require, viewer
from web.api.openapi import AUTH, OPTIONAL_AUTH, errors, spec
from web.api.routes import bp, svc
from web.api.schemas import (
    BrokerQueue,
    CallDetail,
    CallIn,
    CallList,
    CallOut,
    FailureList,
    FailureQuery,
    GradeIn,
    MatchDetail,
    MatchIn,
    MatchList,
    MatchListQuery,
    MatchOut,
    MatchPatch,
    NotificationList,
    NotificationOut,
    NotificationQuery,
    QueueQuery,
    StatsOut,
    SubmissionIn,
    SubmissionOut,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
)
from web.extensions import directory, engine

BROKER, ADMIN = Role.broker.value, Role.admin.value


def _actor() -> Viewer:
    user = api_user()
    assert user is not None  # every write is behind @require
    return user.viewer


def _json(value: Any) -> Any:
    return serialise._json(value)


# --- serialisation ----------------------------------------------------------------------

def _ref(rec, names: dict[int, str]) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {"id": rec.id, "title": rec.title, "industry_chain": rec.industry_chain,
            "organisation_id": rec.organisation_id, "organisation_name": names.get(rec.organisation_id)}


def _names(*records) -> dict[int, str]:
    return serialise.organisation_names(r.organisation_id for r in records if r is not None)


def _match(m, p: workflow.Parties, names: dict[int, str] | None = None) -> dict[str, Any]:
    names = names if names is not None else _names(p.demand, p.achievement)
    st = MatchState(m.state)
    return {
        "id": m.id, "state": m.state, "state_zh": st.zh, "state_en": st.en,
        "demand_id": m.demand_id, "achievement_id": m.achievement_id,
        "demand": _ref(p.demand, names), "achievement": _ref(p.achievement, names),
        "broker_id": m.broker_id, "demand_answer": m.demand_answer,
        "achievement_answer": m.achievement_answer, "note": m.note, "amount_wan": m.amount_wan,
        "cooperation_mode": m.cooperation_mode, "signed_on": _json(m.signed_on),
        "failure_reason": m.failure_reason, "failure_note": m.failure_note,
        "created_at": _json(m.created_at), "last_activity_at": _json(m.last_activity_at),
    }


def _matches(rows: list[tuple[Any, workflow.Parties]]) -> list[dict[str, Any]]:
    names = _names(*[r for _, p in rows for r in (p.demand, p.achievement)])
    return [_match(m, p, names) for m, p in rows]


def _warnings(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    return failures.warnings_for(engine(), svc().encoder.model_id, pairs, viewer())


# --- matches --------------------------------------------------------------------------------

@bp.post("/matches")
@require(BROKER)
@spec.validate(json=MatchIn, resp=Response(HTTP_201=MatchOut, **errors(400, 401, 403, 409, 413, 422)),
               tags=["matches"], security=AUTH, operation_id="matches_create")
def matches_create():
    """推荐对接 / a broker recommends a pairing (state "recommended"; both organisations are notified).

    409 when the pair already has a live or signed match.
    """
    match = workflow.recommend(engine(), actor=_actor(), data=request.context.json)
    m, p, _ = workflow.get_match(engine(), match.id, _actor())
    return _match(m, p), 201, {"Location": url_for("api.matches_detail", match_id=match.id)}


@bp.get("/matches")
@require()
@spec.validate(query=MatchListQuery, resp=Response(HTTP_200=MatchList, **errors(401, 422)),
               tags=["matches"], security=AUTH, operation_id="matches_list")
def matches_list():
    """对接列表 / matches the caller may see, most recently active first.

    Brokers see all; administrators all but those on confidential demands;
    organisations those on their own records.
    """
    q: MatchListQuery = request.context.query
    rows = workflow.list_matches(engine(), viewer(), state=q.state.value if q.state else None,
                                 broker_id=q.broker_id, demand_id=q.demand_id,
                                 achievement_id=q.achievement_id, limit=q.limit)
    return {"items": _matches(rows)}


@bp.get("/matches/<int:match_id>")
@require()
@spec.validate(resp=Response(HTTP_200=MatchDetail, **errors(401, 404)),
               tags=["matches"], security=AUTH, operation_id="matches_detail")
def matches_detail(match_id: int):
    """对接详情 / one match with its audit trail and failure warnings."""
    m, p, events = workflow.get_match(engine(), match_id, viewer())
    users = directory().usernames(e.user_id for e in events)
    out = _match(m, p)
    out["events"] = [{"id": e.id, "user_id": e.user_id, "username": users.get(e.user_id),
                      "action": e.action, "from_state": e.from_state, "to_state": e.to_state,
                      "note": e.note, "at": _json(e.at)} for e in events]
    pair = (m.demand_id, m.achievement_id)
    out["warnings"] = [w for w in _warnings([pair])[pair] if w["match_id"] != m.id]
    return out


@bp.patch("/matches/<int:match_id>")
@require()
@spec.validate(json=MatchPatch, resp=Response(HTTP_200=MatchOut, **errors(400, 401, 403, 404, 409, 413, 422)),
               tags=["matches"], security=AUTH, operation_id="matches_update")
def matches_update(match_id: int):
    """对接状态变更 / move a match to a new state (see the state machine in ``MatchPatch``)."""
    workflow.change(engine(), match_id, actor=_actor(), data=request.context.json)
    m, p, _ = workflow.get_match(engine(), match_id, _actor())
    return _match(m, p)


# --- the broker's queue and the failure library ------------------------------------------------

@bp.get("/broker/queue")
@require(BROKER)
@spec.validate(query=QueueQuery, resp=Response(HTTP_200=BrokerQueue, **errors(401, 403, 422)),
               tags=["broker"], security=AUTH, operation_id="broker_queue")
def broker_queue():
    """经纪人工作台 / good pairs nobody reviewed yet, my live matches, live matches idle ``stale_days``."""
    q: QueueQuery = request.context.query
    found = workflow.unreviewed_pairs(svc(), limit=q.limit)
    names = _names(*[r for c in found for r in (c.demand, c.achievement)])
    warned = _warnings([(c.demand.id, c.achievement.id) for c in found])
    unreviewed = [{"demand": _ref(c.demand, names), "achievement": _ref(c.achievement, names),
                   "score": c.score, "strength": c.strength,
                   "warnings": warned[(c.demand.id, c.achievement.id)]} for c in found]
    me = _actor().user_id
    return {"unreviewed": unreviewed,
            "mine": _matches(workflow.with_parties(engine(), workflow.my_matches(engine(), me)[:q.limit])),
            "stale": _matches(workflow.with_parties(
                engine(), workflow.stale_matches(engine(), days=q.stale_days)[:q.limit])),
            "stale_days": q.stale_days}


@bp.get("/failures")
@require(BROKER, ADMIN)
@spec.validate(query=FailureQuery, resp=Response(HTTP_200=FailureList, **errors(401, 403, 422)),
               tags=["broker"], security=AUTH, operation_id="failures")
def failure_library():
    """失败案例库 / failed matches with reason and note; every word of ``q`` must occur."""
    q: FailureQuery = request.context.query
    found = failures.search_failures(engine(), viewer(), q.q, reason=q.reason.value if q.reason else None,
                                     limit=q.limit)
    rows = _matches([(f.match, workflow.Parties(f.demand, f.achievement)) for f in found])
    items = []
    for f, row in zip(found, rows, strict=True):
        reason = FailureReason(f.match.failure_reason or FailureReason.other.value)
        items.append({"match": row, "reason_zh": reason.zh, "reason_en": reason.en})
    return {"items": items}


# --- notifications and subscriptions -----------------------------------------------------------

def _notification(n) -> dict[str, Any]:
    return {"id": n.id, "kind": n.kind, "title_zh": n.title_zh, "title_en": n.title_en,
            "body_zh": n.body_zh, "body_en": n.body_en, "link": n.link, "read": n.read,
            "created_at": _json(n.created_at)}


@bp.get("/notifications")
@require()
@spec.validate(query=NotificationQuery, resp=Response(HTTP_200=NotificationList, **errors(401, 422)),
               tags=["notifications"], security=AUTH, operation_id="notifications")
def notifications():
    """我的通知 / own notifications, newest first, with the number unread."""
    q: NotificationQuery = request.context.query
    rows, unread = alerts.list_notifications(engine(), _actor().user_id, limit=q.limit, unread_only=q.unread)
    return {"items": [_notification(n) for n in rows], "unread": unread}


@bp.post("/notifications/<int:notification_id>/read")
@require()
@spec.validate(resp=Response(HTTP_200=NotificationOut, **errors(401, 404)),
               tags=["notifications"], security=AUTH, operation_id="notifications_read")
def notifications_read(notification_id: int):
    """标记已读 / mark one of your notifications read (no body needed)."""
    return _notification(alerts.mark_read(engine(), _actor().user_id, notification_id))


def _subscription(s) -> dict[str, Any]:
    return {"id": s.id, "side": s.side, "query": s.query, "filters": s.filters or {},
            "created_at": _json(s.created_at)}


@bp.get("/subscriptions")
@require()
@spec.validate(resp=Response(HTTP_200=SubscriptionList, **errors(401)),
               tags=["notifications"], security=AUTH, operation_id="subscriptions_list")
def subscriptions_list():
    """我的检索订阅 / own saved searches."""
    return {"items": [_subscription(s) for s in alerts.list_subscriptions(engine(), _actor().user_id)]}


@bp.post("/subscriptions")
@require()
@spec.validate(json=SubscriptionIn, resp=Response(HTTP_201=SubscriptionOut, **errors(400, 401, 413, 422)),
               tags=["notifications"], security=AUTH, operation_id="subscriptions_create")
def subscriptions_create():
    """保存检索订阅 / save a search; a new record it ranks in its top 20 with good strength notifies you."""
    row = alerts.create_subscription(engine(), user_id=_actor().user_id, data=request.context.json)
    return _subscription(row), 201


@bp.delete("/subscriptions/<int:subscription_id>")
@require()
@spec.validate(resp=Response("HTTP_204", **errors(401, 404)),
               tags=["notifications"], security=AUTH, operation_id="subscriptions_delete")
def subscriptions_delete(subscription_id: int):
    """删除检索订阅 / delete one of your saved searches."""
    alerts.delete_subscription(engine(), _actor().user_id, subscription_id)
    return "", 204


# --- open calls -------------------------------------------------------------------------------

def _submission(s, achievements: dict[int, Any], names: dict[int, str]) -> dict[str, Any]:
    return {"id": s.id, "call_id": s.call_id, "achievement_id": s.achievement_id,
            "achievement": _ref(achievements.get(s.achievement_id), names),
            "organisation_id": s.organisation_id, "proposal": s.proposal, "score": s.score,
            "verdict": s.verdict, "created_at": _json(s.created_at), "graded_at": _json(s.graded_at)}


def _calls(views: list[calls.CallView]) -> list[dict[str, Any]]:
    achievements = calls.achievements_of(engine(), {s.achievement_id for v in views for s in v.submissions})
    names = _names(*[v.demand for v in views], *achievements.values())
    return [{"id": v.call.id, "demand_id": v.call.demand_id, "demand": _ref(v.demand, names),
             "organisation_id": v.call.organisation_id, "reward_wan": v.call.reward_wan,
             "deadline": _json(v.call.deadline), "status": v.status(), "created_at": _json(v.call.created_at),
             "submissions": [_submission(s, achievements, names) for s in v.submissions]} for v in views]


@bp.get("/calls")
@spec.validate(resp=Response(HTTP_200=CallList, **errors(401)),
               tags=["calls"], security=OPTIONAL_AUTH, operation_id="calls_list")
def calls_list():
    """揭榜挂帅列表 / open calls, latest deadline first."""
    return {"items": _calls(calls.list_calls(engine(), viewer()))}


@bp.post("/calls")
@require(Role.enterprise.value)
@spec.validate(json=CallIn, resp=Response(HTTP_201=CallOut, **errors(400, 401, 403, 409, 413, 422)),
               tags=["calls"], security=AUTH, operation_id="calls_create")
def calls_create():
    """发布揭榜挂帅 / publish an own open, non-confidential demand as an open call."""
    call = calls.create_call(engine(), actor=_actor(), data=request.context.json)
    view = calls.get_call(engine(), call.id, _actor())
    return _calls([view])[0], 201, {"Location": url_for("api.calls_detail", call_id=call.id)}


@bp.get("/calls/<int:call_id>")
@spec.validate(resp=Response(HTTP_200=CallDetail, **errors(401, 404)),
               tags=["calls"], security=OPTIONAL_AUTH, operation_id="calls_detail")
def calls_detail(call_id: int):
    """揭榜挂帅详情 / one call with the answers you may see and the best-matching achievements."""
    view = calls.get_call(engine(), call_id, viewer())
    out = _calls([view])[0]
    found = svc().stored_matches(view.demand, k=5, viewer=viewer())
    out["suggested_solvers"] = serialise.results(found, "achievement", viewer())
    return out


@bp.post("/calls/<int:call_id>/submissions")
@require(Role.institution.value)
@spec.validate(json=SubmissionIn, resp=Response(HTTP_201=SubmissionOut, **errors(400, 401, 403, 404, 409, 413,
                                                                                   422)),
               tags=["calls"], security=AUTH, operation_id="calls_submit")
def calls_submit(call_id: int):
    """揭榜 / answer a call with an own achievement and a proposal (until the deadline)."""
    row = calls.submit(engine(), call_id, actor=_actor(), data=request.context.json)
    achievements = calls.achievements_of(engine(), [row.achievement_id])
    return _submission(row, achievements, _names(*achievements.values())), 201


@bp.patch("/calls/<int:call_id>/submissions/<int:submission_id>")
@require(Role.enterprise.value)
@spec.validate(json=GradeIn, resp=Response(HTTP_200=SubmissionOut, **errors(400, 401, 403, 404, 409, 413, 422)),
               tags=["calls"], security=AUTH, operation_id="calls_grade")
def calls_grade(call_id: int, submission_id: int):
    """评审揭榜方案 / the call's enterprise grades an answer (one winner per call; never its own)."""
    row = calls.grade(engine(), call_id, submission_id, actor=_actor(), data=request.context.json)
    achievements = calls.achievements_of(engine(), [row.achievement_id])
    return _submission(row, achievements, _names(*achievements.values()))


# --- statistics ---------------------------------------------------------------------------------

@bp.get("/stats")
@require(BROKER, ADMIN)
@spec.validate(resp=Response(HTTP_200=StatsOut, **errors(401, 403)),
               tags=["broker"], security=AUTH, operation_id="stats")
def platform_stats():
    """平台统计 / match funnel, conversion and time to sign per industry chain, supply gaps, TRLs, failures."""
    return stats.compute(svc(), viewer())
