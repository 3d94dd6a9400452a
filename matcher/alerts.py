"""Alerts: in-app notifications (and e-mail) when new records match old ones or saved searches.

``process_new_record`` is what the background job runs for each new record:
it ranks the other side for the record, tells the owners of every good match
(``MatchResult.good``), and tells every subscriber whose saved search now
ranks the record among its top results with good strength.  Each notification
carries a ``dedup_key``, so a job that is retried adds nothing twice.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from matcher.errors import NotFound, ValidationFailed
from matcher.models import (
    Achievement,
    Demand,
    Notification,
    Side,
    Subscription,
    SubscriptionCreate,
    User,
)
from matcher.retrieval import Filters
from matcher.service import MatcherService
from matcher.sides import spec
from matcher.visibility import Viewer

log = logging.getLogger(__name__)

ALERT_TOP = 10  # matches of a new record that may raise an alert
SUBSCRIPTION_TOP = 20  # a subscription fires when its search ranks the new record this high...
MAX_SUBSCRIPTIONS = 20  # ...and each saved search costs one ranking per new record
SUBSCRIPTION_FILTERS = ("industry_chain", "region", "min_trl", "cooperation_mode")


@dataclass(frozen=True)
class MailSettings:
    """Where and how to send e-mail (from the app's ``MAIL_*`` configuration)."""

    server: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # STARTTLS after connecting
    use_ssl: bool = False  # TLS from the first byte (SMTPS)
    sender: str = "techmatch@localhost"
    base_url: str = ""  # prepended to notification links in mails
    timeout: float = 10.0


# --- notifications --------------------------------------------------------------------

def notify_users(session: Session, user_ids: Iterable[int], *, kind: str, title_zh: str, title_en: str,
                 body_zh: str = "", body_en: str = "", link: str = "",
                 dedup_key: str | None = None) -> list[Notification]:
    """Add one notification per user (in the caller's transaction); users already told are skipped."""
    ids = list(dict.fromkeys(user_ids))
    if dedup_key is not None and ids:
        told = set(session.exec(select(Notification.user_id).where(
            Notification.dedup_key == dedup_key, Notification.user_id.in_(ids))).all())
        ids = [i for i in ids if i not in told]
    made = [Notification(user_id=uid, kind=kind, title_zh=title_zh[:300], title_en=title_en[:300],
                         body_zh=body_zh[:2000], body_en=body_en[:2000], link=link, dedup_key=dedup_key)
            for uid in ids]
    session.add_all(made)
    return made


def organisation_users(session: Session, organisation_id: int) -> list[int]:
    """The active users of an organisation."""
    return list(session.exec(select(User.id).where(
        User.organisation_id == organisation_id, User.active == True)).all())  # noqa: E712


def notify_org(session: Session, organisation_id: int, **kw) -> list[Notification]:
    """Notify every active user of an organisation (see :func:`notify_users`)."""
    return notify_users(session, organisation_users(session, organisation_id), **kw)


def list_notifications(engine: Engine, user_id: int, *, limit: int = 50,
                       unread_only: bool = False) -> tuple[list[Notification], int]:
    """The user's notifications, newest first, and how many are unread."""
    with Session(engine) as session:
        conds = [Notification.user_id == user_id]
        unread = session.exec(select(func.count()).select_from(Notification).where(
            *conds, Notification.read == False)).one()  # noqa: E712
        if unread_only:
            conds.append(Notification.read == False)  # noqa: E712
        rows = session.exec(select(Notification).where(*conds).order_by(
            Notification.created_at.desc(), Notification.id.desc()).limit(max(1, min(limit, 200)))).all()
        return list(rows), unread


def mark_read(engine: Engine, user_id: int, notification_id: int) -> Notification:
    """Mark one of the user's notifications read; NotFound for anyone else's."""
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(Notification, notification_id)
        if row is None or row.user_id != user_id:
            raise NotFound(f"notification {notification_id} not found")
        row.read = True
        session.add(row)
        session.commit()
        return row


# --- subscriptions ------------------------------------------------------------------------

def create_subscription(engine: Engine, *, user_id: int, data: SubscriptionCreate) -> Subscription:
    """Save a search for the user (at most ``MAX_SUBSCRIPTIONS`` each)."""
    filters = {k: v for k, v in data.model_dump(mode="json", include=set(SUBSCRIPTION_FILTERS)).items()
               if v not in (None, "")}
    with Session(engine, expire_on_commit=False) as session:
        n = session.exec(select(func.count()).select_from(Subscription).where(
            Subscription.user_id == user_id)).one()
        if n >= MAX_SUBSCRIPTIONS:
            raise ValidationFailed({"_": f"最多保存 {MAX_SUBSCRIPTIONS} 个订阅 / at most "
                                         f"{MAX_SUBSCRIPTIONS} subscriptions"})
        row = Subscription(user_id=user_id, side=data.side.value, query=data.query, filters=filters)
        session.add(row)
        session.commit()
        return row


def list_subscriptions(engine: Engine, user_id: int) -> list[Subscription]:
    with Session(engine) as session:
        return list(session.exec(select(Subscription).where(Subscription.user_id == user_id)
                                 .order_by(Subscription.id)).all())


def delete_subscription(engine: Engine, user_id: int, subscription_id: int) -> None:
    with Session(engine) as session:
        row = session.get(Subscription, subscription_id)
        if row is None or row.user_id != user_id:
            raise NotFound(f"subscription {subscription_id} not found")
        session.delete(row)
        session.commit()


# --- the job --------------------------------------------------------------------------------

def process_new_record(service: MatcherService, side: Side, record_id: int, *,
                       mail: MailSettings | None = None) -> list[Notification]:
    """Alerts for a newly created record: good matches on the other side, and subscriptions.

    Args:
        service: the matcher service (database, indexes, ranking).
        side: the new record's side.
        record_id: the new record.
        mail: where to send e-mail copies; None sends none.

    Returns:
        The notifications created (none for a record deleted or no longer active meanwhile).
    """
    side = Side(side)
    try:
        record = service.get(side, record_id)
    except NotFound:
        return []
    if str(record.status) != spec(side).active_status or record.deleted_at is not None:
        return []
    made: list[Notification] = []
    with Session(service.engine, expire_on_commit=False) as session:
        made += _match_alerts(service, session, side, record)
        made += _subscription_alerts(service, session, side, record)
        session.commit()
        if mail is not None and made:
            users = {u.id: u for u in session.exec(select(User).where(
                User.id.in_({n.user_id for n in made}))).all()}
            send_notifications(mail, [(users[n.user_id].email, n) for n in made
                                      if users.get(n.user_id) and users[n.user_id].email])
    return made


def _match_alerts(service: MatcherService, session: Session, side: Side,
                  record: Demand | Achievement) -> list[Notification]:
    if side is Side.demand and record.confidential:
        return []  # the other side may not see it, so may not hear of it either
    made: list[Notification] = []
    for result in service.stored_matches(record, k=ALERT_TOP, explain=False):
        other = result.record
        if not result.good or other.organisation_id == record.organisation_id:
            continue
        if side is Side.demand:
            title_zh = f"新技术需求与贵单位成果「{other.title}」匹配"
            title_en = f"A new demand matches your achievement “{other.title}”"
        else:
            title_zh = f"新科技成果与贵单位需求「{other.title}」匹配"
            title_en = f"A new achievement matches your demand “{other.title}”"
        made += notify_org(
            session, other.organisation_id, kind="match", title_zh=title_zh, title_en=title_en,
            body_zh=f"{record.title} (匹配强度 {result.strength:.2f})",
            body_en=f"{record.title} (match strength {result.strength:.2f})",
            link=f"/{side.value}s/{record.id}", dedup_key=f"match:{side.value}:{record.id}:{other.id}")
    return made


def _subscription_alerts(service: MatcherService, session: Session, side: Side,
                         record: Demand | Achievement) -> list[Notification]:
    made: list[Notification] = []
    subs = session.exec(select(Subscription, User).join(User, User.id == Subscription.user_id).where(
        Subscription.side == side.value, User.active == True)).all()  # noqa: E712
    for sub, user in subs:
        if user.organisation_id is not None and user.organisation_id == record.organisation_id:
            continue  # nobody needs telling about their own organisation's record
        viewer = Viewer(user_id=user.id, organisation_id=user.organisation_id, role=user.role)
        found = service.search(sub.query, side, k=SUBSCRIPTION_TOP, viewer=viewer,
                               filters=Filters(**{k: v for k, v in (sub.filters or {}).items()
                                                  if k in SUBSCRIPTION_FILTERS}))
        if not any(r.record.id == record.id and r.good for r in found):
            continue
        made += notify_users(
            session, [user.id], kind="subscription",
            title_zh=f"订阅「{sub.query[:40]}」有新{'需求' if side is Side.demand else '成果'}",
            title_en=f"New {side.value} for your subscription “{sub.query[:40]}”",
            body_zh=record.title, body_en=record.title, link=f"/{side.value}s/{record.id}",
            dedup_key=f"sub:{sub.id}:{side.value}:{record.id}")
    return made


# --- e-mail ------------------------------------------------------------------------------------

def send_notifications(mail: MailSettings, items: list[tuple[str, Notification]]) -> int:
    """E-mail each notification to its address over one SMTP connection; returns how many were sent.

    A failing mail server is logged, never raised: the in-app notification is
    already committed and is what counts.
    """
    if not items:
        return 0
    sent = 0
    try:
        with _connect(mail) as smtp:
            for address, n in items:
                smtp.send_message(_message(mail, address, n))
                sent += 1
    except (OSError, smtplib.SMTPException):
        log.exception("sending %d notification mails via %s:%s failed", len(items), mail.server, mail.port)
    return sent


def _connect(mail: MailSettings) -> smtplib.SMTP:
    if mail.use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(mail.server, mail.port, timeout=mail.timeout,
                                              context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(mail.server, mail.port, timeout=mail.timeout)
        if mail.use_tls:
            smtp.starttls(context=ssl.create_default_context())
    if mail.username:
        smtp.login(mail.username, mail.password or "")
    return smtp


def _message(mail: MailSettings, address: str, n: Notification) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[techmatch] {n.title_zh} / {n.title_en}"
    msg["From"] = mail.sender
    msg["To"] = address
    link = f"{mail.base_url.rstrip('/')}{n.link}" if n.link else ""
    msg.set_content("\n".join(line for line in (
        n.title_zh, n.body_zh, "", n.title_en, n.body_en, "", link) if line is not None))
    return msg
