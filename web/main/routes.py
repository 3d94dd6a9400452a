"""Public portal pages: home, record lists and details with their matches, forms, search.

Demands and achievements are served by the same views, each registered once
per side; what differs between the sides is :mod:`matcher.sides`' business, and
an :class:`Area` only adds the side's URLs.  Who may create, edit and see what
is the core's one rule (:mod:`matcher.visibility`, :class:`matcher.records.Records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_required

from matcher.errors import ValidationFailed
from matcher.models import Side
from matcher.retrieval import Filters
from matcher.sides import SIDES, SideSpec
from web.extensions import directory, matcher
from web.main.forms import FORMS, JIANGXI_CITIES, FilterForm, SearchForm
from web.security import current_viewer

bp = Blueprint("main", __name__)

PER_PAGE = 20
MATCHES = 8  # results shown on a detail page
SEARCH_RESULTS = 10  # per side


@dataclass(frozen=True)
class Area:
    """A side as the portal routes it: ``/demands``, ``/demands/<id>``, ..."""

    spec: SideSpec

    @property
    def side(self) -> Side:
        return self.spec.side

    def endpoint(self, action: str) -> str:
        noun, slug = self.spec.name, self.spec.plural
        return {"list": f"main.{slug}", "detail": f"main.{noun}", "new": f"main.new_{noun}",
                "edit": f"main.edit_{noun}", "delete": f"main.delete_{noun}"}[action]

    def url(self, action: str, **values) -> str:
        return url_for(self.endpoint(action), **values)

    @property
    def other(self) -> Area:
        return AREAS[self.side.other]


AREAS = {side: Area(s) for side, s in SIDES.items()}


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
        "open_demands": svc.count(Side.demand, viewer=viewer,
                                  filters=Filters(status=SIDES[Side.demand].active_status)),
        "achievements": achievement_total,
        "available_achievements": svc.count(Side.achievement, viewer=viewer,
                                            filters=Filters(status=SIDES[Side.achievement].active_status)),
        "organisations": directory().count_organisations(),
    }
    orgs = directory().organisation_names(r.organisation_id for r in [*latest_demands, *latest_achievements])
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
    orgs = directory().organisation_names(m.record.organisation_id for ms in results.values() for m in ms)
    return render_template("main/search.html", form=form, results=results, orgs=orgs), status


# --- records ---------------------------------------------------------------------------------

def list_view(side: Side):
    area, viewer = AREAS[side], current_viewer()
    form = FilterForm(side, formdata=request.args)
    filters = Filters(**form.cleaned())
    mine = bool(form.mine.data and viewer.organisation_id)
    if mine:
        filters.organisation_id = viewer.organisation_id
    page = max(1, request.args.get("page", 1, type=int))
    records, total = matcher().list_records(side, viewer=viewer, filters=filters, page=page,
                                            per_page=PER_PAGE)
    pages = max(1, ceil(total / PER_PAGE))
    orgs = directory().organisation_names(r.organisation_id for r in records)
    return render_template("records/list.html", area=area, form=form, records=records, total=total,
                           page=page, pages=pages, orgs=orgs, mine=mine, cities=JIANGXI_CITIES)


def detail_view(side: Side, record_id: int):
    area, svc, viewer = AREAS[side], matcher(), current_viewer()
    record = svc.get(side, record_id, viewer)
    matches = svc.match(side, record_id, k=MATCHES, viewer=viewer)
    orgs = directory().organisation_names([record.organisation_id, *(m.record.organisation_id for m in matches)])
    show_contacts = area.spec.confidential and viewer.sees_contacts_of(record.organisation_id)
    editable = viewer.user_id is not None and viewer.owns(record) and record.deleted_at is None
    return render_template("records/detail.html", area=area, record=record, matches=matches,
                           any_good=any(m.good for m in matches), orgs=orgs,
                           show_contacts=show_contacts, editable=editable)


@login_required
def create_view(side: Side):
    area, svc, viewer = AREAS[side], matcher(), current_viewer()
    if not svc.records.can_create(viewer, side):
        abort(403)
    brokered = viewer.is_broker
    form = FORMS[side](organisations=directory().organisations(area.spec.org_kinds) if brokered else None)
    if form.validate_on_submit():
        org_id = form.organisation_id.data if brokered else viewer.organisation_id
        data = form.validate_model(area.spec.create, organisation_id=org_id)
        if data is not None:
            try:
                record = svc.create(side, data)
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
    record = svc.records.editable(side, record_id, current_viewer())
    form = FORMS[side](obj=None if request.method == "POST" else record, editing=True)
    if request.method == "GET" and hasattr(form, "process_record"):
        form.process_record(record)
    if form.validate_on_submit():
        data = form.validate_model(area.spec.update)
        if data is not None:
            try:
                record = svc.update(side, record_id, data)
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
    record = svc.records.editable(side, record_id, current_viewer())
    if request.method == "POST":
        svc.delete(side, record_id)
        flash(_("已删除: %(title)s", title=record.title), "success")
        return redirect(area.url("list"))
    orgs = directory().organisation_names([record.organisation_id])
    return render_template("records/delete.html", area=area, record=record, orgs=orgs)


def _has_errors(form) -> bool:
    return bool(form.form_errors) or any(f.errors for f in form)


for _area in AREAS.values():
    _side, _slug = {"side": _area.side}, _area.spec.plural
    bp.add_url_rule(f"/{_slug}", _area.endpoint("list")[5:], list_view, defaults=_side)
    bp.add_url_rule(f"/{_slug}/new", _area.endpoint("new")[5:], create_view, defaults=_side,
                    methods=["GET", "POST"])
    bp.add_url_rule(f"/{_slug}/<int:record_id>", _area.endpoint("detail")[5:], detail_view,
                    defaults=_side)
    bp.add_url_rule(f"/{_slug}/<int:record_id>/edit", _area.endpoint("edit")[5:], edit_view,
                    defaults=_side, methods=["GET", "POST"])
    bp.add_url_rule(f"/{_slug}/<int:record_id>/delete", _area.endpoint("delete")[5:], delete_view,
                    defaults=_side, methods=["GET", "POST"])
