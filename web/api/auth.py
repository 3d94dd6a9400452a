"""Bearer tokens: who is calling the API, and what they may do.

The API never looks at the portal's session cookie: it is exempt from CSRF
protection, so a cookie-authenticated write would be forgeable from another
site.  Callers without a token are anonymous and may read public data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request

from matcher.visibility import Viewer
from web.api.errors import ApiError
from web.extensions import engine
from web.security import PortalUser, user_for_token

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="techmatch"'}
INVALID = {"WWW-Authenticate": 'Bearer realm="techmatch", error="invalid_token"'}


def load_bearer() -> None:
    """Set ``g.api_user`` from the Authorization header; 401 for a bad or expired token."""
    g.api_user = None
    header = request.headers.get("Authorization")
    if header is None:
        return
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "仅支持 Bearer 令牌 / only bearer tokens are accepted", headers=INVALID)
    user = user_for_token(engine(), token)
    if user is None:
        raise ApiError(401, "令牌无效或已过期 / invalid or expired token", headers=INVALID)
    g.api_user = user


def api_user() -> PortalUser | None:
    return g.get("api_user")


def viewer() -> Viewer:
    """The caller as the matcher sees them (anonymous without a token)."""
    user = api_user()
    return user.viewer if user is not None else Viewer.anonymous()


def authenticate(username: str, password: str) -> PortalUser | None:
    """The active user with these credentials, else None (the portal's one check)."""
    from web.extensions import directory

    user = directory().authenticate(username, password)
    return PortalUser(user) if user is not None else None


def require(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """401 for anonymous callers, 403 for other roles than ``roles`` (any role if none given).

    Checked before the body is validated: a caller who may not write learns
    nothing from the validation of what they sent.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = api_user()
            if user is None:
                raise ApiError(401, headers=CHALLENGE)
            if roles and user.role not in roles:
                raise ApiError(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate
