"""Rate limits of the API (token requests), with Flask-Limiter.

The API has its own ``Limiter`` instance; Flask-Limiter supports several on
one app (``app.extensions["limiter"]`` is a set), so it works with or without
the portal's and obeys the same ``RATELIMIT_*`` settings: ``RATELIMIT_ENABLED``
switches it off, ``RATELIMIT_STORAGE_URI`` chooses the storage (default:
``REDIS_URL`` when set, so every worker shares the counters, else memory).
``API_TOKEN_RATE_LIMIT`` sets the limit on failed logins per client address
and user name, ``API_TOKEN_RATE_LIMIT_IP`` per client address.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

DEFAULT_TOKEN_LIMIT = "5 per minute;20 per hour"
DEFAULT_TOKEN_LIMIT_IP = "30 per minute;200 per hour"

limiter = Limiter(key_func=get_remote_address)


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    limiter.init_app(app)


def token_limit() -> str:
    return current_app.config.get("API_TOKEN_RATE_LIMIT", DEFAULT_TOKEN_LIMIT)


def token_limit_ip() -> str:
    return current_app.config.get("API_TOKEN_RATE_LIMIT_IP", DEFAULT_TOKEN_LIMIT_IP)


def address_and_username() -> str:
    body = request.get_json(silent=True)
    name = body.get("username") if isinstance(body, dict) else None
    return f"{get_remote_address()}|{str(name or '').strip().lower()[:64]}"


def failed(response) -> bool:
    """Only failed attempts count, so a user who signs in now and then is never throttled."""
    return response.status_code == 401
