"""Demands and achievements: create, change, delete, read and list, for both sides.

The write path: the text is encoded *before* anything is written; the record,
its vectors and the side's revision are committed in one transaction; then the
side's in-memory indexes follow and the listeners hear of it.  A crash at any
point leaves the database whole, and the indexes are rebuilt from it.

Deleting keeps the row (``deleted_at``): its matches, open calls and audit trail
still point at it, its id is never given to another record, and it is hidden
from everyone but brokers by the one visibility rule (:mod:`matcher.visibility`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import String, cast, func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from matcher import jobs
from matcher.errors import Forbidden, NotFound, ValidationFailed, field_errors
from matcher.jobs import Outbox
from matcher.models import Organisation, Role, Side, utcnow
from matcher.retrieval import Filters
from matcher.sideindex import SideIndex
from matcher.sides import SIDES, SideSpec, spec
from matcher.visibility import Viewer, visible

log = logging.getLogger(__name__)
DUPLICATE_EXTERNAL_ID = "该机构已有此外部编号的记录 / this organisation has a record with this external id"

# listener(event, side, record_id), called after a write has committed:
# "created", "updated", "deleted".
Listener = Callable[[str, Side, int], None]


def _column_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_column_value(v) for v in value]
    return value


def filter_conditions(s: SideSpec, f: Filters) -> list[Any]:
    """The list filters as SQL conditions on the side's table."""
    table = s.table
    conds: list[Any] = []
    if f.status and f.status != "any":
        conds.append(table.status == f.status)
    if f.industry_chain:
        conds.append(table.industry_chain == f.industry_chain)
    if f.region:
        conds.append(table.region == f.region)
    if f.organisation_id:
        conds.append(table.organisation_id == f.organisation_id)
    if f.min_trl:
        conds.append(getattr(table, s.trl_field) >= f.min_trl)
    if f.cooperation_mode:
        # A JSON list of codes: its text holds the code in quotes exactly when the list
        # holds the code (codes are plain identifiers), on SQLite and PostgreSQL alike.
        conds.append(cast(getattr(table, s.modes_field), String).like(f'%"{f.cooperation_mode}"%'))
    return conds


