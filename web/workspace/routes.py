"""The broker workspace as HTML: matches and their pipeline, the broker's queue, the failure
library, notifications, open calls (揭榜挂帅) and statistics.

The permission rules are the domain's (``matcher.workflow``, ``matcher.calls``), as in
``web.api.workflow``: a match the user may not see is 404, a role that may not act is 403.
Every form posts, then redirects (Post/Redirect/Get); a refused change re-renders the page
with the field errors (422) or the reason (409) and writes nothing.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from pydantic import ValidationError as PydanticError

from matcher import alerts, calls, failures, stats, workflow
from matcher.errors import Conflict, Forbidden, ValidationFailed, field_errors
from matcher.models import (
    CallVerdict,
    Demand,
    FailureReason,
    Match,
    MatchCreate,
    MatchState,
    MatchUpdate,
    OpenCallCreate,
    Role,
    Side,
    SideAnswer,
    SubmissionCreate,
    SubmissionGrade,
)
from matcher.retrieval import Filters
from web.extensions import directory, engine, matcher
from web.main.filters import bilingual, lang
from web.main.forms import apply_errors
from web.main.routes import safe_next
from web.security import current_viewer, login_manager
from web.workspace.forms import CallForm, EmptyForm, GradeForm, RecommendForm, SubmissionForm, TransitionForm

bp = Blueprint("workspace", __name__)

BROKER, ADMIN = Role.broker.value, Role.admin.value
ENTERPRISE, INSTITUTION = Role.enterprise.value, Role.institution.value
ENUMS = {"MatchState": MatchState, "FailureReason": FailureReason, "CallVerdict": CallVerdict,
         "SideAnswer": SideAnswer}
DEFAULT_STALE_DAYS = workflow.DEFAULT_STALE_DAYS
QUEUE_LIMIT = 30
S = MatchState


def roles(*allowed: str):
    """Sign-in required (redirect to the form); with ``allowed``, only those roles (else 403)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if allowed and not current_user.has_role(*allowed):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _conflict_message(exc: Exception) -> str:
    text = str(exc)
    if " / " in text:
        return bilingual(text)
    return bilingual("操作与当前状态冲突, 未做任何修改 / this conflicts with the current state; "
                     "nothing was changed")


def _has_errors(form) -> bool:
    return bool(form.form_errors) or any(f.errors for f in form)


def _model(form, model, data: dict[str, Any]):
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        apply_errors(form, field_errors(exc))
        return None


# --- template helpers ---------------------------------------------------------------------------

@bp.app_template_filter("wlabel")
def wlabel(value, enum: str) -> str:
    """Labels of the workspace's enumerations (match states, failure reasons, verdicts)."""
    if value is None or value == "":
        return ""
    try:
        return ENUMS[enum](value).label(lang())
    except ValueError:
        return str(value)


def unread_count() -> int:
    if not current_user.is_authenticated:
        return 0
    return alerts.list_notifications(engine(), current_user.id, limit=1)[1]


def record_pairs(record, side: Side, matches) -> dict[int, dict[str, Any]]:
    """For a record page: per matched record id, failure warnings and the live match of the pair.

    Brokers and administrators only (as the failure library): nothing for anyone else.
    """
    viewer = current_viewer()
    if not matches or not (viewer.is_broker or viewer.role == ADMIN):
        return {}
    pairs = {m.record.id: ((record.id, m.record.id) if side is Side.demand else (m.record.id, record.id))
             for m in matches}
    warned = failures.warnings_for(engine(), matcher().encoder.model_id, list(pairs.values()), viewer)
    live = workflow.live_matches(engine(), list(pairs.values())) if viewer.is_broker else {}
    return {rid: {"demand_id": pair[0], "achievement_id": pair[1], "warnings": warned.get(pair, []),
                  "live_match": live.get(pair)} for rid, pair in pairs.items()}


@bp.app_context_processor
def workspace_globals():
    return {"unread_count": unread_count, "record_pairs": record_pairs, "MatchState": MatchState}


# --- matches ------------------------------------------------------------------------------------

@bp.post("/matches/recommend")
@roles(BROKER)
def recommend():
    form = RecommendForm()
    back = safe_next(form.next.data) or url_for("workspace.queue")
    if not form.validate_on_submit():
        for field in form:
            for error in field.errors:
                flash(f"{bilingual(field.label.text)}: {bilingual(error)}", "error")
        return redirect(back)
    data = _model(form, MatchCreate, {"demand_id": form.demand_id.data,
                                       "achievement_id": form.achievement_id.data,
                                       "note": form.note.data or ""})
    if data is None:
        for field in form:
            for error in field.errors:
                flash(f"{bilingual(field.label.text)}: {error}", "error")
        return redirect(back)
    try:
        match = workflow.recommend(engine(), actor=current_viewer(), data=data)
    except ValidationFailed as exc:
        for message in exc.errors.values():
            flash(bilingual(message), "error")
        return redirect(back)
    except Conflict:
        flash(bilingual("该对接已在进行中或已签约, 未重复推荐 / this pair already has a live or signed "
                        "match; nothing was added"), "error")
        return redirect(back)
    flash(bilingual("已推荐对接, 已通知双方 / recommended; both sides were notified"), "success")
    return redirect(url_for("workspace.match", match_id=match.id))


