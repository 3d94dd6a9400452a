"""Public portal pages: home, record lists and details with their matches, forms, search.

Demands and achievements are served by the same views, each registered once
per side; the :class:`Area` says what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from matcher.errors import ValidationFailed
from matcher.models import (
    AchievementCreate,
    AchievementStatus,
    AchievementUpdate,
    DemandCreate,
    DemandStatus,
    DemandUpdate,
    OrgKind,
    Side,
)
from matcher.service import Filters
from web.auth import accounts
from web.extensions import matcher
from web.main.access import can_create, can_edit, can_see_contacts
from web.main.forms import FORMS, JIANGXI_CITIES, FilterForm, SearchForm
from web.security import current_viewer

bp = Blueprint("main", __name__)

PER_PAGE = 20
MATCHES = 8  # results shown on a detail page
SEARCH_RESULTS = 10  # per side


@dataclass(frozen=True)
class Area:
    side: Side
    slug: str  # "demands": URL prefix and endpoint stem
    noun: str  # "demand": singular endpoint stem
    create_model: type
    update_model: type
    org_kinds: tuple[str, ...]  # organisations a broker may post for

    def endpoint(self, action: str) -> str:
        return {"list": f"main.{self.slug}", "detail": f"main.{self.noun}",
                "new": f"main.new_{self.noun}", "edit": f"main.edit_{self.noun}",
                "delete": f"main.delete_{self.noun}"}[action]

    def url(self, action: str, **values) -> str:
        return url_for(self.endpoint(action), **values)

    @property
    def other(self) -> Area:
        return AREAS[self.side.other]


AREAS = {
    Side.demand: Area(Side.demand, "demands", "demand", DemandCreate, DemandUpdate,
                      (OrgKind.enterprise.value,)),
    Side.achievement: Area(Side.achievement, "achievements", "achievement", AchievementCreate,
                           AchievementUpdate, (OrgKind.university.value, OrgKind.institute.value)),
}


@bp.app_context_processor
def areas():
    return {"areas": AREAS, "Side": Side}


# --- home, language, search --------------------------------------------------------------

@bp.get("/")
def index():
    svc, viewer = matcher(), current_viewer()
    latest_demands, demand_total = svc.list_records(Side.demand, viewer=viewer, per_page=6)
    latest_achievements, achievement_total = svc.list_records(Side.achievement, viewer=viewer, per_page=6)
    figures = {
        "demands": demand_total,
        "open_demands": svc.list_records(Side.demand, viewer=viewer, per_page=1,
                                         filters=Filters(status=DemandStatus.open.value))[1],
        "achievements": achievement_total,
        "available_achievements": svc.list_records(
            Side.achievement, viewer=viewer, per_page=1,
            filters=Filters(status=AchievementStatus.available.value))[1],
        "organisations": accounts.count_organisations(),
    }
    orgs = accounts.organisation_names(r.organisation_id for r in [*latest_demands, *latest_achievements])
    return render_template("main/index.html", figures=figures, latest_demands=latest_demands,
                           latest_achievements=latest_achievements, orgs=orgs, search=SearchForm())


@bp.get("/lang/<code>")
def set_language(code: str):
    if code not in current_app.config["LANGUAGES"]:
        abort(404)
    session["lang"] = code
    return redirect(safe_next(request.args.get("next")) or url_for("main.index"))


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.get("/search")
def search():
    form = SearchForm(formdata=request.args)
    results: dict[Side, list] = {}
    status = 200
    if "q" in request.args:
        if form.validate():
            svc, viewer = matcher(), current_viewer()
            for side in form.sides():
                results[side] = svc.search(form.q.data, side, k=SEARCH_RESULTS, viewer=viewer,
                                           explain=True)
        else:
            status = 400
    orgs = accounts.organisation_names(m.record.organisation_id for ms in results.values() for m in ms)
    return render_template("main/search.html", form=form, results=results, orgs=orgs), status


# --- records ---------------------------------------------------------------------------------

def list_view(side: Side):
    area = AREAS[side]
    form = FilterForm(side, formdata=request.args)
    filters = Filters(**form.cleaned())
    mine = bool(form.mine.data and current_user.is_authenticated and current_user.organisation_id)
    if mine:
        filters.organisation_id = current_user.organisation_id
    page = max(1, request.args.get("page", 1, type=int))
    records, total = matcher().list_records(side, viewer=current_viewer(), filters=filters, page=page,
                                            per_page=PER_PAGE)
    pages = max(1, ceil(total / PER_PAGE))
    orgs = accounts.organisation_names(r.organisation_id for r in records)
    return render_template("records/list.html", area=area, form=form, records=records, total=total,
                           page=page, pages=pages, orgs=orgs, mine=mine, cities=JIANGXI_CITIES)


def detail_view(side: Side, record_id: int):
    area, svc, viewer = AREAS[side], matcher(), current_viewer()
    record = svc.get(side, record_id, viewer)
    match = svc.match_demand if side is Side.demand else svc.match_achievement
    matches = match(record_id, MATCHES, viewer=viewer)
    orgs = accounts.organisation_names([record.organisation_id, *(m.record.organisation_id for m in matches)])
    show_contacts = side is Side.demand and can_see_contacts(viewer, record)
    return render_template("records/detail.html", area=area, record=record, matches=matches,
                           any_good=any(m.good for m in matches), orgs=orgs,
                           show_contacts=show_contacts, editable=can_edit(current_user, record))


@login_required
def create_view(side: Side):
    area = AREAS[side]
    if not can_create(current_user, side):
        abort(403)
    brokered = current_user.has_role("broker")
    form = FORMS[side](organisations=accounts.organisations(area.org_kinds) if brokered else None)
    if form.validate_on_submit():
        org_id = form.organisation_id.data if brokered else current_user.organisation_id
        data = form.validate_model(area.create_model, organisation_id=org_id)
        if data is not None:
            svc = matcher()
            create = svc.create_demand if side is Side.demand else svc.create_achievement
            try:
                record = create(data=data)
            except ValidationFailed as exc:
                form.domain_errors(exc.errors)
            else:
                flash(_("已发布: %(title)s", title=record.title), "success")
                return redirect(area.url("detail", record_id=record.id))
    status = 422 if form.is_submitted() and _has_errors(form) else 200
    return render_template("records/form.html", area=area, form=form, record=None), status


@login_required
def edit_view(side: Side, record_id: int):
    area, svc = AREAS[side], matcher()
    record = svc.get(side, record_id, current_viewer())
    if not can_edit(current_user, record):
        abort(403)
    form = FORMS[side](obj=None if request.method == "POST" else record, editing=True)
    if request.method == "GET" and hasattr(form, "process_record"):
        form.process_record(record)
    if form.validate_on_submit():
        data = form.validate_model(area.update_model)
        if data is not None:
            update = svc.update_demand if side is Side.demand else svc.update_achievement
            try:
                record = update(record_id, data=data)
            except ValidationFailed as exc:
                form.domain_errors(exc.errors)
            else:
                flash(_("已保存修改"), "success")
                return redirect(area.url("detail", record_id=record_id))
    status = 422 if form.is_submitted() and _has_errors(form) else 200
    return render_template("records/form.html", area=area, form=form, record=record), status


@login_required
def delete_view(side: Side, record_id: int):
    area, svc = AREAS[side], matcher()
    record = svc.get(side, record_id, current_viewer())
    if not can_edit(current_user, record):
        abort(403)
    if request.method == "POST":
        svc.delete(side, record_id)
        flash(_("已删除: %(title)s", title=record.title), "success")
        return redirect(area.url("list"))
    orgs = accounts.organisation_names([record.organisation_id])
    return render_template("records/delete.html", area=area, record=record, orgs=orgs)


def _has_errors(form) -> bool:
    return bool(form.form_errors) or any(f.errors for f in form)


for _area in AREAS.values():
    _side = {"side": _area.side}
    bp.add_url_rule(f"/{_area.slug}", _area.endpoint("list")[5:], list_view, defaults=_side)
    bp.add_url_rule(f"/{_area.slug}/new", _area.endpoint("new")[5:], create_view, defaults=_side,
                    methods=["GET", "POST"])
    bp.add_url_rule(f"/{_area.slug}/<int:record_id>", _area.endpoint("detail")[5:], detail_view,
                    defaults=_side)
    bp.add_url_rule(f"/{_area.slug}/<int:record_id>/edit", _area.endpoint("edit")[5:], edit_view,
                    defaults=_side, methods=["GET", "POST"])
    bp.add_url_rule(f"/{_area.slug}/<int:record_id>/delete", _area.endpoint("delete")[5:], delete_view,
                    defaults=_side, methods=["GET", "POST"])
