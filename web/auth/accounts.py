"""Organisations and user accounts: the directory behind sign-in and the admin area.

The matcher service owns demands and achievements; people and organisations
are kept here so views never write SQL.  Reads and writes go through one
session per request, which a 500 rolls back (see :mod:`web.errors`).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, g
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from werkzeug.security import check_password_hash, generate_password_hash

from matcher.errors import NotFound, ValidationFailed
from matcher.models import Organisation, OrganisationCreate, OrgKind, Role, User

# Which organisations each role may belong to (admins belong to none or any).
ROLE_ORG_KINDS: dict[str, tuple[str, ...]] = {
    Role.enterprise.value: (OrgKind.enterprise.value,),
    Role.institution.value: (OrgKind.university.value, OrgKind.institute.value),
    Role.broker.value: (OrgKind.transfer_centre.value,),
}
PASSWORD_MIN = 8
# Compared against when the user does not exist, so both paths cost one hash check.
_DUMMY_HASH = generate_password_hash("techmatch-no-such-user")


def init_app(app: Flask) -> None:
    app.teardown_request(_close_request_session)


def request_session() -> Session:
    """The request's session (created on first use, closed at teardown)."""
    if "techmatch_session" not in g:
        from web.extensions import engine

        g.techmatch_session = Session(engine(), expire_on_commit=False)
    return g.techmatch_session


def rollback_request_session() -> None:
    session = g.get("techmatch_session")
    if session is not None:
        session.rollback()


def _close_request_session(exc: BaseException | None = None) -> None:
    session = g.pop("techmatch_session", None)
    if session is not None:
        if exc is not None:
            session.rollback()
        session.close()


# --- sign-in --------------------------------------------------------------------

def authenticate(username: str, password: str) -> User | None:
    """The active user with this username and password, else None."""
    user = request_session().exec(select(User).where(User.username == username.strip())).first()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


# --- organisations -----------------------------------------------------------------

def organisation_names(ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = request_session().exec(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted))).all()
    return dict(rows)


def get_organisation(org_id: int | None) -> Organisation | None:
    return request_session().get(Organisation, org_id) if org_id else None


def organisations(kinds: Iterable[str] | None = None) -> list[Organisation]:
    query = select(Organisation).order_by(Organisation.name)
    if kinds is not None:
        query = query.where(Organisation.kind.in_(list(kinds)))
    return list(request_session().exec(query).all())


def count_organisations() -> int:
    return request_session().exec(select(func.count()).select_from(Organisation)).one()


def create_organisation(data: OrganisationCreate) -> Organisation:
    """Store a new organisation; ValidationFailed when the name is taken."""
    session = request_session()
    if session.exec(select(Organisation).where(Organisation.name == data.name)).first():
        raise ValidationFailed({"name": "机构名称已存在 / an organisation with this name exists"})
    org = Organisation.model_validate(data.model_dump(mode="json"))
    session.add(org)
    _commit(session, "name", "机构名称已存在 / an organisation with this name exists")
    return org


# --- users ----------------------------------------------------------------------------

def users() -> list[User]:
    return list(request_session().exec(select(User).order_by(User.username)).all())


def get_user(user_id: int) -> User:
    user = request_session().get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def count_users() -> int:
    return request_session().exec(select(func.count()).select_from(User)).one()


def _check_membership(role: str, organisation_id: int | None) -> None:
    kinds = ROLE_ORG_KINDS.get(role)
    if kinds is None:
        if role != Role.admin.value:
            raise ValidationFailed({"role": "角色无效 / unknown role"})
        return
    org = get_organisation(organisation_id)
    if org is None:
        raise ValidationFailed({"organisation_id": "该角色必须归属一个机构 / this role needs an organisation"})
    if org.kind not in kinds:
        allowed = "、".join(OrgKind(k).zh for k in kinds)
        allowed_en = ", ".join(OrgKind(k).en for k in kinds)
        raise ValidationFailed({"organisation_id":
                                f"该角色只能归属于: {allowed} / this role belongs to: {allowed_en}"})


def create_user(*, username: str, password: str, role: str, organisation_id: int | None,
                display_name: str = "", email: str = "") -> User:
    """Store a new user with a hashed password; ValidationFailed on a taken name or bad membership."""
    session = request_session()
    username = username.strip()
    if session.exec(select(User).where(User.username == username)).first():
        raise ValidationFailed({"username": "用户名已被使用 / this username is taken"})
    if len(password) < PASSWORD_MIN:
        raise ValidationFailed({"password": f"密码至少 {PASSWORD_MIN} 位 / at least {PASSWORD_MIN} characters"})
    _check_membership(role, organisation_id)
    user = User(username=username, password_hash=generate_password_hash(password), role=role,
                organisation_id=organisation_id or None, display_name=display_name.strip(),
                email=email.strip())
    session.add(user)
    _commit(session, "username", "用户名已被使用 / this username is taken")
    return user


def update_user(user_id: int, *, acting_user_id: int, role: str, organisation_id: int | None,
                display_name: str, active: bool, password: str | None = None) -> User:
    """Change a user's role, organisation, name, status or password.

    Admins cannot take away their own admin role or deactivate themselves, so
    the portal always keeps someone who can manage it.
    """
    session = request_session()
    user = get_user(user_id)
    if user.id == acting_user_id and (role != Role.admin.value or not active):
        raise ValidationFailed({"role": "不能取消自己的管理员权限或停用自己 / "
                                        "you cannot remove your own admin role or deactivate yourself"})
    _check_membership(role, organisation_id)
    if password:
        if len(password) < PASSWORD_MIN:
            raise ValidationFailed({"password": f"密码至少 {PASSWORD_MIN} 位 / at least {PASSWORD_MIN} characters"})
        user.password_hash = generate_password_hash(password)
    user.role = role
    user.organisation_id = organisation_id or None
    user.display_name = display_name.strip()
    user.active = active
    session.add(user)
    _commit(session, "username", "保存失败 / could not save")
    return user


def _commit(session: Session, field: str, message: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent insert won the race
        session.rollback()
        raise ValidationFailed({field: message}) from exc