@bp.get("/matches")
@roles()
def matches():
    state = request.args.get("state") or None
    if state not in {s.value for s in MatchState}:
        state = None
    rows = workflow.list_matches(engine(), current_viewer(), state=state, limit=200)
    orgs = directory().organisation_names(r.organisation_id for _, p in rows
                                       for r in (p.demand, p.achievement) if r is not None)
    return render_template("workspace/matches.html", rows=rows, orgs=orgs, state=state)


def _actions(m: Match, p: workflow.Parties) -> dict[str, bool]:
    """What the current user may do with the match (the buttons shown)."""
    viewer = current_viewer()
    out = {"interested": False, "declined": False, "negotiating": False, "signed": False, "failed": False}
    side = workflow.answering_side(viewer, p)  # the domain's own rule
    if side is not None:
        answer = getattr(m, f"{side}_answer")
        out["interested"] = m.state == S.recommended.value and answer is None
        out["declined"] = (m.state in (S.recommended.value, S.interested.value)
                           and answer != SideAnswer.declined.value)
    if viewer.role == BROKER:
        out["negotiating"] = m.state == S.interested.value
        out["signed"] = m.state == S.negotiating.value
        out["failed"] = m.state in (S.interested.value, S.negotiating.value)
    out["side"] = side  # type: ignore[assignment]
    return out


def _match_page(match_id: int, form: TransitionForm | None = None, status: int = 200, open_form: str = ""):
    viewer = current_viewer()
    m, p, events = workflow.get_match(engine(), match_id, viewer)
    users = directory().usernames([*(e.user_id for e in events), m.broker_id])
    orgs = directory().organisation_names(r.organisation_id for r in (p.demand, p.achievement) if r is not None)
    pair = (m.demand_id, m.achievement_id)
    warnings = [w for w in failures.warnings_for(engine(), matcher().encoder.model_id, [pair], viewer)[pair]
                if w["match_id"] != m.id]
    return render_template("workspace/match.html", m=m, p=p, events=events, users=users, orgs=orgs,
                           warnings=warnings, actions=_actions(m, p), form=form or TransitionForm(),
                           open_form=open_form), status


@bp.get("/matches/<int:match_id>")
@roles()
def match(match_id: int):
    return _match_page(match_id)


@bp.post("/matches/<int:match_id>")
@roles()
def match_update(match_id: int):
    workflow.get_match(engine(), match_id, current_viewer())  # 404 before anything else
    form = TransitionForm()
    if form.validate_on_submit():
        data = _model(form, MatchUpdate, form.update_data())
        if data is not None:
            try:
                workflow.change(engine(), match_id, actor=current_viewer(), data=data)
            except ValidationFailed as exc:
                apply_errors(form, exc.errors)
            except Forbidden:
                flash(bilingual("您无权执行此操作, 未做任何修改 / you may not make this change; "
                                "nothing was changed"), "error")
                return _match_page(match_id, form, 403)
            except Conflict as exc:
                flash(_conflict_message(exc), "error")
                return _match_page(match_id, form, 409)
            else:
                st = MatchState(form.state.data)
                flash(bilingual(f"状态已更新: {st.zh} / state updated: {st.en}"), "success")
                return redirect(url_for("workspace.match", match_id=match_id))
    return _match_page(match_id, form, 422 if _has_errors(form) else 400, open_form=form.state.data or "")


# --- the broker's queue and the failure library ----------------------------------------------

@bp.get("/workspace")
@roles(BROKER)
def queue():
    days = request.args.get("days", DEFAULT_STALE_DAYS, type=int)
    days = max(1, min(days or DEFAULT_STALE_DAYS, 365))
    found = workflow.unreviewed_pairs(matcher(), limit=QUEUE_LIMIT)
    warned = failures.warnings_for(engine(), matcher().encoder.model_id,
                                   [(c.demand.id, c.achievement.id) for c in found], current_viewer())
    mine = workflow.with_parties(engine(), workflow.my_matches(engine(), current_user.id)[:QUEUE_LIMIT])
    stale = workflow.with_parties(engine(), workflow.stale_matches(engine(), days=days)[:QUEUE_LIMIT])
    orgs = directory().organisation_names(
        [r.organisation_id for c in found for r in (c.demand, c.achievement)]
        + [r.organisation_id for _, p in mine + stale for r in (p.demand, p.achievement) if r is not None])
    return render_template("workspace/queue.html", found=found, warned=warned, mine=mine, stale=stale,
                           days=days, orgs=orgs, form=RecommendForm())


