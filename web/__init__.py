"""The techmatch portal: Flask app factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from embeddings import DEFAULT_BACKEND

DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": None,
    "DATABASE_URL": None,  # default: SQLite in the instance folder
    "EMBEDDING_MODEL": "bundled:multilingual-e5-small",
    "EMBEDDING_BACKEND": DEFAULT_BACKEND,  # torch, onnx, onnx:int8, openvino, ... (README)
    "CACHE_DIR": None,  # default: TECHMATCH_CACHE or the user's cache dir
    "INDEX_BACKEND": "flat",
    "FUSION": "absolute",
    "DENSE_WEIGHT": 0.4,
    "MATCH_THRESHOLD": 0.45,
    "REDIS_URL": None,
    "DEMO_MODE": False,
    # portal
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # larger bodies get a 413 page, never reach a view
    "BABEL_DEFAULT_LOCALE": "zh",
    "LANGUAGES": ("zh", "en"),
    "LOGIN_RATE_LIMIT": "10 per minute",
    # Redis (the limiter's storage when configured) may be down: pages keep working
    "RATELIMIT_SWALLOW_ERRORS": True,
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}

# Portal extensions: created once, bound to each app in ``create_app``.
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(get_remote_address)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then instance config, then environment, then ``test_config``.

    Environment: every ``TECHMATCH_<KEY>`` sets ``<KEY>``; ``DATABASE_URL``,
    ``EMBEDDING_MODEL`` and ``SECRET_KEY`` are read without the prefix too.
    ``TECHMATCH_INSTANCE`` (or ``INSTANCE_PATH`` in ``test_config``) chooses the
    instance folder.
    """
    instance = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("TECHMATCH_INSTANCE")
    app = Flask(__name__, instance_path=str(Path(instance).resolve()) if instance else None,
                instance_relative_config=True)
    app.json.ensure_ascii = False  # Chinese stays readable in JSON answers
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    for key in ("DATABASE_URL", "EMBEDDING_MODEL", "SECRET_KEY", "REDIS_URL"):
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    app.config.from_prefixed_env("TECHMATCH")
    if test_config:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["SECRET_KEY"]:
        if not (app.debug or app.testing or app.config.get("DEMO_MODE")):
            raise RuntimeError(
                "SECRET_KEY 未设置 / SECRET_KEY is required outside debug and demo mode "
                "(set TECHMATCH_SECRET_KEY or SECRET_KEY)"
            )
        app.config["SECRET_KEY"] = "dev-only-insecure-key"

    from web import extensions, security

    extensions.init_app(app)
    security.init_app(app)
    _init_portal(app)

    from web.admin.routes import bp as admin_bp
    from web.api.routes import bp as api_bp
    from web.auth.routes import bp as auth_bp
    from web.main.routes import bp as main_bp
    from web.workspace.routes import bp as workspace_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(workspace_bp)

    from web.cli import register_commands

    register_commands(app)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def _init_portal(app: Flask) -> None:
    """CSRF, languages, rate limits, the error renderer and the template helpers."""
    from web import errors
    from web.main import filters

    csrf.init_app(app)  # every form post; the bearer-token API exempts its blueprint (web.api.routes)
    babel.init_app(app, locale_selector=current_language)
    app.before_request(_remember_language)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
    errors.init_app(app)
    filters.init_app(app)
    app.after_request(_security_headers)

    from flask_babel import lazy_gettext

    from web.security import login_manager

    login_manager.login_message = lazy_gettext("请先登录后再访问此页面。")
    login_manager.login_message_category = "info"
    login_manager.localize_callback = str  # the lazy message, in the request's language


# Pages use only the app's own scripts, styles and images; injected markup can do nothing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def _security_headers(response):
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def current_language() -> str:
    """``?lang=`` for this request, else the language stored in the session, else Chinese."""
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    asked = request.args.get("lang")
    if asked in languages:
        return asked
    stored = session.get("lang")
    return stored if stored in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def _remember_language() -> None:
    from flask import current_app

    asked = request.args.get("lang")
    if asked in current_app.config["LANGUAGES"] and session.get("lang") != asked:
        session["lang"] = asked
