"""Admin area: organisations, users and their roles (administrators only)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from matcher.errors import ValidationFailed, field_errors
from matcher.models import OrganisationCreate, Role
from web.admin.forms import OrganisationForm, UserCreateForm, UserEditForm
from web.extensions import directory
from web.main.forms import apply_errors
from web.security import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def admins_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.has_role(Role.admin):
        abort(403)


@bp.get("/")
def index():
    return render_template("admin/index.html", organisation_count=directory().count_organisations(),
                           user_count=directory().count_users())


@bp.route("/organisations", methods=["GET", "POST"])
def organisations():
    form = OrganisationForm()
    status = 200
    if form.validate_on_submit():
        from pydantic import ValidationError

        try:
            data = OrganisationCreate.model_validate({
                "name": form.name.data.strip(), "kind": form.kind.data,
                "region": (form.region.data or "").strip(), "description": form.description.data or ""})
            org = directory().create_organisation(data)
        except ValidationError as exc:
            apply_errors(form, field_errors(exc))
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(_("已创建机构: %(name)s", name=org.name), "success")
            return redirect(url_for("admin.organisations"))
    if form.is_submitted() and form.errors:
        status = 422
    return render_template("admin/organisations.html", form=form,
                           organisations=directory().organisations()), status


@bp.route("/users", methods=["GET", "POST"])
def users():
    orgs = directory().organisations()
    form = UserCreateForm(organisations=orgs)
    status = 200
    if form.validate_on_submit():
        try:
            user = directory().create_user(
                username=form.username.data, password=form.password.data, role=form.role.data,
                organisation_id=form.organisation_id.data or None,
                display_name=form.display_name.data or "", email=form.email.data or "")
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(_("已创建用户: %(name)s", name=user.username), "success")
            return redirect(url_for("admin.users"))
    if form.is_submitted() and form.errors:
        status = 422
    return render_template("admin/users.html", form=form, users=directory().users(),
                           orgs={o.id: o.name for o in orgs}), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    user = directory().get_user(user_id)
    form = UserEditForm(obj=None if request.method == "POST" else user,
                        organisations=directory().organisations())
    if not form.is_submitted():
        form.organisation_id.data = user.organisation_id or 0
    status = 200
    if form.validate_on_submit():
        try:
            directory().update_user(user_id, acting_user_id=current_user.id, role=form.role.data,
                                 organisation_id=form.organisation_id.data or None,
                                 display_name=form.display_name.data or "", active=form.active.data,
                                 password=form.password.data or None)
        except ValidationFailed as exc:
            apply_errors(form, exc.errors)
        else:
            flash(_("已保存用户: %(name)s", name=user.username), "success")
            return redirect(url_for("admin.users"))
    if form.is_submitted() and form.errors:
        status = 422
    return render_template("admin/user_edit.html", form=form, user=user), status