class Records:
    """Records of both sides.

    Args:
        engine: the database (source of truth).
        indexes: each side's :class:`SideIndex`, kept in step with every write.
    """

    def __init__(self, engine: Engine, indexes: dict[Side, SideIndex], outbox: Outbox | None = None):
        self.engine = engine
        self.indexes = indexes
        self.outbox = outbox
        self.listeners: list[Listener] = []

    # --- reads -------------------------------------------------------------------------

    def get(self, side: Side | str, record_id: int, viewer: Viewer | None = None) -> Any:
        """A record by id; NotFound for none, and for one the viewer may not see."""
        s = spec(side)
        with Session(self.engine, expire_on_commit=False) as session:
            record = session.get(s.table, record_id)
        if record is None or not (viewer or Viewer.internal()).can_see(record):
            raise NotFound(f"{s.name} {record_id} not found")
        return record

    def fetch(self, s: SideSpec, ids: Sequence[int]) -> dict[int, Any]:
        """Records by id, whatever their state (internal: callers apply visibility)."""
        ids = list(ids)
        if not ids:
            return {}
        with Session(self.engine, expire_on_commit=False) as session:
            return {r.id: r for r in session.exec(select(s.table).where(s.table.id.in_(ids))).all()}

    def list(self, side: Side | str, *, viewer: Viewer | None = None, filters: Filters | None = None,
             page: int = 1, per_page: int = 20) -> tuple[list[Any], int]:
        """A page of the records the viewer may see, newest first, filtered.

        Lists show every status unless ``filters.status`` is set.

        Returns:
            The page's records and the total number of matching records.
        """
        s = spec(side)
        viewer = viewer or Viewer.internal()
        conds = [*filter_conditions(s, filters or Filters()), visible(viewer, s.table),
                 s.table.deleted_at == None]  # noqa: E711 - deleted records are never listed
        page, per_page = max(1, int(page)), max(1, min(int(per_page), 100))
        with Session(self.engine, expire_on_commit=False) as session:
            total = session.exec(select(func.count()).select_from(s.table).where(*conds)).one()
            rows = session.exec(select(s.table).where(*conds).order_by(s.table.id.desc())
                                .offset((page - 1) * per_page).limit(per_page)).all()
        return list(rows), total

    def count(self, side: Side | str, *, viewer: Viewer | None = None, filters: Filters | None = None) -> int:
        """How many records the viewer may see (live ones), filtered."""
        s = spec(side)
        conds = [*filter_conditions(s, filters or Filters()), visible(viewer or Viewer.internal(), s.table),
                 s.table.deleted_at == None]  # noqa: E711
        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(s.table).where(*conds)).one()

    # --- who may write -----------------------------------------------------------------------

    @staticmethod
    def can_create(viewer: Viewer, side: Side | str) -> bool:
        """Brokers post either side for an organisation; enterprises post demands and
        institutions achievements, for their own organisation."""
        if viewer.role == Role.broker.value:
            return True
        return viewer.role == spec(side).owner_role and viewer.organisation_id is not None

    def owner_for(self, viewer: Viewer, side: Side | str, requested: int | None) -> int:
        """The organisation a new record of the viewer belongs to.

        Raises:
            Forbidden: the viewer may not post this side, or not for that organisation.
            ValidationFailed: a broker gave no organisation.
        """
        s = spec(side)
        if not self.can_create(viewer, s.side):
            raise Forbidden(f"你的角色不能发布{s.zh} / your role may not post {s.en}s")
        if viewer.role == Role.broker.value:
            if requested is None:
                raise ValidationFailed({"organisation_id": "经纪人须指定机构 organisation_id / "
                                                           "brokers must give organisation_id"})
            return requested
        if requested is not None and requested != viewer.organisation_id:
            raise Forbidden("只能为本机构发布 / you may only publish for your own organisation")
        assert viewer.organisation_id is not None
        return viewer.organisation_id

    def editable(self, side: Side | str, record_id: int, viewer: Viewer) -> Any:
        """The record, if the viewer may change it.

        Raises:
            NotFound: no such record, or one the viewer may not see.
            Forbidden: not the viewer's organisation's (and the viewer is no broker).
        """
        s = spec(side)
        record = self.get(s.side, record_id, viewer)
        if not viewer.owns(record) or record.deleted_at is not None:
            raise Forbidden(f"只能修改本机构的{s.zh} / you may only change your own organisation's {s.en}s")
        return record

    # --- writes ----------------------------------------------------------------------------

    def _notify(self, event: str, side: Side, record_id: int) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, side, record_id)
            except Exception:  # a failing listener never undoes a committed write
                log.exception("listener %r failed on %s %s %s", listener, event, side.value, record_id)

    def _write(self, s: SideSpec, record: Any, *, new: bool) -> Any:
        index = self.indexes[s.side]
        vecs = index.encode([(record.title, record.description)])[0]
        with Session(self.engine, expire_on_commit=False) as session:
            if session.get(Organisation, record.organisation_id) is None:
                raise ValidationFailed({"organisation_id": "机构不存在 / no such organisation"})
            record.updated_at = utcnow()
            session.add(record)
            try:
                session.flush()
            except IntegrityError as exc:
                session.rollback()
                raise ValidationFailed({"external_id": DUPLICATE_EXTERNAL_ID}) from exc
            index.store_vectors(session, record, vecs)
            revision = index.bump(session, [record.id])
            event = "created" if new else "updated"
            job_id = jobs.add(session, "record.written",
                              {"side": s.name, "record_id": record.id, "event": event}).id
            session.commit()
            session.refresh(record)
        index.apply(revision, upsert=[(record, vecs)])
        self._deliver([job_id])
        self._notify(event, s.side, record.id)
        return record

    def _deliver(self, job_ids: list[int]) -> None:
        if self.outbox is not None:
            self.outbox.deliver(job_ids)

    def create(self, side: Side | str, data: Any) -> Any:
        """Store a new record (a validated ``...Create`` model) with its vectors, and index it."""
        s = spec(side)
        return self._write(s, s.table.model_validate(data.model_dump(mode="json")), new=True)

    def update(self, side: Side | str, record_id: int, data: Any) -> Any:
        """Change the fields set in ``data`` (an ``...Update`` model), validated as a whole record."""
        s = spec(side)
        with Session(self.engine, expire_on_commit=False) as session:
            record = session.get(s.table, record_id)
        if record is None or record.deleted_at is not None:
            raise NotFound(f"{s.name} {record_id} not found")
        changes = data.model_dump(mode="json", exclude_unset=True)
        merged = {**record.model_dump(mode="json"), **changes}
        try:
            valid = s.create.model_validate(merged)
        except ValidationError as exc:
            raise ValidationFailed(field_errors(exc)) from exc
        for key in changes:  # the validated Python values (dates stay dates, enums plain strings)
            setattr(record, key, _column_value(getattr(valid, key)))
        return self._write(s, record, new=False)

    def delete(self, side: Side | str, record_id: int) -> None:
        """Delete a record: kept and hidden (``deleted_at``), out of every index and ranking."""
        s = spec(side)
        index = self.indexes[s.side]
        with Session(self.engine) as session:
            record = session.get(s.table, record_id)
            if record is None or record.deleted_at is not None:
                raise NotFound(f"{s.name} {record_id} not found")
            record.deleted_at = utcnow()
            session.add(record)
            revision = index.bump(session, [record_id])
            job_id = jobs.add(session, "record.written",
                              {"side": s.name, "record_id": record_id, "event": "deleted"}).id
            session.commit()
        index.apply(revision, remove=[record_id])
        self._deliver([job_id])
        self._notify("deleted", s.side, record_id)

    def bulk_create(self, side: Side | str, items: Sequence[Any], *, progress: bool = False,
                    batch_size: int = 256, maintain: bool = True, alerts: bool = False) -> list[int]:
        """Create many records (seeds, evaluation corpora) in batches, then index once.

        Args:
            maintain: keep the stored match lists current (one job for the whole load);
                an evaluation workspace, which ranks live, skips it.
            alerts: raise the alerts of the new records too.
        """
        s = spec(side)
        index = self.indexes[s.side]
        ids: list[int] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc=f"encode {s.name}s", unit="rec")
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            vecs = index.encode([(d.title, d.description) for d in chunk])
            with Session(self.engine, expire_on_commit=False) as session:
                records = [s.table.model_validate(d.model_dump(mode="json")) for d in chunk]
                session.add_all(records)
                session.flush()
                for r, v in zip(records, vecs, strict=True):
                    index.store_vectors(session, r, v)
                index.bump(session, [r.id for r in records])
                session.commit()
                ids.extend(r.id for r in records)
            if bar:
                bar.update(len(chunk))
        if bar:
            bar.close()
        index.forget()
        index.state()
        if maintain and ids:
            with Session(self.engine) as session:
                job_id = jobs.add(session, "records.bulk",
                                  {"side": s.name, "record_ids": ids, "alerts": alerts}).id
                session.commit()
            self._deliver([job_id])
        return ids


__all__ = ["Records", "Filters", "filter_conditions", "SIDES"]
