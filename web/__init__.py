"""The techmatch portal: Flask app factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": None,
    "DATABASE_URL": None,  # default: SQLite in the instance folder
    "EMBEDDING_MODEL": "bundled:multilingual-e5-small",
    "CACHE_DIR": None,  # default: TECHMATCH_CACHE or the user's cache dir
    "INDEX_BACKEND": "flat",
    "FUSION": "rrf",
    "DENSE_WEIGHT": 0.5,
    "MATCH_THRESHOLD": 0.35,
    "REDIS_URL": None,
    "DEMO_MODE": False,
}


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

    from web.api.routes import bp as api_bp
    from web.auth.routes import bp as auth_bp
    from web.main.routes import bp as main_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(api_bp)

    from web.cli import register_commands

    register_commands(app)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
