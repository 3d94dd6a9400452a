"""Who is asking: Flask-Login sessions for pages, bearer tokens for the API."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from flask import g
from flask_login import AnonymousUserMixin, LoginManager, UserMixin, current_user
from sqlmodel import Session, select

from matcher.models import ApiToken, Role, User
from matcher.visibility import Viewer

login_manager = LoginManager()
login_manager.login_view = "auth.login"
TOKEN_TTL = timedelta(days=30)


class PortalUser(UserMixin):
    """The logged-in user as Flask-Login sees it (a detached copy of the row)."""

    def __init__(self, user: User):
        self.row = user
        self.id = user.id
        self.username = user.username
        self.role = user.role
        self.organisation_id = user.organisation_id
        self.display_name = user.display_name or user.username

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_active(self) -> bool:
        return bool(self.row.active)

    def has_role(self, *roles: Role | str) -> bool:
        return self.role in {r.value if isinstance(r, Role) else r for r in roles}

    @property
    def viewer(self) -> Viewer:
        return Viewer(user_id=self.id, organisation_id=self.organisation_id, role=self.role)


class Anonymous(AnonymousUserMixin):
    role = None
    organisation_id = None

    def has_role(self, *roles) -> bool:
        return False

    @property
    def viewer(self) -> Viewer:
        return Viewer.anonymous()


login_manager.anonymous_user = Anonymous


def init_app(app) -> None:
    login_manager.init_app(app)

    @login_manager.user_loader
    def load_user(user_id: str):
        from web.extensions import engine

        with Session(engine()) as session:
            user = session.get(User, int(user_id)) if user_id.isdigit() else None
        return PortalUser(user) if user and user.active else None


def current_viewer() -> Viewer:
    """The viewer of this request: the API token's user, else the session's user."""
    api_user = g.get("api_user")
    if api_user is not None:
        return api_user.viewer
    return current_user.viewer


def issue_token(engine, user_id: int) -> tuple[str, datetime]:
    """A new bearer token for the user; only its digest is stored."""
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + TOKEN_TTL
    with Session(engine) as session:
        session.add(ApiToken(digest=_digest(token), user_id=user_id, expires_at=expires))
        session.commit()
    return token, expires


def user_for_token(engine, token: str) -> PortalUser | None:
    with Session(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.digest == _digest(token))).first()
        if row is None:
            return None
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
        if expires < datetime.now(UTC):
            return None
        user = session.get(User, row.user_id)
    return PortalUser(user) if user and user.active else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