@bp.get("/failures")
@roles(BROKER, ADMIN)
def failure_library():
    q = (request.args.get("q") or "").strip()[:200]
    reason = request.args.get("reason") or None
    if reason not in {r.value for r in FailureReason}:
        reason = None
    found = failures.search_failures(engine(), current_viewer(), q, reason=reason, limit=100)
    orgs = directory().organisation_names(r.organisation_id for f in found
                                       for r in (f.demand, f.achievement) if r is not None)
    return render_template("workspace/failures.html", found=found, q=q, reason=reason, orgs=orgs,
                           reasons=FailureReason.choices(lang()))


# --- notifications -----------------------------------------------------------------------------

@bp.get("/notifications")
@roles()
def notifications():
    rows, unread = alerts.list_notifications(engine(), current_user.id, limit=100)
    return render_template("workspace/notifications.html", rows=rows, unread=unread, form=EmptyForm())


@bp.post("/notifications/<int:notification_id>/read")
@roles()
def notification_read(notification_id: int):
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    row = alerts.mark_read(engine(), current_user.id, notification_id)
    if request.form.get("open"):
        return redirect(safe_next(row.link) or url_for("workspace.notifications"))
    return redirect(url_for("workspace.notifications"))


# --- open calls (揭榜挂帅) ---------------------------------------------------------------------

def _call_orgs(views) -> tuple[dict[int, str], dict[int, Any]]:
    achievements = calls.achievements_of(engine(), {s.achievement_id for v in views for s in v.submissions})
    orgs = directory().organisation_names([*(v.demand.organisation_id for v in views),
                                        *(s.organisation_id for v in views for s in v.submissions)])
    return orgs, achievements


@bp.get("/calls")
def calls_list():
    views = calls.list_calls(engine(), current_viewer())
    orgs, _ = _call_orgs(views)
    return render_template("workspace/calls.html", views=views, orgs=orgs)


def _own_achievements() -> list:
    if not (current_user.is_authenticated and current_user.has_role(INSTITUTION)
            and current_user.organisation_id):
        return []
    records, _ = matcher().list_records(Side.achievement, viewer=current_viewer(),
                                        filters=Filters(organisation_id=current_user.organisation_id),
                                        per_page=200)
    return records


def _call_page(call_id: int, *, submission: SubmissionForm | None = None, grades: dict | None = None,
               status: int = 200):
    viewer = current_viewer()
    view = calls.get_call(engine(), call_id, viewer)
    orgs, achievements = _call_orgs([view])
    solvers = matcher().stored_matches(view.demand, k=5, viewer=viewer)
    orgs.update(directory().organisation_names(r.record.organisation_id for r in solvers))
    own = _own_achievements()
    if submission is None and own:
        submission = SubmissionForm()
    if submission is not None:
        submission.achievement_id.choices = [(a.id, a.title) for a in own]
    grader = (current_user.is_authenticated and current_user.has_role(ENTERPRISE)
              and current_user.organisation_id == view.call.organisation_id)
    grades = grades or {}
    if grader:
        for s in view.submissions:
            if s.id not in grades:
                grades[s.id] = GradeForm(formdata=None, prefix=f"s{s.id}",
                                         data={"score": s.score, "verdict": s.verdict or "shortlisted"})
    return render_template("workspace/call.html", view=view, orgs=orgs, achievements=achievements,
                           solvers=solvers, submission=submission if own else None,
                           grades=grades if grader else {}), status


@bp.get("/calls/<int:call_id>")
def call(call_id: int):
    return _call_page(call_id)


@bp.route("/calls/new", methods=["GET", "POST"])
@roles(ENTERPRISE)
def call_new():
    demand_id = request.args.get("demand", type=int)
    if not demand_id:
        abort(404)
    demand: Demand = matcher().get(Side.demand, demand_id, current_viewer())
    if demand.organisation_id != current_user.organisation_id:
        abort(403)
    form = CallForm()
    if form.validate_on_submit():
        data = _model(form, OpenCallCreate, {"demand_id": demand.id, "reward_wan": form.reward_wan.data,
                                             "deadline": form.deadline.data})
        if data is not None:
            try:
                created = calls.create_call(engine(), actor=current_viewer(), data=data)
            except ValidationFailed as exc:
                apply_errors(form, exc.errors)
            except Conflict:
                form.form_errors.append(bilingual("该需求已发布为揭榜挂帅 / this demand is an open call "
                                                  "already"))
            else:
                flash(bilingual("已发布为揭榜挂帅 / published as an open call"), "success")
                return redirect(url_for("workspace.call", call_id=created.id))
    status = 422 if form.is_submitted() and _has_errors(form) else 200
    return render_template("workspace/call_form.html", form=form, demand=demand), status


@bp.post("/calls/<int:call_id>/submissions")
@roles(INSTITUTION)
def call_submit(call_id: int):
    calls.get_call(engine(), call_id, current_viewer())  # 404 first
    form = SubmissionForm()
    form.achievement_id.choices = [(a.id, a.title) for a in _own_achievements()]
    if form.validate_on_submit():
        data = _model(form, SubmissionCreate, {"achievement_id": form.achievement_id.data,
                                               "proposal": form.proposal.data})
        if data is not None:
            try:
                calls.submit(engine(), call_id, actor=current_viewer(), data=data)
            except ValidationFailed as exc:
                apply_errors(form, exc.errors)
            except Conflict as exc:
                form.form_errors.append(_conflict_message(exc) if " / " in str(exc) else bilingual(
                    "该成果已揭榜, 或本榜已评出揭榜方 / this achievement answered already, or the call has "
                    "a winner"))
            else:
                flash(bilingual("已提交揭榜方案 / your answer was submitted"), "success")
                return redirect(url_for("workspace.call", call_id=call_id))
    return _call_page(call_id, submission=form, status=422 if _has_errors(form) else 400)


@bp.post("/calls/<int:call_id>/submissions/<int:submission_id>/grade")
@roles(ENTERPRISE)
def call_grade(call_id: int, submission_id: int):
    calls.get_call(engine(), call_id, current_viewer())
    form = GradeForm(prefix=f"s{submission_id}")
    if form.validate_on_submit():
        data = _model(form, SubmissionGrade, {"score": form.score.data, "verdict": form.verdict.data})
        if data is not None:
            try:
                calls.grade(engine(), call_id, submission_id, actor=current_viewer(), data=data)
            except Conflict:
                form.form_errors.append(bilingual("本榜已有揭榜方, 请先调整原揭榜方的结论 / the call has a "
                                                  "winner already; change that verdict first"))
            else:
                flash(bilingual("已保存评审结果 / grade saved"), "success")
                return redirect(url_for("workspace.call", call_id=call_id))
    return _call_page(call_id, grades={submission_id: form}, status=422 if _has_errors(form) else 400)


# --- statistics -------------------------------------------------------------------------------

def chart_data(figures: dict[str, Any]) -> dict[str, Any]:
    """The charts of the statistics page, labelled in the UI's language (drawn by static/js/stats.js)."""
    en = lang() == "en"
    chains = figures["chains"]
    chain_labels = [c["label_en"] if en else c["label_zh"] for c in chains]
    t = (lambda zh, e: e if en else zh)  # noqa: E731
    return {"charts": [
        {"id": "chart-funnel", "type": "bar", "horizontal": True, "labels": [
            MatchState(k).label(lang()) for k in figures["funnel"]],
         "datasets": [{"label": t("对接数", "Matches"), "data": list(figures["funnel"].values())}]},
        {"id": "chart-conversion", "type": "bar", "labels": chain_labels, "datasets": [
            {"label": t("签约转化率(%)", "Conversion (%)"),
             "data": [None if c["conversion"] is None else round(c["conversion"] * 100, 1) for c in chains]},
            {"label": t("签约用时中位数(天)", "Median days to sign"),
             "data": [c["median_days_to_sign"] for c in chains]}]},
        {"id": "chart-gaps", "type": "bar", "labels": chain_labels, "datasets": [
            {"label": t("供给缺口(无优质匹配的需求)", "Supply gaps (demands without a good match)"),
             "data": [c["supply_gaps"] for c in chains]}]},
        {"id": "chart-trl", "type": "bar", "labels": [f"TRL {k}" for k in figures["trl_distribution"]],
         "datasets": [{"label": t("可转化成果数", "Available achievements"),
                       "data": list(figures["trl_distribution"].values())}]},
        {"id": "chart-failures", "type": "doughnut", "labels": [
            FailureReason(k).label(lang()) for k in figures["failure_reasons"]],
         "datasets": [{"label": t("未成交对接", "Failed matches"),
                       "data": list(figures["failure_reasons"].values())}]},
    ]}


@bp.get("/stats")
@roles(BROKER, ADMIN)
def platform_stats():
    figures = stats.compute(matcher(), current_viewer())
    return render_template("workspace/stats.html", figures=figures, charts=chart_data(figures))
