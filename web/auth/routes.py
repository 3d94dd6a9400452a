"""Sign in and out (Flask-Login sessions); sign-in attempts are rate limited."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from matcher.models import Role
from web import limiter
from web.auth.forms import LoginForm, LogoutForm
from web.extensions import directory
from web.main.routes import safe_next
from web.security import PortalUser

bp = Blueprint("auth", __name__, url_prefix="/auth")

DEMO_ACCOUNTS = [("enterprise-demo", Role.enterprise), ("institution-demo", Role.institution),
                 ("broker-demo", Role.broker), ("admin-demo", Role.admin)]


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _username_key() -> str:
    return "login-user:" + (request.form.get("username") or "").strip().lower()[:64]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit("30 per hour", key_func=_username_key, methods=["POST"],
               deduct_when=lambda response: response.status_code == 401)  # failures per account
def login():
    form = LoginForm()
    target = safe_next(request.values.get("next")) or url_for("main.index")
    if current_user.is_authenticated:
        return redirect(target)
    status = 200
    if form.validate_on_submit():
        user = directory().authenticate(form.username.data, form.password.data)
        if user is not None:
            login_user(PortalUser(user), remember=form.remember.data)
            flash(_("欢迎, %(name)s", name=user.display_name or user.username), "success")
            return redirect(target)
        form.password.errors.append(_("用户名或密码错误"))
        status = 401
    elif form.is_submitted():
        status = 400
    form.next.data = safe_next(request.values.get("next")) or ""
    demo = None
    if current_app.config.get("DEMO_MODE"):
        from seeds import DEMO_PASSWORD

        demo = {"accounts": DEMO_ACCOUNTS, "password": DEMO_PASSWORD}
    return render_template("auth/login.html", form=form, demo=demo), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if not current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LogoutForm()
    if form.validate_on_submit():
        logout_user()
        flash(_("您已退出登录"), "info")
        return redirect(url_for("main.index"))
    return render_template("auth/logout.html", form=form)
