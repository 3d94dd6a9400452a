"""Organisations and user accounts: one service for the portal, the API, the CLI and the seeds."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func
from sqlalchemy.engine import Engine
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
NAME_TAKEN = "机构名称已存在 / an organisation with this name exists"
# Compared against when the user does not exist, so both paths cost one hash check.
_DUMMY_HASH = generate_password_hash("techmatch-no-such-user")


class Directory:
    """Organisations and users, each call in its own short transaction.

    Args:
        engine: the database.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- sign-in -----------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this username and password, else None."""
        with self._session() as session:
            user = session.exec(select(User).where(User.username == username.strip())).first()
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        if not check_password_hash(user.password_hash, password) or not user.active:
            return None
        return user

    # --- organisations -------------------------------------------------------------------

    def organisation_names(self, ids: Iterable[int | None]) -> dict[int, str]:
        """Names of the given organisations, in one query."""
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        with self._session() as session:
            return dict(session.exec(select(Organisation.id, Organisation.name)
                                     .where(Organisation.id.in_(wanted))).all())

    def get_organisation(self, org_id: int | None) -> Organisation | None:
        if not org_id:
            return None
        with self._session() as session:
            return session.get(Organisation, org_id)

    def organisations(self, kinds: Iterable[str] | None = None) -> list[Organisation]:
        query = select(Organisation).order_by(Organisation.name)
        if kinds is not None:
            query = query.where(Organisation.kind.in_(list(kinds)))
        with self._session() as session:
            return list(session.exec(query).all())

    def count_organisations(self) -> int:
        with self._session() as session:
            return session.exec(select(func.count()).select_from(Organisation)).one()

    def create_organisation(self, data: OrganisationCreate) -> Organisation:
        """Store a new organisation; ValidationFailed when the name is taken."""
        with self._session() as session:
            if session.exec(select(Organisation.id).where(Organisation.name == data.name)).first():
                raise ValidationFailed({"name": NAME_TAKEN})
            org = Organisation.model_validate(data.model_dump(mode="json"))
            session.add(org)
            _commit(session, "name", NAME_TAKEN)
            return org

    def organisation_by_name(self, name: str) -> Organisation | None:
        with self._session() as session:
            return session.exec(select(Organisation).where(Organisation.name == name.strip())).first()

    def ensure_organisation(self, name: str, kind: str, region: str = "", description: str = "") -> Organisation:
        """The organisation of this name, created with ``kind`` if there is none (a race is harmless)."""
        org = self.organisation_by_name(name)
        if org is not None:
            return org
        try:
            return self.create_organisation(OrganisationCreate(name=name.strip(), kind=kind, region=region,
                                                               description=description))
        except ValidationFailed:  # created meanwhile by someone else
            org = self.organisation_by_name(name)
            if org is None:
                raise
            return org

    # --- users ----------------------------------------------------------------------------

    def users(self) -> list[User]:
        with self._session() as session:
            return list(session.exec(select(User).order_by(User.username)).all())

    def get_user(self, user_id: int) -> User:
        with self._session() as session:
            user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    def user_by_name(self, username: str) -> User | None:
        with self._session() as session:
            return session.exec(select(User).where(User.username == username.strip())).first()

    def usernames(self, ids: Iterable[int | None]) -> dict[int, str]:
        """User names by id (for audit trails)."""
        wanted = {i for i in ids if i}
        if not wanted:
            return {}
        with self._session() as session:
            return dict(session.exec(select(User.id, User.username).where(User.id.in_(wanted))).all())

    def count_users(self) -> int:
        with self._session() as session:
            return session.exec(select(func.count()).select_from(User)).one()

    def _check_membership(self, session: Session, role: str, organisation_id: int | None) -> None:
        kinds = ROLE_ORG_KINDS.get(role)
        if kinds is None:
            if role != Role.admin.value:
                raise ValidationFailed({"role": "角色无效 / unknown role"})
            return
        org = session.get(Organisation, organisation_id) if organisation_id else None
        if org is None:
            raise ValidationFailed({"organisation_id": "该角色必须归属一个机构 / this role needs an organisation"})
        if org.kind not in kinds:
            allowed = "、".join(OrgKind(k).zh for k in kinds)
            allowed_en = ", ".join(OrgKind(k).en for k in kinds)
            raise ValidationFailed({"organisation_id":
                                    f"该角色只能归属于: {allowed} / this role belongs to: {allowed_en}"})

    def create_user(self, *, username: str, password: str, role: str, organisation_id: int | None,
                    display_name: str = "", email: str = "") -> User:
        """Store a new user with a hashed password; ValidationFailed on a taken name or bad membership."""
        username = username.strip()
        with self._session() as session:
            if session.exec(select(User.id).where(User.username == username)).first():
                raise ValidationFailed({"username": "用户名已被使用 / this username is taken"})
            _check_password(password)
            self._check_membership(session, role, organisation_id)
            user = User(username=username, password_hash=generate_password_hash(password), role=role,
                        organisation_id=organisation_id or None, display_name=display_name.strip(),
                        email=email.strip())
            session.add(user)
            _commit(session, "username", "用户名已被使用 / this username is taken")
            return user

    def update_user(self, user_id: int, *, acting_user_id: int, role: str, organisation_id: int | None,
                    display_name: str, active: bool, password: str | None = None) -> User:
        """Change a user's role, organisation, name, status or password.

        Admins cannot take away their own admin role or deactivate themselves, so
        the portal always keeps someone who can manage it.
        """
        with self._session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            if user.id == acting_user_id and (role != Role.admin.value or not active):
                raise ValidationFailed({"role": "不能取消自己的管理员权限或停用自己 / "
                                                "you cannot remove your own admin role or deactivate yourself"})
            self._check_membership(session, role, organisation_id)
            if password:
                _check_password(password)
                user.password_hash = generate_password_hash(password)
            user.role = role
            user.organisation_id = organisation_id or None
            user.display_name = display_name.strip()
            user.active = active
            session.add(user)
            _commit(session, "username", "保存失败 / could not save")
            return user


def _check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise ValidationFailed({"password": f"密码至少 {PASSWORD_MIN} 位 / at least {PASSWORD_MIN} characters"})


def _commit(session: Session, field: str, message: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent insert won the race
        session.rollback()
        raise ValidationFailed({field: message}) from exc
